"""HTTP: health, metrics, the agents' API and the supervisors' wallboard."""
