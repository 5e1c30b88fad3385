"""Functions run in child processes (started with "spawn", so they must be importable)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from snapstore import IterationHistory
from snapstore._io import FileSystem
from snapstore._lock import WriterLock

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier, Event

# Bounds every wait, so a broken test fails instead of hanging.
WAIT = 60.0


def append_many(path: str, writer: int, count: int, start: Barrier) -> None:
    """Append ``count`` records tagged with ``writer`` once every writer has opened."""
    with IterationHistory(path) as history:
        start.wait(WAIT)
        for i in range(count):
            history.append({"writer": writer, "i": i})


def hold_lock(path: str, held: Event, release: Event) -> None:
    """Hold the writer lock of the history ``path`` until ``release`` is set."""
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    lock = WriterLock(lock_path, FileSystem(), timeout=WAIT)
    try:
        with lock:
            held.set()
            if not release.wait(WAIT):
                raise TimeoutError("the release signal never came")
    finally:
        lock.close()
