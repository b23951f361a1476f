"""The agent desktop: sign-in and sessions (auth), the agent's page and its live
stream (routes, live), the screen-pop (screenpop, history). docs/agent-desktop.md."""
