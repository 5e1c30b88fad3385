"""The writer lock: a thread lock inside the process, an OS file lock across processes.

The OS lock is ``flock``-style (``flock`` on POSIX, portalocker's ``LockFileEx``
on Windows), held on a descriptor this object keeps open for its lifetime, so
taking it costs two system calls. POSIX record locks (``fcntl.lockf``) are never
used: a process loses them when it closes *any* descriptor of the file.

An operation that must decide under the lock (a baseline pin) appends through
the same log within its own hold: the log sees ``held_by_me`` and commits
directly, without taking the lock again.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

from snapstore._errors import ClosedError, InvalidInputError, LockTimeout
from snapstore._names import fit_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from snapstore._log.seam import FileSystem

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
    """Mutual exclusion for the writers of one log (or one store).

    Two parts: ``threads``, a re-entrant thread lock, and the OS lock of the
    lock file, taken by entering ``processes`` while holding ``threads``. The
    library's writers take both as ``with lock.threads, lock.processes:``,
    which no interrupt can leave half-released: Python runs a signal handler
    (Ctrl-C) only between Python-level steps, and ``threads`` is entered and
    left by C code, so the thread lock is always given back. An interrupt can
    skip the Python-level release of the OS lock; the descriptor then still
    holds it, the next writer of this handle re-takes it at once (an flock is
    per descriptor) and releases it, so the lock heals at the handle's next
    commit. Sections do not nest: a holder that must write commits directly
    (see ``held_by_me``). ``acquire``/``release`` (and ``with lock:``) take and
    give back both, for a lock of its own (repair's, a test's).
    """

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
        self.threads = threading.RLock()
        self.processes = _OsLock(self)
        self._os_locked = False  # whether the descriptor holds the OS lock
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
        deadline = None
        # The uncontended case first: no clock reads, no timeout bookkeeping.
        if not self.threads.acquire(blocking=False):
            deadline = time.monotonic() + self.timeout
            if not self.threads.acquire(timeout=self.timeout):
                raise LockTimeout(self.path, self.timeout)
        try:
            self._take_os_lock(deadline)
        except BaseException:
            self.threads.release()
            raise

    def release(self) -> None:
        try:
            self._release_os_lock()
        finally:
            self.threads.release()

    def __enter__(self) -> Self:
        self.acquire()
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
        return _owned(self.threads)

    def close(self) -> None:
        # Idempotent: closing the same descriptor number twice could close a
        # file that the process has since opened under that number.
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        self._os_locked = False  # closing the descriptor releases its flock
        self._fs.close(fd)

    def _take_os_lock(self, deadline: float | None = None) -> None:
        """Take the OS lock; the caller holds ``threads``."""
        if self._os_locked or not self._has_file:
            return  # held already: a release an interrupt skipped (see the class)
        if self._fd < 0:
            raise ClosedError(f"{self.path}: the handle was closed")
        if not _try_lock(self._fd):
            self._wait_for_os_lock(deadline)
        # Set after the lock is ours; an interrupt before it leaves the flag
        # False on a held lock, and the next take's flock succeeds at once.
        self._os_locked = True

    def _release_os_lock(self) -> None:
        """Release the OS lock; the caller holds ``threads``."""
        if not self._os_locked:
            return
        # Cleared first: an interrupt after it leaves a held lock marked free,
        # which the next take re-takes (a no-op flock) and then releases.
        self._os_locked = False
        _unlock(self._fd)

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


class _OsLock:
    """``WriterLock.processes``: the OS lock, entered while holding ``threads``."""

    __slots__ = ("_lock",)

    def __init__(self, lock: WriterLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock._take_os_lock()  # noqa: SLF001 - the lock's own part

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock._release_os_lock()  # noqa: SLF001 - the lock's own part
