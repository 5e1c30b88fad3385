"""snapstore: crash-safe local snapshot and history storage."""

from typing import TYPE_CHECKING

from snapstore._errors import (
    CheckpointWarning,
    ClosedError,
    CorruptionError,
    DurabilityError,
    FilesystemWarning,
    InheritedHandleError,
    InvalidInputError,
    KeyConflictError,
    LockTimeout,
    NotAHistoryError,
    NotAStoreError,
    NotFoundError,
    ReadOnlyError,
    SnapstoreError,
    StorageError,
    UnsupportedFilesystemError,
)
from snapstore._log.record import FORMAT_VERSION
from snapstore._options import Durability
from snapstore.history import HistoryRecord, IterationHistory
from snapstore.snapshot import NormalizedSnapshot, ReadOnlyDict
from snapstore.store import SnapshotStore

if TYPE_CHECKING:
    from snapstore._report import CheckReport, Finding, Problem

__version__ = FORMAT_VERSION

__all__ = [
    "CheckReport",
    "CheckpointWarning",
    "ClosedError",
    "CorruptionError",
    "Durability",
    "DurabilityError",
    "FilesystemWarning",
    "Finding",
    "HistoryRecord",
    "InheritedHandleError",
    "InvalidInputError",
    "IterationHistory",
    "KeyConflictError",
    "LockTimeout",
    "NormalizedSnapshot",
    "NotAHistoryError",
    "NotAStoreError",
    "NotFoundError",
    "Problem",
    "ReadOnlyDict",
    "ReadOnlyError",
    "SnapshotStore",
    "SnapstoreError",
    "StorageError",
    "UnsupportedFilesystemError",
    "__version__",
]

# What verify and repair report, imported when first asked for: a process that
# only saves and reads never makes a report, and building its three dataclasses
# would be a noticeable part of every import.
_REPORTS = frozenset({"CheckReport", "Finding", "Problem"})

if not TYPE_CHECKING:  # to type checkers the names are the imports above, and typos stay errors

    def __getattr__(name: str) -> object:
        if name not in _REPORTS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from snapstore import _report  # noqa: PLC0415 - see _REPORTS

        value = getattr(_report, name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | _REPORTS)
