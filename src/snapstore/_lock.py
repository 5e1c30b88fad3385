"""The writer lock: a thread lock inside the process, an OS file lock across processes.

The OS lock is ``flock``-style (``flock`` on POSIX, portalocker's ``LockFileEx``
on Windows), held on a descriptor this object keeps open for its lifetime, so
taking it costs two system calls. POSIX record locks (``fcntl.lockf``) are never
used: a process loses them when it closes *any* descriptor of the file.

The lock is re-entrant for the thread that holds it, so an operation that must
decide under the lock (a baseline pin) can append through the same log.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

from snapstore._errors import InvalidInputError, LockTimeout
from snapstore._names import fit_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from snapstore._io import FileSystem

_FIRST_BACKOFF = 0.0002
_MAX_BACKOFF = 0.01

if sys.platform == "win32":
    import portalocker

    _EXCLUSIVE_NOW = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING

    def _try_lock(fd: int) -> bool:
        try:
            portalocker.lock(fd, _EXCLUSIVE_NOW)
        except portalocker.AlreadyLocked:
            return False
        return True

    def _unlock(fd: int) -> None:
        portalocker.unlock(fd)

else:
    import fcntl

    # On POSIX portalocker's lock is this very flock call, but its wrapper
    # validates the flag enum and resolves its locker again on every call
    # (6-7 us against 0.5 us for the two system calls): more than all the rest
    # of an append to the page cache. The writer lock is taken once per commit,
    # so it calls flock itself.
    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # EWOULDBLOCK: another descriptor holds it
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _owned(lock: object) -> bool:
    """Whether the calling thread holds the re-entrant ``lock``.

    ``_is_owned`` is the hook threading.Condition relies on; the stubs do not
    declare it.
    """
    is_owned: Callable[[], bool] = getattr(lock, "_is_owned")  # noqa: B009
    return is_owned()


def lock_file_of(log: Path) -> Path:
    """The lock file of the log ``log``: beside the file the path leads to.

    Symlinks are resolved first: a log reached through a link to it (or to its
    directory) and through its own name must have one lock, or two writers
    would each hold "the" lock and interleave their appends. A name too long
    for the suffix is shortened (see fit_name).
    """
    real = Path(os.path.realpath(log))
    return real.with_name(fit_name(real.name, ".lock"))


def refuse_second_name(log: Path) -> None:
    """Refuse the log ``log`` if it has another hard link: its lock cannot be derived.

    Symlinks lead to the one real name, but the names of a hard-linked file are
    equals, nothing leads from one to the other: writers through another name
    (another history path, another store directory) would take another lock
    file and interleave their appends. Checked before anything is locked.
    """
    try:
        links = log.stat().st_nlink
    except FileNotFoundError:
        return
    if links > 1:
        raise InvalidInputError(
            f"{log} has {links} hard links: writers through another name would not share "
            "its writer lock. Open it by one name only: remove the other links (ls -i "
            "shows the inode to look for), or make them symbolic links (ln -s)"
        )


class WriterLock:
    """Mutual exclusion for the writers of one log (or one store)."""

    def __init__(self, path: Path, fs: FileSystem, timeout: float, *, create: bool = True) -> None:
        """Open the lock file ``path``: created if absent, or with ``create=False`` only read.

        ``create=False`` is for those who must not write (verify, read-only
        handles): the file is opened read-only if it exists (an flock needs
        no write access, and the synced marks are only read), and when it
        does not, no writer has the log open (a writer creates the lock file
        before the log), so there is no OS lock to take.
        """
        self.path = path
        self.timeout = timeout
        self._fs = fs
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._owner_thread = 0
        # The lock file is never deleted: deleting it would let two processes
        # lock two different inodes under one name. It also carries the logs'
        # synced marks (see _synced), hence a descriptor for positioned writes.
        self._has_file = True
        if create:
            self._fd, _ = fs.open_lock(path)
        else:
            try:
                self._fd = fs.open_read(path)
            except FileNotFoundError:
                self._fd, self._has_file = -1, False

    def acquire(self) -> None:
        me = threading.get_ident()
        if self._owner_thread == me:
            self._depth += 1  # re-entry by the holder: it already has both locks
            return
        try:
            deadline = self._take_thread_lock()
            if self._has_file and not _try_lock(self._fd):
                self._wait_for_os_lock(deadline)
            # Plain stores, no call between them and the end of the block: an
            # interrupt cannot fall between taking the locks and owning them.
            self._depth = 1
            self._owner_thread = me
        except BaseException:
            # Failed or interrupted (Ctrl-C may strike right after a lock call
            # returned): give back whatever this thread took, or the handle
            # would stay locked for good.
            if self._owner_thread != me and _owned(self._thread_lock):
                with contextlib.suppress(OSError):
                    _unlock(self._fd)  # ours to drop: no other thread can hold it now
                self._thread_lock.release()
            raise

    def _take_thread_lock(self) -> float | None:
        """Take the thread lock; the deadline for the OS lock (None: no waiting so far)."""
        # The uncontended case first: no clock reads, no timeout bookkeeping.
        if self._thread_lock.acquire(blocking=False):
            return None
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise LockTimeout(self.path, self.timeout)
        return deadline

    def release(self) -> None:
        if self._depth > 1:
            self._depth -= 1
            return
        self._depth = 0
        self._owner_thread = 0
        try:
            if self._has_file:
                _unlock(self._fd)
        finally:  # even when an interrupt arrives as flock returns
            self._thread_lock.release()

    def __enter__(self) -> Self:
        me = threading.get_ident()
        depth = self._depth if self._owner_thread == me else 0
        try:
            self.acquire()
        except BaseException:
            # An interrupt as acquire() returns leaves the lock taken, and a
            # failed __enter__ gets no __exit__: release it here.
            if self._owner_thread == me and self._depth > depth:
                self.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    @property
    def fd(self) -> int:
        """The lock file's descriptor (valid while the lock is open; -1 if there is no file)."""
        return self._fd

    def held_by_me(self) -> bool:
        return self._owner_thread == threading.get_ident()

    def close(self) -> None:
        # Idempotent: closing the same descriptor number twice could close a
        # file that the process has since opened under that number.
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        self._fs.close(fd)

    def _wait_for_os_lock(self, deadline: float | None) -> None:
        # flock has no timeout: poll non-blocking with a growing pause. The
        # deadline covers the wait for the thread lock too, when there was one.
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        backoff = _FIRST_BACKOFF
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(self.path, self.timeout)
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, _MAX_BACKOFF)
            if _try_lock(self._fd):
                return
