"""A call in flight: its event inbox, its media primitives and its state machine."""
