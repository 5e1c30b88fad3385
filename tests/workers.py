"""Functions run in child processes (started with "spawn", so they must be importable)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore._log.lock import WriterLock
from snapstore._log.seam import FileSystem, installed

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
    hold_lock_file(str(Path(path).with_name(Path(path).name + ".lock")), held, release)


def hold_lock_file(lock_path: str, held: Event, release: Event) -> None:
    """Hold the writer lock file ``lock_path`` (a store's ``.lock``, say) until ``release``."""
    lock = WriterLock(Path(lock_path), FileSystem(), timeout=WAIT)
    try:
        with lock:
            held.set()
            if not release.wait(WAIT):
                raise TimeoutError("the release signal never came")
    finally:
        lock.close()


class _PausedCheckpoint(FileSystem):
    """Names its temp files with ``pid`` and stops in a checkpoint's sync until resumed.

    ``pid`` plays a writer in another PID namespace (another container with the
    same hostname, sharing the store): the pid its temp file names carry means
    nothing here.
    """

    def __init__(self, pid: int, paused: Event, resume: Event) -> None:
        self._pid = pid
        self._paused = paused
        self._resume = resume
        self._held = -1

    def open_temp(self, directory: Path, target: str) -> tuple[int, Path]:
        real_getpid = os.getpid
        os.getpid = lambda: self._pid  # seen only by the temp file's name
        try:
            fd, path = super().open_temp(directory, target)
        finally:
            os.getpid = real_getpid
        if target == "index.parquet" and self._held < 0:
            self._held = fd
        return fd, path

    def sync(self, fd: int) -> None:
        if fd == self._held:
            self._held = -2  # pause once
            self._paused.set()
            if not self._resume.wait(WAIT):
                raise TimeoutError("the resume signal never came")
        super().sync(fd)


def checkpoint_paused(root: str, pid: int, paused: Event, resume: Event, report: str) -> None:
    """Save to ``root`` and checkpoint it, pausing with the checkpoint's temp file written.

    Writes "ok", or the error the checkpoint raised, into ``report``.
    """
    with installed(_PausedCheckpoint(pid, paused, resume)):
        store = SnapshotStore(root)  # a handle keeps the file system it opened with
    outcome = "ok"
    try:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING", metrics={"loss": 0.5}))
        store.checkpoint()
    except Exception as exc:  # reported to the test
        outcome = f"{type(exc).__name__}: {exc}"
    finally:
        store.close()
    Path(report).write_text(outcome)


def save_many(root: str, writer: int, count: int, start: Barrier) -> None:
    """Save ``count`` snapshots of run ``run-<writer>`` once every writer has opened ``root``."""
    with SnapshotStore(root) as store:
        start.wait(WAIT)
        for i in range(count):
            store.save_snapshot(NormalizedSnapshot(f"run-{writer}", "TRAINING", metrics={"i": i}))
