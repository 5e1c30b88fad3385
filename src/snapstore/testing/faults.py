"""Fault injection through the I/O seam: fail chosen file-system calls with an OS error.

Install a :class:`FaultInjector` with :func:`snapstore._log.seam.installed` before
opening a handle. It counts every primitive call the handle makes (the
composites of :class:`~snapstore._log.seam.FileSystem` are built on the primitives, so
their calls are counted too) and fails the k-th one, or every one from the k-th
on, the way a failing disk (``EIO``) or a full one (``ENOSPC``) would::

    fs = FaultInjector()
    with installed(fs), IterationHistory(path) as history:
        fs.arm(3, error=errno.ENOSPC)  # count from here; fail the third call
        history.append({"loss": 0.5})  # raises StorageError

Running an operation once with nothing armed tells how many calls it makes
(``len(fs.calls)``), so a test can fail each of them in turn.
"""

from __future__ import annotations

import errno as errno_codes
import functools
import os
import threading
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from snapstore._log.seam import FileSystem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

PRIMITIVES: frozenset[str] = frozenset(
    {
        "close",
        "fd_identity",
        "identity",
        "link",
        "mkdir",
        "open_lock",
        "open_log",
        "open_read",
        "open_temp",
        "read",
        "replace",
        "size",
        "sync",
        "sync_dir",
        "truncate",
        "unlink",
        "write",
        "write_at",
    }
)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _counted(
    primitive: Callable[Concatenate[FileSystem, _P], _R],
) -> Callable[Concatenate[FaultInjector, _P], _R]:
    """Wrap a primitive that fails before it has any effect (or, ``after_effect``, after)."""
    name = primitive.__name__

    @functools.wraps(primitive)
    def call(self: FaultInjector, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        fault = self._next_call(name)
        if fault is None:
            return primitive(self, *args, **kwargs)
        if self.after_effect:
            primitive(self, *args, **kwargs)
        raise fault

    return call


class FaultInjector(FileSystem):
    """A :class:`FileSystem` that fails chosen primitive calls with an ``OSError``.

    ``fail_at`` is the 1-based number of the call to fail, counted from
    construction or from the last :meth:`arm` (None: count, fail nothing).
    With ``persistent`` every call from that one on fails, as on a dead or full
    disk. ``only`` restricts counting and failing to the named primitives
    (e.g. ``{"sync"}`` fails the k-th sync). With ``torn_writes`` a failing
    ``write`` first stores the first half of its data, as a write cut short by
    a full disk does. A failing ``close`` still releases the descriptor, as
    ``close(2)`` on Linux does.

    With ``interrupt`` the chosen call raises ``KeyboardInterrupt`` instead, as
    Ctrl-C (or any exception a signal handler raises) does when it arrives
    during the call; with ``after_effect`` it arrives once the call has had its
    effect (a signal handled as the system call returns).
    """

    def __init__(
        self,
        fail_at: int | None = None,
        *,
        error: int = errno_codes.EIO,
        persistent: bool = False,
        only: Iterable[str] | None = None,
        torn_writes: bool = False,
        interrupt: bool = False,
        after_effect: bool = False,
    ) -> None:
        self.only: frozenset[str] = PRIMITIVES if only is None else frozenset(only)
        if unknown := self.only - PRIMITIVES:
            raise ValueError(f"not primitives of FileSystem: {', '.join(sorted(unknown))}")
        self.torn_writes = torn_writes
        self.interrupt = interrupt
        self.after_effect = after_effect
        # Group commit and readers call the seam from several threads.
        self._mutex = threading.Lock()
        self.calls: list[str] = []
        self.faults = 0
        self.fail_at: int | None = None
        self.error = error
        self.persistent = persistent
        self.arm(fail_at, error=error, persistent=persistent)

    def arm(
        self, fail_at: int | None, *, error: int | None = None, persistent: bool | None = None
    ) -> None:
        """Restart counting and fail the ``fail_at``-th call from now (None: disarm).

        ``error`` and ``persistent`` keep their previous values when omitted.
        """
        if fail_at is not None and fail_at < 1:
            raise ValueError(f"fail_at counts calls from 1, not {fail_at}")
        with self._mutex:
            self.calls = []
            self.faults = 0
            self.fail_at = fail_at
            if error is not None:
                self.error = error
            if persistent is not None:
                self.persistent = persistent

    def _next_call(self, name: str) -> BaseException | None:
        """Count a call of primitive ``name``; return the error it must raise, if any."""
        if name not in self.only:
            return None
        with self._mutex:
            self.calls.append(name)
            number = len(self.calls)
            if self.fail_at is None or number < self.fail_at:
                return None
            if number > self.fail_at and not self.persistent:
                return None
            self.faults += 1
        if self.interrupt:
            return KeyboardInterrupt(f"injected interrupt ({name})")
        return OSError(self.error, f"injected fault: {os.strerror(self.error)} ({name})")

    open_log = _counted(FileSystem.open_log)
    open_read = _counted(FileSystem.open_read)
    open_lock = _counted(FileSystem.open_lock)
    open_temp = _counted(FileSystem.open_temp)
    read = _counted(FileSystem.read)
    size = _counted(FileSystem.size)
    identity = _counted(FileSystem.identity)
    fd_identity = _counted(FileSystem.fd_identity)
    sync = _counted(FileSystem.sync)
    sync_dir = _counted(FileSystem.sync_dir)
    truncate = _counted(FileSystem.truncate)
    replace = _counted(FileSystem.replace)
    link = _counted(FileSystem.link)
    unlink = _counted(FileSystem.unlink)
    mkdir = _counted(FileSystem.mkdir)
    write_at = _counted(FileSystem.write_at)

    def write(self, fd: int, data: bytes) -> None:
        fault = self._next_call("write")
        if fault is not None:
            if self.after_effect:
                super().write(fd, data)
            elif self.torn_writes:
                super().write(fd, data[: len(data) // 2])
            raise fault
        super().write(fd, data)

    def close(self, fd: int) -> None:
        fault = self._next_call("close")
        super().close(fd)
        if fault is not None:
            raise fault
