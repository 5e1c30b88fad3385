"""The writer lock: a thread lock inside the process, an OS file lock across processes.

The OS lock is ``flock``-style (portalocker: ``flock`` on POSIX, ``LockFileEx``
on Windows), held on a descriptor this object keeps open for its lifetime, so
taking it costs two system calls. POSIX record locks (``fcntl.lockf``) are never
used: a process loses them when it closes *any* descriptor of the file.

The lock is re-entrant for the thread that holds it, so an operation that must
decide under the lock (a baseline pin) can append through the same log.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Self

import portalocker

from snapstore._errors import LockTimeout

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from snapstore._io import FileSystem

_EXCLUSIVE_NOW = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
_FIRST_BACKOFF = 0.0002
_MAX_BACKOFF = 0.01


class WriterLock:
    """Mutual exclusion for the writers of one log (or one store)."""

    def __init__(self, path: Path, fs: FileSystem, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fs = fs
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._owner_thread = 0
        self._owner_pid = os.getpid()
        # The lock file is never deleted: deleting it would let two processes
        # lock two different inodes under one name.
        self._fd, _ = fs.open_log(path)

    def acquire(self) -> None:
        self._check_process()
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise LockTimeout(self.path, self.timeout)
        if self._depth == 0:
            try:
                self._acquire_os_lock(deadline)
            except BaseException:
                self._thread_lock.release()
                raise
            self._owner_thread = threading.get_ident()
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner_thread = 0
            portalocker.unlock(self._fd)
        self._thread_lock.release()

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

    def held_by_me(self) -> bool:
        return self._owner_thread == threading.get_ident()

    def close(self) -> None:
        # Idempotent: closing the same descriptor number twice could close a
        # file that the process has since opened under that number.
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        self._fs.close(fd)

    def _acquire_os_lock(self, deadline: float) -> None:
        # flock has no timeout: poll non-blocking with a growing pause. The
        # first attempt is the common, uncontended case and costs no sleep.
        backoff = _FIRST_BACKOFF
        while True:
            try:
                portalocker.lock(self._fd, _EXCLUSIVE_NOW)
            except portalocker.AlreadyLocked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockTimeout(self.path, self.timeout) from None
                time.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                return

    def _check_process(self) -> None:
        # A forked child shares the parent's open file description, and flock
        # locks belong to that description: parent and child would not exclude
        # each other. The child takes a descriptor of its own.
        pid = os.getpid()
        if pid != self._owner_pid:
            self._owner_pid = pid
            self._thread_lock = threading.RLock()
            self._depth = 0
            self._owner_thread = 0
            self._fd, _ = self._fs.open_log(self.path)
