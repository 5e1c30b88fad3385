"""Test support: fault injection and crash simulation through the I/O seam.

The conformance suites every backend passes are in ``snapstore.testing.conformance``
(with ``harnesses`` and the stateful ``machines``); they need pytest and
Hypothesis (the ``testing`` extra), so they are not imported here.
"""

from snapstore.testing.crash import (
    CrashCheckError,
    CrashRecorder,
    CrashReport,
    CrashState,
    Recording,
    SimulatedKill,
    check_crash_states,
    crash_states,
    process_crash,
)
from snapstore.testing.faults import PRIMITIVES, FaultInjector

__all__ = [
    "PRIMITIVES",
    "CrashCheckError",
    "CrashRecorder",
    "CrashReport",
    "CrashState",
    "FaultInjector",
    "Recording",
    "SimulatedKill",
    "check_crash_states",
    "crash_states",
    "process_crash",
]
