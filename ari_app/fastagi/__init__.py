"""The FastAGI look-up the dialplan runs before Stasis."""
