"""Snapshots as a pipeline saves them, and stores of a given size built once per run.

A run's config (and so its comparison key) is one of ``_CONFIGS``, so every
(stage, comparison key) group holds many runs, as it does when a pipeline is
re-run with a handful of configurations. Which run and stage snapshot ``i``
belongs to is the store's *shape*:

- ``pipeline``: run ``i // 5`` through five stages, one version each;
- ``versions``: 50,000 runs (fewer in a small store) through three stages,
  re-run until the store is full, so each key holds several versions;
- ``distinct``: a run of its own for every snapshot, one stage.
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


SHAPES = ("pipeline", "versions", "distinct")
_VERSION_STAGES = STAGES[:3]
_VERSION_RUNS = 50_000


def _run_number(i: int, shape: str, n: int) -> int:
    if shape == "pipeline":
        return i // len(STAGES)
    if shape == "versions":
        runs = max(1, min(_VERSION_RUNS, n // len(_VERSION_STAGES)))
        return i // len(_VERSION_STAGES) % runs
    return i


def run_id(i: int, shape: str = "pipeline", n: int = 0) -> str:
    """The run of snapshot ``i`` of a store of ``n`` snapshots of ``shape``."""
    return f"run-{_run_number(i, shape, n):07d}"


def stage(i: int, shape: str = "pipeline") -> str:
    if shape == "pipeline":
        return STAGES[i % len(STAGES)]
    return _VERSION_STAGES[i % len(_VERSION_STAGES)] if shape == "versions" else "train"


def _config(run: int) -> dict[str, Any]:
    return {"model": f"model-{run % _CONFIGS}", "lr": 0.0003, "epochs": 10}


@functools.cache
def comparison_key(model: str) -> str:
    return config_fingerprint({"model": model, "lr": 0.0003, "epochs": 10})


def snapshot(i: int, shape: str = "pipeline", n: int = 0) -> NormalizedSnapshot:
    """Snapshot ``i`` of a store of ``n`` snapshots of ``shape`` (see above)."""
    run, stage_of = run_id(i, shape, n), stage(i, shape)
    return NormalizedSnapshot(
        run_id=run,
        stage=stage_of,
        metrics={"loss": 0.2315, "accuracy": 0.9371, "rows": 10_000 + i % 977},
        config=_config(_run_number(i, shape, n)),
        data={"artifact": f"s3://bucket/{run}/{stage_of}.parquet"},
    )


def snapshot_dict(i: int) -> dict[str, Any]:
    """Snapshot ``i`` as a JSON index of the older layout holds it."""
    return snapshot(i).to_dict()


def built_store(ctx: Context, n: int, shape: str = "pipeline") -> Path:
    """A store of snapshots 0..n-1 of ``shape``, built once per run in the shared directory.

    Built with durability "write" (an fsync per save would take hours at a
    million); its close writes the checkpoint a store of that size opens from.
    Callers must not write to it: copy it first (:func:`copied_store`).
    """
    root = ctx.shared / (f"store-{n}" if shape == "pipeline" else f"store-{n}-{shape}")
    if not (root / _DONE).exists():
        shutil.rmtree(root, ignore_errors=True)
        with SnapshotStore(root, durability="write", checkpoint_every=_NO_CHECKPOINT) as store:
            for i in range(n):
                store.save_snapshot(snapshot(i, shape, n))
        (root / _DONE).touch()
    return root


def copied_store(ctx: Context, n: int) -> Path:
    """A private copy of :func:`built_store` in the scratch directory."""
    copy = ctx.scratch / "store"
    shutil.copytree(built_store(ctx, n), copy)
    return copy


def built_sqlite(ctx: Context, n: int, shape: str = "pipeline") -> Path:
    """The same snapshots in SQLite, indexed for snapstore's two lookups."""
    path = ctx.shared / (
        f"snapshots-{n}.db" if shape == "pipeline" else f"snapshots-{n}-{shape}.db"
    )
    if path.exists():
        return path
    building = path.with_suffix(".building")
    db = connect(building, "NORMAL")
    try:
        with db:
            db.executemany(INSERT, (sqlite_row(i, shape, n) for i in range(n)))
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


def sqlite_row(i: int, shape: str = "pipeline", n: int = 0) -> tuple[str, ...]:
    snap = snapshot(i, shape, n)
    return (
        snap.run_id,
        snap.stage,
        comparison_key(snap.config["model"]),
        *(orjson.dumps(dict(m)).decode() for m in (snap.metrics, snap.config, snap.data)),
    )
