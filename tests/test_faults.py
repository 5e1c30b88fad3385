"""The fault injector itself: it counts, fails the chosen call, and nothing else."""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

import pytest

from helpers import open_fds
from snapstore._log.seam import FileSystem
from snapstore.testing import PRIMITIVES, FaultInjector

if TYPE_CHECKING:
    from pathlib import Path


# Descriptor counts are compared: see helpers.open_fds.
pytestmark = pytest.mark.usefixtures("gc_paused")


def test_every_primitive_is_wrapped() -> None:
    for name in PRIMITIVES:
        assert callable(getattr(FileSystem, name)), name
        assert getattr(FaultInjector, name) is not getattr(FileSystem, name), name
    # The composites stay the base class's: they reach the wrapped primitives.
    for name in ("make_dirs", "write_atomic", "create_exclusive", "remove_stale_temps"):
        assert getattr(FaultInjector, name) is getattr(FileSystem, name)


def test_counts_calls_and_fails_nothing_unarmed(tmp_path: Path) -> None:
    fs = FaultInjector()
    fs.write_atomic(tmp_path / "f", b"data")
    # The temp file is renamed while its descriptor (and lock) is held, then closed.
    assert fs.calls == ["open_temp", "write", "sync", "replace", "close", "sync_dir"]
    assert fs.faults == 0
    assert (tmp_path / "f").read_bytes() == b"data"


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_fails_the_kth_call_once(tmp_path: Path, code: int) -> None:
    fs = FaultInjector(2, error=code)
    fd, _ = fs.open_log(tmp_path / "log")
    with pytest.raises(OSError, match="injected fault") as info:
        fs.write(fd, b"lost")
    assert info.value.errno == code
    fs.write(fd, b"kept")
    fs.close(fd)
    assert (tmp_path / "log").read_bytes() == b"kept"
    assert fs.faults == 1
    assert fs.calls == ["open_log", "write", "write", "close"]


def test_persistent_fails_every_call_from_k(tmp_path: Path) -> None:
    fs = FaultInjector(2, persistent=True, error=errno.ENOSPC)
    fd, _ = fs.open_log(tmp_path / "log")
    for _ in range(3):
        with pytest.raises(OSError) as info:
            fs.write(fd, b"x")
        assert info.value.errno == errno.ENOSPC
    fs.arm(None)
    fs.write(fd, b"ok")
    fs.close(fd)
    assert (tmp_path / "log").read_bytes() == b"ok"


def test_only_counts_the_named_primitives(tmp_path: Path) -> None:
    fs = FaultInjector(2, only={"sync"})
    fd, _ = fs.open_log(tmp_path / "log")
    fs.write(fd, b"a")
    fs.sync(fd)
    fs.write(fd, b"b")
    with pytest.raises(OSError):
        fs.sync(fd)
    fs.close(fd)
    assert fs.calls == ["sync", "sync"]
    assert (tmp_path / "log").read_bytes() == b"ab"


def test_torn_write_stores_the_first_half(tmp_path: Path) -> None:
    fs = FaultInjector(only={"write"}, torn_writes=True)
    fd, _ = fs.open_log(tmp_path / "log")
    fs.arm(1)
    with pytest.raises(OSError):
        fs.write(fd, b"0123456789")
    fs.close(fd)
    assert (tmp_path / "log").read_bytes() == b"01234"


def test_failing_close_releases_the_descriptor(tmp_path: Path) -> None:
    fs = FaultInjector(only={"close"})
    before = open_fds()
    fd, _ = fs.open_log(tmp_path / "log")
    fs.arm(1)
    with pytest.raises(OSError):
        fs.close(fd)
    assert open_fds() == before
    with pytest.raises(OSError):
        os.fstat(fd)


def test_composites_go_through_the_primitives(tmp_path: Path) -> None:
    fs = FaultInjector(only={"replace"})
    fs.arm(1)
    with pytest.raises(OSError):
        fs.write_atomic(tmp_path / "f", b"data")
    # The temp file is removed when the rename fails.
    assert list(tmp_path.iterdir()) == []


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fail_at"):
        FaultInjector(0)
    with pytest.raises(ValueError, match="fsync"):
        FaultInjector(only={"fsync"})
