"""The app-owned queue: waiting callers, routing steps, expected wait, dispatch, states."""
