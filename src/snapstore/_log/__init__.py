"""The log machinery of the local backend: checked logs, locks, the I/O seam."""
