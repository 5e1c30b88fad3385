"""The names of a store's files, and which files belong to a store.

In a module of its own because both sides need them: the store that lays
its directory out, and a history (or a check of one) that must not take a
store's log for a history of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from snapstore._errors import InvalidInputError
from snapstore._names import fit_name

MARKER = "SNAPSTORE"
STORE_FORMAT = 1
SNAPSHOT_LOG = "snapshots.jsonl"
BASELINE_LOG = "baselines.jsonl"
LOCK_FILE = ".lock"
HISTORY_DIR = "history"
QUARANTINE_DIR = "quarantine"


def store_of_log(path: Path) -> Path | None:
    """The store whose snapshot or pin log ``path`` is (symlinks resolved), or None."""
    real = Path(path).resolve()
    if real.name in (SNAPSHOT_LOG, BASELINE_LOG) and (real.parent / MARKER).exists():
        return real.parent
    return None


def store_of_history(path: Path) -> Path | None:
    """The store that ``path`` is a history of (``<store>/history/<name>.jsonl``), or None."""
    real = Path(path).resolve()
    root = real.parent.parent
    if real.parent.name == HISTORY_DIR and (root / MARKER).exists():
        return root
    return None


def refuse_store_log(path: Path) -> None:
    """Refuse a store's own snapshot or pin log as a history: it has the store's lock."""
    store = store_of_log(path)
    if store is not None:
        raise InvalidInputError(
            f"{path} is a log of the store {store}, written under the store's lock: "
            f"open it with SnapshotStore({str(store)!r}) (or `snapstore verify {store}`)"
        )


def default_quarantine_dir(log: Path) -> Path:
    """Where a standalone history's damaged bytes go: beside the file its path leads to.

    A name too long for the suffix is shortened (see fit_name).
    """
    real = Path(os.path.realpath(log))
    return real.with_name(fit_name(real.name, ".quarantine"))
