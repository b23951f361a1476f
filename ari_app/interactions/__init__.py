"""Interactions: one citizen contact, its legs by role, its bridges, its states and events."""
