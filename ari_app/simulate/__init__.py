"""Discrete-event simulation of the queue and agent choice (`hotline simulate`)."""
