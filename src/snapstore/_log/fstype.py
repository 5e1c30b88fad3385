"""Detecting file systems on which snapstore's guarantees do not hold.

The writer lock is an ``flock``; network file systems (NFS, SMB/CIFS) and most
FUSE file systems either do not implement it across hosts or emulate it
unreliably, and some do not honour ``fsync`` ordering. A store there can hand
out one seq twice. Opening one warns (:class:`FilesystemWarning`), or refuses
with ``strict=True`` (:class:`UnsupportedFilesystemError`).

Linux only: the type comes from ``/proc/self/mountinfo`` (the mount with the
longest prefix of the path). Elsewhere the check is skipped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from snapstore._errors import FilesystemWarning, UnsupportedFilesystemError

MOUNTINFO = Path("/proc/self/mountinfo")
NETWORK_TYPES = frozenset(
    {
        "9p",
        "afs",
        "beegfs",
        "ceph",
        "cifs",
        "davfs",
        "fuse",
        "fuseblk",
        "glusterfs",
        "gpfs",
        "lustre",
        "ncpfs",
        "nfs",
        "nfs4",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "sshfs",
    }
)


def mount_type(path: Path, mountinfo: str) -> str | None:
    """The file-system type of the mount holding ``path``, from mountinfo text."""
    target = str(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or not after:
            continue
        mount_point = _unescape(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, after[0]
    return best_type


def is_network_type(fs_type: str) -> bool:
    return fs_type in NETWORK_TYPES or fs_type.startswith("fuse.")


def check_filesystem(path: Path, *, strict: bool) -> None:
    """Warn (or raise, if ``strict``) when ``path`` is on a network or FUSE file system."""
    try:
        mountinfo = MOUNTINFO.read_text()
    except OSError:
        return  # not Linux, or /proc is not mounted: nothing to go on
    fs_type = mount_type(Path(os.path.realpath(path)), mountinfo)
    if fs_type is None or not is_network_type(fs_type):
        return
    message = (
        f"{path} is on a {fs_type} file system: file locks and fsync there may not "
        "protect concurrent writers or survive a crash (see PRODUCTION_READINESS.md)"
    )
    if strict:
        raise UnsupportedFilesystemError(message)
    warnings.warn(message, FilesystemWarning, stacklevel=3)


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
