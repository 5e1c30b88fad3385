"""Test support for code that uses snapstore, and for snapstore's own tests."""

from snapstore.testing.faults import PRIMITIVES, FaultInjector

__all__ = ["PRIMITIVES", "FaultInjector"]
