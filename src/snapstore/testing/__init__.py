"""Test support through the I/O seam: fault injection and crash simulation."""

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
