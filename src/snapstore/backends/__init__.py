"""Where snapshots and histories live: the backend protocols and their implementations."""
