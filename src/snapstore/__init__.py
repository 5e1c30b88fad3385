"""snapstore: crash-safe local snapshot and history storage."""

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
from snapstore._report import CheckReport, Finding, Problem
from snapstore.history import HistoryRecord, IterationHistory
from snapstore.snapshot import NormalizedSnapshot, ReadOnlyDict
from snapstore.store import SnapshotStore

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
