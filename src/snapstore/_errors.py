"""The exception hierarchy: one base, each error also the builtin it resembles.

Every error pickles as itself: a process pool's parent unpickles the errors
its workers raise. Pickle rebuilds an exception as ``type(*self.args)`` plus
its ``__dict__``, so an error whose constructor takes other arguments than its
message says how to rebuild it (``__reduce__``, as OSError does); otherwise
unpickling fails with a TypeError, and the pool breaks instead of reporting it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import TracebackType


class SnapstoreError(Exception):
    """Base class of every error snapstore raises."""


class InvalidInputError(SnapstoreError, ValueError):
    """An argument was rejected; nothing was written."""


class KeyConflictError(InvalidInputError):
    """A keyed append retried with other data than the record stored under its key.

    A key names one request: the retry of an append must send the same
    record. Nothing was written; the stored record is ``.stored``.
    """

    def __init__(self, message: str, stored: object) -> None:
        super().__init__(message)
        self.stored = stored

    def __reduce__(self) -> tuple[type[KeyConflictError], tuple[object, object], dict[str, Any]]:
        return type(self), (self.args[0], self.stored), self.__dict__


class NotFoundError(SnapstoreError, KeyError):
    """A record or snapshot that was asked for by its identity does not exist."""

    def __str__(self) -> str:
        # KeyError.__str__ quotes its argument as a repr; a sentence reads better.
        return str(self.args[0]) if self.args else ""


class LockTimeout(SnapstoreError, TimeoutError):
    """The writer lock was not obtained within the caller's timeout."""

    def __init__(self, path: Path | str, timeout: float) -> None:
        super().__init__(
            f"could not acquire the writer lock {path} within {timeout:g} s; "
            "another process holds it (raise lock_timeout to wait longer)"
        )
        self.path = path
        self.timeout = timeout

    def __reduce__(self) -> tuple[type[LockTimeout], tuple[Path | str, float], dict[str, Any]]:
        # Rebuilt from its fields, not its message; the __dict__ brings back
        # what was added after (notes).
        return type(self), (self.path, self.timeout), self.__dict__


class CorruptionError(SnapstoreError, ValueError):
    """A stored file holds bytes that are not a valid record."""

    def __init__(
        self, path: Path, offset: int, line: int | None, reason: str, *, repairable: bool = True
    ) -> None:
        where = f"{path} at byte offset {offset}"
        if line is not None:
            where += f" (line {line})"
        advice = (
            f"; run `snapstore verify {path}` for a full report and "
            f"`snapstore repair {path}` to move the damaged bytes to quarantine"
            if repairable
            else ""
        )
        super().__init__(f"{where}: {reason}{advice}")
        self.path = path
        self.offset = offset
        self.line = line
        self.reason = reason
        self.repairable = repairable

    def __reduce__(
        self,
    ) -> tuple[Callable[..., CorruptionError], tuple[Path, int, int | None, str], dict[str, Any]]:
        # A partial carries the keyword-only argument; the message (with or
        # without the advice to repair) is made again from the fields.
        rebuild = functools.partial(type(self), repairable=self.repairable)
        return rebuild, (self.path, self.offset, self.line, self.reason), self.__dict__


class NotAHistoryError(SnapstoreError, FileExistsError):
    """The file holds bytes snapstore did not write; nothing was changed or created."""


class NotAStoreError(SnapstoreError, FileExistsError):
    """The directory holds files but is not a snapstore store."""


class StorageError(SnapstoreError, OSError):
    """The file system failed an operation (EIO, ENOSPC, ...); the OS error is the cause."""


class DurabilityError(StorageError):
    """A sync failed; the handle refuses further writes until reopened.

    After a failed fsync the kernel may have dropped the dirty pages, so a retry
    could report success for data that is not on disk. The records of the failed
    call may or may not have been stored: retry with a ``key`` for exactly-once.
    """


class UnsupportedFilesystemError(SnapstoreError, OSError):
    """``strict=True`` and the path is on a network or FUSE file system."""


class ClosedError(SnapstoreError, ValueError):
    """The handle was closed (or made unusable by a failed sync)."""


class ReadOnlyError(SnapstoreError, io.UnsupportedOperation):
    """A write through a handle opened with ``read_only=True``; nothing was written.

    Like writing to a file opened for reading, also an ``OSError`` and a ``ValueError``.
    """


class InheritedHandleError(ClosedError):
    """A handle opened before ``fork()`` was used in the child: open a new one there."""


class CheckpointWarning(UserWarning):
    """Writing the derived indices after a committed save failed; nothing was lost.

    The save itself is durable and returned normally. The checkpoint is tried
    again later (and at ``close()``); until then opening the store replays more
    of the log.
    """


class FilesystemWarning(UserWarning):
    """The store or history lives on a file system where locking or fsync is unreliable."""


class storage_errors:  # noqa: N801 - reads as the function-style context manager it is
    """Report an OS error inside the block as a StorageError naming ``path``.

    A class, not a generator-based context manager: it wraps every append, and
    contextlib's machinery would cost more than the write it wraps.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, OSError):
            self.reraise(exc)

    def reraise(self, exc: OSError) -> None:
        """Raise ``exc`` as a StorageError naming the path; snapstore's own errors pass.

        For hot paths that catch the error themselves: a ``try`` costs nothing
        until it fails, where entering and leaving this block are two calls.
        """
        if not isinstance(exc, SnapstoreError):
            raise StorageError(exc.errno, f"{self.path}: {exc.strerror or exc}") from exc


# The errors with which a file system refuses a writer that may only read.
_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextlib.contextmanager
def read_only_hint(read_only: bool) -> Iterator[None]:
    """Make a writable open that the file system refuses say how to open it for reading."""
    try:
        yield
    except StorageError as exc:
        if read_only or exc.errno not in _NOT_WRITABLE:
            raise
        raise StorageError(
            exc.errno, f"{exc.strerror}; to only read it, open it with read_only=True"
        ) from exc
