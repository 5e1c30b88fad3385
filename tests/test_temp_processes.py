"""Temp files of atomic writes, their writers in other processes (spawned, bounded in time).

A temp file is abandoned only when its writer is gone. Its name (host tag and
pid) cannot prove that: a writer in another PID namespace of a host with the
same name (two containers sharing a store) carries a pid that is free here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from snapstore import SnapshotStore
from snapstore._log.seam import is_temp_name
from workers import WAIT, checkpoint_paused

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.context import SpawnProcess
    from multiprocessing.synchronize import Event

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="Windows leaves every temp file for people to remove"
)

# Linux pids stay below pid_max, so pid_max itself is no process here.
_PID_MAX = Path("/proc/sys/kernel/pid_max")
FOREIGN_PID = int(_PID_MAX.read_text()) if _PID_MAX.exists() else 4_194_304


def _temps(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if is_temp_name(p.name))


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` look last written ``seconds`` ago: a writer that died a while back."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def paused_writer(tmp_path: Path) -> Iterator[tuple[SpawnProcess, Event, Path]]:
    """A process checkpointing ``tmp_path / "store"``, paused with its temp file written.

    Its temp file's name carries ``FOREIGN_PID``. Yields the process, the event
    that resumes it and the file it reports its outcome in.
    """
    with pytest.raises(ProcessLookupError):
        os.kill(FOREIGN_PID, 0)
    root = tmp_path / "store"
    SnapshotStore(root).close()
    context = multiprocessing.get_context("spawn")
    paused, resume = context.Event(), context.Event()
    report = tmp_path / "report"
    writer = context.Process(
        target=checkpoint_paused, args=(str(root), FOREIGN_PID, paused, resume, str(report))
    )
    writer.start()
    try:
        assert paused.wait(WAIT), "the writer never reached its checkpoint"
        yield writer, resume, report
    finally:
        # Never set an event once its waiter was killed: a multiprocessing
        # Event's set() then waits forever for the dead waiter to wake.
        if writer.is_alive():
            resume.set()
            writer.join(WAIT)
        if writer.is_alive():
            writer.kill()
            writer.join()


def test_a_live_writers_temp_named_with_a_pid_free_here_survives_an_open(
    tmp_path: Path, paused_writer: tuple[SpawnProcess, Event, Path]
) -> None:
    writer, resume, report = paused_writer
    root = tmp_path / "store"
    (temp,) = _temps(root)
    assert f".{FOREIGN_PID}." in temp.name
    # However long its writer has been at work: its lock, not its age, keeps it.
    _age(temp, 3600)
    # Every path that removes temp files: an open, verify, repair.
    SnapshotStore(root).close()
    with SnapshotStore(root) as store:
        found = store.verify()
        repaired = store.repair()
    assert temp.exists(), "an opener removed a live writer's temp file"
    assert [f for f in found.findings if is_temp_name(f.path.name)] == []
    assert [a for a in repaired.actions if "temp" in a] == []
    resume.set()
    writer.join(WAIT)
    assert writer.exitcode == 0
    assert report.read_text() == "ok"  # before: FileNotFoundError from the rename
    assert _temps(root) == []
    with SnapshotStore(root) as store:
        assert len(store) == 1
        assert store.verify().ok


def test_the_temp_of_a_writer_that_died_is_removed_at_the_next_open(
    tmp_path: Path, paused_writer: tuple[SpawnProcess, Event, Path]
) -> None:
    writer, _, report = paused_writer
    root = tmp_path / "store"
    (temp,) = _temps(root)
    writer.kill()  # dies mid-checkpoint: the kernel drops its lock
    writer.join(WAIT)
    assert not report.exists()
    _age(temp, 60)
    with SnapshotStore(root) as store:
        assert not temp.exists()
        assert len(store) == 1
        assert store.verify().ok
