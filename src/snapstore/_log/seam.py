"""The I/O seam: every file-system effect snapstore has goes through here.

Production code uses :class:`FileSystem`, which calls the OS. Tests install a
subclass (:func:`installed`) that fails chosen calls or records every effect to
materialize crash states. The composite operations (atomic replace, exclusive
create, directory creation) are written in terms of the primitives, so a fault
injected into a primitive reaches every code path that uses it.

A handle captures :func:`current` when it opens, so the hot path pays one
attribute lookup per effect, not a global lookup.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from snapstore._names import NAME_MAX, fit_name

if TYPE_CHECKING:
    from collections.abc import Iterator

if sys.platform != "win32":
    import fcntl

_IS_WINDOWS = sys.platform == "win32"
_OPEN_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _host_name() -> str:
    """``socket.gethostname()``, without importing socket into every process that saves.

    On POSIX both are the kernel's node name (gethostname reads what uname reports).
    """
    if sys.platform == "win32":
        import socket  # noqa: PLC0415 - Windows has no os.uname

        return socket.gethostname()
    return os.uname().nodename


# A temp file's writer holds an exclusive flock on it from its creation until
# it is published or removed. The kernel drops the lock when the writer dies,
# in whatever PID namespace or container it ran, so "nobody holds its lock" is
# what proves a temp file abandoned; a pid in its name would not (another
# namespace's live writer can carry a pid that is free here). The name keeps
# the host and pid for people reading a directory, and the host tag keeps
# cleanup away from other hosts' files, whose locks a shared file system may
# not show.
_HOST_TAG = hashlib.sha256(_host_name().encode()).hexdigest()[:8]
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<host>[0-9a-f]{8})\.(?P<pid>\d+)\.[^.]+\.tmp$")
# Between creating a temp file and locking it, its writer holds no lock on it
# yet: a cleanup (or verify) in that instant would take work in progress for
# an abandoned file. So a temp is created with this mode, which no file made
# with the usual 0o666 & ~umask has (the owner's execute bit), and given its
# real mode only once locked. An unlocked file in this mode is being created,
# unless it is older than any pause between the two calls could be: then its
# writer died between them.
_IN_CREATION = 0o700
_CREATION_SECONDS = 60.0
# The random part of a temp file's name (tempfile.mkstemp's is as long).
_TOKEN_CHARS = 8


class FileSystem:
    """The operating system, as snapstore uses it. Subclass to inject faults."""

    # -- primitives ---------------------------------------------------------

    def open_log(self, path: Path) -> tuple[int, bool]:
        """Open (creating if absent) an append-only file; return (fd, created)."""
        flags = os.O_RDWR | os.O_APPEND | _OPEN_FLAGS
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            return os.open(path, flags), False

    def open_read(self, path: Path) -> int:
        return os.open(path, os.O_RDONLY | _OPEN_FLAGS)

    def open_lock(self, path: Path) -> tuple[int, bool]:
        """Open (creating if absent) a lock file for reading and positioned writes.

        Not ``O_APPEND``: on Linux a ``pwrite`` to an append-only descriptor
        ignores its offset and appends, and the lock file holds fixed slots.
        """
        flags = os.O_RDWR | _OPEN_FLAGS
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            return os.open(path, flags), False

    def open_temp(self, directory: Path, target: str) -> tuple[int, Path]:
        """Create a uniquely named temp file (O_EXCL) for an atomic write of ``target``.

        The file is returned locked (see ``_HOST_TAG``); it stays locked until
        its descriptor is closed, so close it only once it is published or removed.
        """
        # The target part is shortened as needed for the whole name to fit:
        # a target near the length limit would otherwise leave no room for the
        # rest, and the write could never be made. It only tells people what
        # the file was for; the match of _TEMP_NAME does not depend on it.
        tail = f".{_HOST_TAG}.{os.getpid()}."
        room = NAME_MAX - len(tail) - len(".") - _TOKEN_CHARS - len(".tmp")
        prefix = f".{fit_name(target, room=room)}{tail}"
        if _IS_WINDOWS:
            import tempfile  # noqa: PLC0415 - only Windows uses it, and it imports shutil

            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
            return fd, Path(name)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS
        while True:
            # secrets.token_hex, without the import of secrets (and of hmac and base64).
            path = directory / f"{prefix}{os.urandom(_TOKEN_CHARS // 2).hex()}.tmp"
            try:
                fd = os.open(path, flags, _IN_CREATION)
            except FileExistsError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # In the instant between creation and flock, a cleanup may have
                # found the new file unlocked and removed it: then make another.
                if _names(path, fd):
                    # Locked: out of creation, and the published file should
                    # read like the logs.
                    os.fchmod(fd, 0o644)
                    return fd, path
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def write(self, fd: int, data: bytes) -> None:
        """Write all of ``data``; a short write continues where it stopped."""
        written = os.write(fd, data)
        if written == len(data):
            return  # the usual case: a regular file takes the whole write
        view = memoryview(data)[written:]
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def write_at(self, fd: int, data: bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset`` (a descriptor from :meth:`open_lock`)."""
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written

    def read(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def identity(self, path: Path) -> tuple[tuple[int, int], int]:
        """((device, inode), size) of ``path``: whether a file was replaced, and its size.

        One call for both: a writer checks both before every commit.
        """
        st = os.stat(path)
        return (st.st_dev, st.st_ino), st.st_size

    def fd_identity(self, fd: int) -> tuple[int, int]:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino

    def sync(self, fd: int) -> None:
        """Make the file's data (and the size needed to read it) durable."""
        if sys.platform == "darwin":
            # fsync on macOS only reaches the drive's cache; F_FULLFSYNC flushes it.
            import fcntl  # noqa: PLC0415 - only exists on POSIX

            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
        elif sys.platform == "win32":
            os.fsync(fd)
        else:
            os.fdatasync(fd)

    def sync_dir(self, path: Path) -> None:
        """Make the entries of directory ``path`` (creations, renames) durable."""
        if _IS_WINDOWS:
            return  # NTFS journals directory entries; directories cannot be opened.
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    # os.close itself, not a method that calls it: a call of C code is never
    # entered half-way by an interrupt (Python runs signal handlers only
    # between steps of Python code), so a close cut short by Ctrl-C has
    # either closed the descriptor and marked it closed, or neither.
    close = staticmethod(os.close)

    def replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def link(self, source: Path, target: Path) -> None:
        os.link(source, target)

    def unlink(self, path: Path) -> None:
        path.unlink()

    def mkdir(self, path: Path) -> None:
        path.mkdir()

    # -- composites (built on the primitives above) -------------------------

    def make_dirs(self, path: Path) -> None:
        """Create ``path`` and missing parents, each entry made durable.

        The entry of the deepest directory that already exists is synced too: a
        process that created it may have died before syncing its parent, and a
        power loss would then take everything built inside it along. A crashed
        make_dirs leaves at most its last mkdir unsynced (each mkdir's parent is
        synced before the next), so syncing that one parent is enough.
        """
        missing: list[Path] = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        self.sync_dir(probe.parent)
        for directory in reversed(missing):
            try:
                self.mkdir(directory)
            except FileExistsError:
                continue  # another process created it: its entry is its to sync
            # The new directory is not durable until its parent's entry is.
            self.sync_dir(directory.parent)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Replace ``path`` with ``data``: readers see the old or the new file, never a mix.

        temp (unique name, O_EXCL, locked) -> write all -> sync -> rename over ->
        sync the directory. The temp is removed on any failure before the
        rename, and the original error propagates.

        A symlink is replaced through: the file it leads to gets the new bytes.
        """
        if path.is_symlink():
            # Renaming over the link would replace the link: a log repaired
            # through one would fork in two, the damaged file staying where
            # every other name leads. The temp goes beside the real file, on
            # its file system, as rename needs.
            path = Path(os.path.realpath(path))
        fd, temp = self.open_temp(path.parent, path.name)
        held: int | None = fd
        try:
            self.write(fd, data)
            # The data must be on disk before the rename can make it visible,
            # or a crash could leave the new name pointing at an empty file.
            self.sync(fd)
            if _IS_WINDOWS:
                # Windows renames no open file (and its temp files are not locked).
                held = None
                self.close(fd)
            # Elsewhere renamed while its descriptor (and so its lock) is still
            # held: a cleanup never takes a temp file whose writer is at work.
            self.replace(temp, path)
        except BaseException:
            if held is not None:
                with contextlib.suppress(OSError):
                    self.close(held)
            with contextlib.suppress(OSError):
                self.unlink(temp)
            raise
        try:
            if held is not None:
                self.close(held)
        finally:
            # The rename is not durable until the directory entry is.
            self.sync_dir(path.parent)

    def create_exclusive(self, path: Path, data: bytes) -> bool:
        """Create ``path`` holding ``data`` unless it exists; never a partial file.

        Returns False (and changes nothing) when ``path`` already exists. The
        temp file is published with link(), which fails rather than overwrite.
        """
        fd, temp = self.open_temp(path.parent, path.name)
        try:
            self.write(fd, data)
            self.sync(fd)
            try:
                self.link(temp, path)
            except FileExistsError:
                return False
            # The new entry is not durable until the directory is synced.
            self.sync_dir(path.parent)
            return True
        finally:
            # The temp name goes while its lock is held, then the descriptor
            # (on Windows, which removes no open file, the other way round).
            if _IS_WINDOWS:
                self.close(fd)
            with contextlib.suppress(OSError):
                self.unlink(temp)
            if not _IS_WINDOWS:
                self.close(fd)

    def remove_stale_temps(self, directory: Path) -> list[Path]:
        """Remove temp files abandoned by writers of this host; return them."""
        removed: list[Path] = []
        for path in stale_temps(directory):
            abandoned = _lock_abandoned(path)
            if abandoned is None:
                continue  # its writer is back at work, or it is gone already
            try:
                # Removed while we hold its lock: its writer cannot be at work.
                with contextlib.suppress(FileNotFoundError):
                    self.unlink(path)
                    removed.append(path)
            finally:
                os.close(abandoned)
        if removed:
            self.sync_dir(directory)
        return removed


def stale_temps(directory: Path) -> list[Path]:
    """Temp files in ``directory`` that writers of this host abandoned, sorted.

    Abandoned: nobody holds its lock (its writer died, or failed before it
    could remove it), and it is not in creation (see ``_IN_CREATION``).
    Another host's temp files are never judged: their writers' locks may not
    be visible here.
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    stale = []
    for name in sorted(names):
        match = _TEMP_NAME.match(name)
        if match is None or match["host"] != _HOST_TAG:
            continue
        abandoned = _lock_abandoned(directory / name)
        if abandoned is not None:
            os.close(abandoned)
            stale.append(directory / name)
    return stale


def _lock_abandoned(path: Path) -> int | None:
    """A descriptor holding the lock of the temp file ``path`` if nobody else did, else None.

    Never on Windows, where these files are not locked: there, temp files are
    left for people to remove.
    """
    if _IS_WINDOWS:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _names(path, fd) and not _in_creation(fd):
            return fd
    except BlockingIOError:  # its writer holds it: work in progress
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _in_creation(fd: int) -> bool:
    """Whether the temp file ``fd`` was created so recently that its writer may yet lock it."""
    info = os.fstat(fd)
    # The one bit of _IN_CREATION that the file's real mode lacks.
    return bool(info.st_mode & stat.S_IXUSR) and time.time() - info.st_mtime < _CREATION_SECONDS


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def is_temp_name(name: str) -> bool:
    return _TEMP_NAME.match(name) is not None


_current = FileSystem()


def current() -> FileSystem:
    """The file system that handles opened from now on will use."""
    return _current


@contextlib.contextmanager
def installed(fs: FileSystem) -> Iterator[FileSystem]:
    """Use ``fs`` for handles opened inside the block (tests only)."""
    global _current  # noqa: PLW0603 - the seam is process-wide by design
    previous, _current = _current, fs
    try:
        yield fs
    finally:
        _current = previous
