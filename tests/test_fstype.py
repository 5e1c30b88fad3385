"""Network and FUSE file systems are detected at open: a warning, or a refusal with strict."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapstore import (
    FilesystemWarning,
    IterationHistory,
    SnapshotStore,
    UnsupportedFilesystemError,
)
from snapstore._log import fstype

LOCAL_MOUNTS = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /tmp rw,nosuid shared:2 - tmpfs tmpfs rw
"""


def mounts_with(tmp_path: Path, fs_type: str) -> str:
    mount_point = os.path.realpath(tmp_path).replace(" ", "\\040")
    return LOCAL_MOUNTS + f"40 22 0:40 / {mount_point} rw - {fs_type} server:/export rw\n"


def test_the_longest_mount_prefix_decides() -> None:
    assert fstype.mount_type(Path("/tmp/x/y"), LOCAL_MOUNTS) == "tmpfs"
    assert fstype.mount_type(Path("/tmpfoo"), LOCAL_MOUNTS) == "ext4"
    assert fstype.mount_type(Path("/"), LOCAL_MOUNTS) == "ext4"


def test_escaped_mount_points_are_matched() -> None:
    table = LOCAL_MOUNTS + "41 22 0:41 / /mnt/my\\040share rw - cifs //h/s rw\n"
    assert fstype.mount_type(Path("/mnt/my share/store"), table) == "cifs"


@pytest.mark.parametrize("fs_type", ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "9p"])
def test_network_and_fuse_types_are_flagged(fs_type: str) -> None:
    assert fstype.is_network_type(fs_type)


@pytest.mark.parametrize("fs_type", ["ext4", "xfs", "btrfs", "tmpfs", "zfs", "apfs"])
def test_local_types_are_not_flagged(fs_type: str) -> None:
    assert not fstype.is_network_type(fs_type)


def test_this_machines_temp_dir_is_local(tmp_path: Path) -> None:
    IterationHistory(tmp_path / "h.jsonl", strict=True).close()  # no error, no warning


@pytest.fixture
def nfs_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    table = tmp_path.parent / f"{tmp_path.name}-mountinfo"
    table.write_text(mounts_with(tmp_path, "nfs4"))
    monkeypatch.setattr(fstype, "MOUNTINFO", table)
    return tmp_path


def test_opening_on_nfs_warns(nfs_mount: Path) -> None:
    with pytest.warns(FilesystemWarning, match="nfs4"), IterationHistory(nfs_mount / "h.jsonl"):
        pass
    with pytest.warns(FilesystemWarning, match="nfs4"), SnapshotStore(nfs_mount / "store"):
        pass


def test_strict_refuses_and_creates_nothing(nfs_mount: Path) -> None:
    with pytest.raises(UnsupportedFilesystemError, match="nfs4"):
        IterationHistory(nfs_mount / "h.jsonl", strict=True)
    with pytest.raises(UnsupportedFilesystemError):
        SnapshotStore(nfs_mount / "store", strict=True)
    assert not (nfs_mount / "h.jsonl").exists()
    assert not (nfs_mount / "store").exists()
