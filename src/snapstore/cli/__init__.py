"""The ``snapstore`` command."""
