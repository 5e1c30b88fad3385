"""Temp files of atomic writes: the instant between a temp file's creation and its lock.

A writer locks its temp file right after creating it; until then the file is
unlocked, in its creation mode (``seam._IN_CREATION``). Cleanup must not take
such a file for abandoned unless it is old, and a writer whose new file was
removed in that instant anyway must make another.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from snapstore._log import seam
from snapstore._log.seam import FileSystem, is_temp_name, stale_temps

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="Windows leaves every temp file for people to remove"
)


def _in_creation(directory: Path) -> Path:
    """A temp file as a writer has it between creating and locking it."""
    fd, path = FileSystem().open_temp(directory, "index.parquet")
    os.close(fd)  # its lock goes with the descriptor
    path.chmod(seam._IN_CREATION)
    assert is_temp_name(path.name)
    return path


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_temp_from_the_future_in_creation_is_left(tmp_path: Path) -> None:
    # The clock was set back after the file was made: it is not old yet.
    temp = _in_creation(tmp_path)
    _age(temp, -3600)
    assert stale_temps(tmp_path) == []
    assert FileSystem().remove_stale_temps(tmp_path) == []
    assert temp.exists()


def test_a_temp_left_in_creation_for_a_minute_is_abandoned(tmp_path: Path) -> None:
    # Its writer died between creating and locking it.
    temp = _in_creation(tmp_path)
    _age(temp, 61)
    assert stale_temps(tmp_path) == [temp]
    assert FileSystem().remove_stale_temps(tmp_path) == [temp]
    assert not temp.exists()


def test_a_writer_whose_new_temp_was_removed_before_it_locked_it_makes_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pytest.importorskip("fcntl")
    locked: list[int] = []

    class RemovedFirst:
        """flock as the writer sees it when a cleanup took its first file just before."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def flock(self, fd: int, operation: int) -> None:
            locked.append(fd)
            if len(locked) == 1:
                (made,) = tmp_path.glob(".f.*.tmp")
                made.unlink()
            real.flock(fd, operation)

    monkeypatch.setattr(seam, "fcntl", RemovedFirst())
    FileSystem().write_atomic(tmp_path / "f", b"data")
    assert len(locked) == 2
    assert (tmp_path / "f").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
