"""Temp files of atomic writes: when one counts as abandoned, and the instant after mkstemp.

A writer locks its temp file right after creating it; until then the file is
unlocked, empty and brand new. Cleanup must never take it for abandoned, and a
writer whose new file was removed in that instant must make another.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from snapstore._io import FileSystem, is_temp_name, stale_temps

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="Windows leaves every temp file for people to remove"
)


def _unlocked_temp(directory: Path) -> Path:
    """A temp file as a writer has it between mkstemp and flock: ours, empty, unlocked."""
    fd, path = FileSystem().open_temp(directory, "index.parquet")
    os.close(fd)  # its lock goes with the descriptor
    assert is_temp_name(path.name)
    return path


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_brand_new_unlocked_temp_is_not_taken_for_abandoned(tmp_path: Path) -> None:
    temp = _unlocked_temp(tmp_path)
    # Its writer may be about to lock it: neither reported nor removed.
    assert stale_temps(tmp_path) == []
    assert FileSystem().remove_stale_temps(tmp_path) == []
    assert temp.exists()


def test_an_unlocked_temp_last_written_a_while_ago_is_abandoned(tmp_path: Path) -> None:
    temp = _unlocked_temp(tmp_path)
    _age(temp, 60)
    assert stale_temps(tmp_path) == [temp]
    assert FileSystem().remove_stale_temps(tmp_path) == [temp]
    assert not temp.exists()


def test_a_temp_from_the_future_is_left(tmp_path: Path) -> None:
    # The clock was set back after the file was written: it is not old yet.
    temp = _unlocked_temp(tmp_path)
    _age(temp, -3600)
    assert stale_temps(tmp_path) == []
    assert temp.exists()


def test_a_writer_whose_new_temp_was_removed_before_it_locked_it_makes_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_removed(prefix: str, suffix: str, dir: Path) -> tuple[int, str]:  # noqa: A002
        fd, name = real_mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        made.append(name)
        if len(made) == 1:
            Path(name).unlink()  # a cleanup took it in the instant before the flock
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_removed)
    fs = FileSystem()
    fs.write_atomic(tmp_path / "f", b"data")
    assert len(made) == 2
    assert (tmp_path / "f").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
