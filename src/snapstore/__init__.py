"""snapstore: crash-safe local snapshot and history storage."""

from snapstore._errors import (
    ClosedError,
    CorruptionError,
    DurabilityError,
    InvalidInputError,
    LockTimeout,
    NotFoundError,
    SnapstoreError,
    StorageError,
)
from snapstore._record import FORMAT_VERSION
from snapstore.history import HistoryRecord, IterationHistory

__version__ = FORMAT_VERSION

__all__ = [
    "ClosedError",
    "CorruptionError",
    "DurabilityError",
    "HistoryRecord",
    "InvalidInputError",
    "IterationHistory",
    "LockTimeout",
    "NotFoundError",
    "SnapstoreError",
    "StorageError",
    "__version__",
]
