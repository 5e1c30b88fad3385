"""Helpers shared by the local SnapshotStore tests: answers, filled stores, copies.

The helpers every backend's tests share ship with the conformance suite
(``snapstore.testing.conformance``, ``snapstore.testing.harnesses``) and are
re-exported here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore.testing.conformance import STAGES, json_text, pipeline, same_content, save_all
from snapstore.testing.harnesses import LocalStoreHarness, file_state

__all__ = [
    "DERIVED_FILES",
    "INDEX_FILES",
    "STAGES",
    "LocalStoreHarness",
    "answers",
    "answers_of",
    "copy_store",
    "file_state",
    "fill_store",
    "json_text",
    "pipeline",
    "remove_checkpoint",
    "same_content",
    "save_all",
    "scratch_dir",
]

# The checkpoint's files, and the index file with SQLite's files beside it.
DERIVED_FILES = ("index.parquet", "snapshot_index.json")
INDEX_FILES = ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm")


def answers(store: SnapshotStore) -> dict[str, Any]:
    """Every answer the store gives about its content, as plain JSON-ready values.

    Two stores give the same answers exactly when these pictures are equal.
    """
    snaps = list(store.snapshots())
    keys = sorted({(s.run_id, s.stage) for s in snaps})
    groups = sorted({(s.stage, s.comparison_key or "") for s in snaps})

    def seq_of(snap: NormalizedSnapshot | None) -> int | None:
        return None if snap is None else snap.snapshot_seq

    unsaved = [NormalizedSnapshot("a-new-run", stage, comparison_key=key) for stage, key in groups]
    return {
        "len": len(store),
        "snapshots": [s.to_dict() for s in snaps],
        "by_seq": [store.get_by_seq(s.snapshot_seq or 0).to_dict() for s in snaps],
        "latest": {f"{r}:{s}": seq_of(store.get(r, s)) for r, s in keys},
        "versions": {f"{r}:{s}": [seq_of(v) for v in store.versions(r, s)] for r, s in keys},
        "runs": {r: [seq_of(v) for v in store.snapshots(run_id=r)] for r, _ in keys},
        "stages": {s: [seq_of(v) for v in store.snapshots(stage=s)] for _, s in keys},
        "previous": [seq_of(store.find_previous_comparable(s)) for s in snaps + unsaved],
        "baselines": [seq_of(store.baseline(stage, key)) for stage, key in groups],
    }


def answers_of(root: Path) -> dict[str, Any]:
    """The answers of a store opened afresh at ``root``."""
    with SnapshotStore(root) as store:
        return answers(store)


def fill_store(root: Path, run_prefix: str = "run") -> Path:
    """A closed, checkpointed store with versions, comparison groups and re-pinned baselines.

    Stores filled with prefixes of one length have lines of identical lengths.
    """
    snaps = [replace(s, run_id=s.run_id.replace("run", run_prefix)) for s in pipeline(runs=4)]
    with SnapshotStore(root, durability="write") as store:
        saved = save_all(store, snaps)
        store.save_snapshot(replace(snaps[5], metrics={"rerun": 1}))
        store.get_or_establish_baseline(saved[2])
        store.set_baseline(saved[-1])
        store.get_or_establish_baseline(saved[1])
        store.history(f"{run_prefix}-1.TRAINING").append({"loss": 0.5})
        store.checkpoint()
    return root


def scratch_dir(prefix: str) -> Path:
    """A new temporary directory, in memory (tmpfs) where the system has one.

    For tests of semantics that open hundreds of stores: each atomic checkpoint
    write syncs a file and its directory, milliseconds apiece on a disk and
    free on tmpfs. Durability itself is tested elsewhere, on real disks.
    """
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def copy_store(source: Path, target: Path, *, keep_mtimes: bool = False) -> Path:
    """A copy of the store directory; new mtimes unless ``keep_mtimes``."""
    copy = shutil.copy2 if keep_mtimes else shutil.copy
    shutil.copytree(source, target, copy_function=copy)
    return target


def remove_checkpoint(root: Path) -> None:
    """Remove every file the store derives from its logs (it must not be open)."""
    for name in (*DERIVED_FILES, *INDEX_FILES):
        (root / name).unlink(missing_ok=True)
