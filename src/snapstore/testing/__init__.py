"""Tools for testing code built on snapstore: crash simulation through the I/O seam."""
