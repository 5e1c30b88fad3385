"""Helpers shared by the SnapshotStore tests: harnesses, on-disk pictures, answers.

A *harness* opens handles on one store and takes a picture of everything it
stores, so the conformance suite can check "nothing was written" without knowing
whether the store is a directory or a database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from snapstore import NormalizedSnapshot, SnapshotStore

if TYPE_CHECKING:
    from collections.abc import Iterable

    from snapstore._log.checked import Durability

STAGES = ("TARGET_RANKING", "FEATURE_SELECTION", "TRAINING")
DERIVED_FILES = ("index.parquet", "snapshot_index.json")


class StoreHarness(Protocol):
    """One store of some backend, opened as many times as a test needs."""

    def open(self, **options: Any) -> SnapshotStore:
        """A new handle on the store (closed by the harness at teardown)."""

    def state(self) -> object:
        """A picture of everything stored; equal pictures mean nothing was written."""

    def close_all(self) -> None:
        """Close every handle this harness opened."""


class LocalHarness:
    """The local directory backend: a store is ``root``; its picture is every file's bytes."""

    def __init__(self, root: Path, durability: Durability) -> None:
        self.root = root
        self.durability: Durability = durability
        self._opened: list[SnapshotStore] = []

    def open(self, **options: Any) -> SnapshotStore:
        options.setdefault("durability", self.durability)
        store = SnapshotStore(self.root, **options)
        self._opened.append(store)
        return store

    def state(self) -> dict[str, bytes]:
        return file_state(self.root)

    def close_all(self) -> None:
        for store in self._opened:
            store.close()
        self._opened.clear()


def file_state(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def json_text(value: object) -> bytes:
    """Canonical JSON: tells 1 from 1.0 and from True, ignores key order."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def same_content(a: NormalizedSnapshot, b: NormalizedSnapshot) -> bool:
    """Whether two snapshots hold exactly the same fields (types included)."""
    return json_text(a.to_dict()) == json_text(b.to_dict())


def save_all(store: SnapshotStore, snaps: Iterable[NormalizedSnapshot]) -> list[NormalizedSnapshot]:
    return [store.save_snapshot(snap) for snap in snaps]


def pipeline(runs: int, configs: int = 2) -> list[NormalizedSnapshot]:
    """``runs`` runs through every stage, alternating between ``configs`` configs."""
    return [
        NormalizedSnapshot(
            f"run-{run}",
            stage,
            metrics={"auc": 0.7 + run / 100, "stage": position},
            config={"model": "gbm", "depth": run % configs},
            data={"rows": run * 10},
        )
        for run in range(1, runs + 1)
        for position, stage in enumerate(STAGES)
    ]


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
    """A closed store with versions, several comparison groups and re-pinned baselines.

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
    for name in DERIVED_FILES:
        (root / name).unlink(missing_ok=True)
