"""snapstore: crash-safe local snapshot and history storage."""

from snapstore._errors import (
    CheckpointWarning,
    ClosedError,
    CorruptionError,
    DurabilityError,
    InheritedHandleError,
    InvalidInputError,
    KeyConflictError,
    LockTimeout,
    NotAHistoryError,
    NotFoundError,
    ReadOnlyError,
    SnapstoreError,
    StorageError,
)
from snapstore._log.fstype import FilesystemWarning, UnsupportedFilesystemError
from snapstore._log.record import FORMAT_VERSION
from snapstore._report import CheckReport, Finding, Problem
from snapstore.backends.local.store import NotAStoreError
from snapstore.history import HistoryRecord, IterationHistory
from snapstore.snapshot import NormalizedSnapshot, ReadOnlyDict
from snapstore.store import SnapshotStore

__version__ = FORMAT_VERSION

__all__ = [
    "CheckReport",
    "CheckpointWarning",
    "ClosedError",
    "CorruptionError",
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
