"""One history file, checked or repaired: its log, and keys used once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapstore._errors import storage_errors
from snapstore._log import seam
from snapstore._log.checked import refuse_foreign
from snapstore._log.lock import lock_file_of
from snapstore._log.synced import SyncedMark
from snapstore._options import DEFAULT_LOCK_TIMEOUT, check_flag
from snapstore.backends.local.layout import (
    QUARANTINE_DIR,
    default_quarantine_dir,
    refuse_store_log,
    store_of_history,
)
from snapstore.backends.local.repair.salvage import Repairing, check_log, consistent_cut

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore._log.record import LogRecord
    from snapstore._report import CheckReport


def check_history(
    path: Path,
    *,
    repair: bool = False,
    dry_run: bool = False,
    quarantine_dir: Path | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> CheckReport:
    """Verify (or repair) the history file ``path``, waiting up to ``lock_timeout`` for its lock."""
    check_flag("dry_run", dry_run)
    fs = seam.current()
    keys: set[str] = set()

    def unique_key(record: LogRecord) -> str | None:
        if record.key is None:
            return None
        if record.key in keys:
            return f"key {record.key!r} appears twice"
        keys.add(record.key)
        return None

    refuse_store_log(path)
    with storage_errors(path):
        refuse_foreign(fs, path, lock_file_of(path))
    if quarantine_dir is None:
        store = store_of_history(path)
        quarantine_dir = default_quarantine_dir(path) if store is None else store / QUARANTINE_DIR
    cut = consistent_cut(fs, lock_file_of(path), [path], hold=repair, lock_timeout=lock_timeout)
    with storage_errors(path), cut as ((size,), lock):
        repairing = Repairing(quarantine_dir, SyncedMark(fs, lock), dry_run) if repair else None
        return check_log(fs, path, size, unique_key, repairing)
