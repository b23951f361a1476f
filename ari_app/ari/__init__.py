"""ARI: the typed client the app uses, and the supervisor that keeps it connected."""
