"""Snapshots as a pipeline saves them, and stores of a given size built once per run.

A run has five stages; its config (and so its comparison key) is one of
``_CONFIGS``, so every (stage, comparison key) group holds many runs, as it
does when a pipeline is re-run with a handful of configurations.
"""

from __future__ import annotations

import functools
import shutil
import sqlite3
from typing import TYPE_CHECKING, Any

import orjson

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore.snapshot import config_fingerprint

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.registry import Context

STAGES = ("load", "clean", "train", "evaluate", "report")
_CONFIGS = 50
# A store built for the benchmarks checkpoints once, on close: the build is not
# timed, and checkpoints along the way would only make it slower.
_NO_CHECKPOINT = 1 << 62
_DONE = "built"


def run_id(i: int) -> str:
    return f"run-{i // len(STAGES):07d}"


def stage(i: int) -> str:
    return STAGES[i % len(STAGES)]


def _config(i: int) -> dict[str, Any]:
    return {"model": f"model-{i // len(STAGES) % _CONFIGS}", "lr": 0.0003, "epochs": 10}


@functools.cache
def comparison_key(model: str) -> str:
    return config_fingerprint({"model": model, "lr": 0.0003, "epochs": 10})


def snapshot(i: int) -> NormalizedSnapshot:
    """Snapshot ``i``: stage ``i % 5`` of run ``i // 5``."""
    return NormalizedSnapshot(
        run_id=run_id(i),
        stage=stage(i),
        metrics={"loss": 0.2315, "accuracy": 0.9371, "rows": 10_000 + i % 977},
        config=_config(i),
        data={"artifact": f"s3://bucket/{run_id(i)}/{stage(i)}.parquet"},
    )


def snapshot_dict(i: int) -> dict[str, Any]:
    """Snapshot ``i`` as a JSON index of the older layout holds it."""
    return snapshot(i).to_dict()


def built_store(ctx: Context, n: int) -> Path:
    """A store of snapshots 0..n-1, built once per run in the shared directory.

    Built with durability "write" (an fsync per save would take hours at a
    million); its close writes the checkpoint a store of that size opens from.
    Callers must not write to it: copy it first (:func:`copied_store`).
    """
    root = ctx.shared / f"store-{n}"
    if not (root / _DONE).exists():
        shutil.rmtree(root, ignore_errors=True)
        with SnapshotStore(root, durability="write", checkpoint_every=_NO_CHECKPOINT) as store:
            for i in range(n):
                store.save_snapshot(snapshot(i))
        (root / _DONE).touch()
    return root


def copied_store(ctx: Context, n: int) -> Path:
    """A private copy of :func:`built_store` in the scratch directory."""
    copy = ctx.scratch / "store"
    shutil.copytree(built_store(ctx, n), copy)
    return copy


def built_sqlite(ctx: Context, n: int) -> Path:
    """The same snapshots in SQLite, indexed for snapstore's two lookups."""
    path = ctx.shared / f"snapshots-{n}.db"
    if path.exists():
        return path
    building = path.with_suffix(".building")
    db = connect(building, "NORMAL")
    try:
        with db:
            db.executemany(INSERT, (sqlite_row(i) for i in range(n)))
    finally:
        db.close()
    building.rename(path)
    return path


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A WAL database with the snapshots table and the indices its lookups need."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute(
        "CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, "
        "stage TEXT NOT NULL, comparison_key TEXT NOT NULL, created_at TEXT NOT NULL, "
        "metrics TEXT NOT NULL, config TEXT NOT NULL, data TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS by_key ON snapshots (run_id, stage)")
    db.execute("CREATE INDEX IF NOT EXISTS by_group ON snapshots (stage, comparison_key, seq)")
    return db


INSERT = (
    "INSERT INTO snapshots (run_id, stage, comparison_key, created_at, metrics, config, data) "
    "VALUES (?, ?, ?, datetime('now'), ?, ?, ?)"
)


def sqlite_row(i: int) -> tuple[str, ...]:
    snap = snapshot(i)
    return (
        snap.run_id,
        snap.stage,
        comparison_key(snap.config["model"]),
        *(orjson.dumps(dict(m)).decode() for m in (snap.metrics, snap.config, snap.data)),
    )
