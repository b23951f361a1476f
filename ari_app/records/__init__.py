"""Call records: one per call, written when it ends, archived durably."""
