"""AMI (device and contact state) and FastAGI (the dialplan's look-up), over panoramisk."""
