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
    from snapstore._report import CheckReport, Finding, Problem, StoreInfo
    from snapstore.diff import FieldChange, MappingDiff, MetricChange, SnapshotDiff, diff_snapshots

__version__ = FORMAT_VERSION

__all__ = [
    "CheckReport",
    "CheckpointWarning",
    "ClosedError",
    "CorruptionError",
    "Durability",
    "DurabilityError",
    "FieldChange",
    "FilesystemWarning",
    "Finding",
    "HistoryRecord",
    "InheritedHandleError",
    "InvalidInputError",
    "IterationHistory",
    "KeyConflictError",
    "LockTimeout",
    "MappingDiff",
    "MetricChange",
    "NormalizedSnapshot",
    "NotAHistoryError",
    "NotAStoreError",
    "NotFoundError",
    "Problem",
    "ReadOnlyDict",
    "ReadOnlyError",
    "SnapshotDiff",
    "SnapshotStore",
    "SnapstoreError",
    "StorageError",
    "StoreInfo",
    "UnsupportedFilesystemError",
    "__version__",
    "diff_snapshots",
]

# Imported when first asked for, by the module that defines them: a process
# that only saves and reads never makes a report or a diff, and building their
# dataclasses would be a noticeable part of every import.
_LAZY = {
    **dict.fromkeys(("CheckReport", "Finding", "Problem", "StoreInfo"), "snapstore._report"),
    **dict.fromkeys(
        ("FieldChange", "MappingDiff", "MetricChange", "SnapshotDiff", "diff_snapshots"),
        "snapstore.diff",
    ),
}

if not TYPE_CHECKING:  # to type checkers the names are the imports above, and typos stay errors

    def __getattr__(name: str) -> object:
        if name not in _LAZY:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib  # noqa: PLC0415 - see _LAZY

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY))
