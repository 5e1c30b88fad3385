"""SnapshotStore: saves per durability mode, concurrent savers, scale, open, lookups.

Compared in the same run with the raw write + fdatasync loop, with SQLite (WAL,
the lookups' indices) and with what snapstore replaces: a JSON index of every
snapshot, rewritten atomically on every save.
"""

from __future__ import annotations

import json
import os
import random
import time
from functools import partial
from typing import TYPE_CHECKING

import orjson

from benchmarks._child import run_child
from benchmarks._stores import (
    INSERT,
    built_sqlite,
    built_store,
    connect,
    copied_store,
    run_id,
    snapshot,
    snapshot_dict,
    sqlite_row,
    stage,
)
from benchmarks.baselines import json_rewrites
from benchmarks.registry import Context, Measurement, benchmark, latencies, timed_threads
from snapstore import SnapshotStore
from snapstore.backends.local.backend import DEFAULT_CHECKPOINT_EVERY
from snapstore.backends.local.store import checkpoint_interval

if TYPE_CHECKING:
    import sqlite3

    from benchmarks.registry import BenchmarkFunction
    from snapstore import Durability, NormalizedSnapshot

_GROUP = "SnapshotStore"
_THREADS = 8
# Store sizes for the scale figures: (full run, quick run).
_SCALES = {"small": (1_000, 100), "medium": (100_000, 500), "large": (1_000_000, 2_000)}
_OPEN = """
import json, resource, sys, time
from snapstore import SnapshotStore
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
store = SnapshotStore(sys.argv[1])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "count": len(store), "before_kb": before, "peak_kb": peak}))
store.close()
"""


def _size(ctx: Context, scale: str) -> int:
    return ctx.count(*_SCALES[scale])


def _timed_saves(store: SnapshotStore, snaps: list[NormalizedSnapshot]) -> float:
    start = time.perf_counter()
    for snap in snaps:
        store.save_snapshot(snap)
    return time.perf_counter() - start


def _saves(durability: Durability) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        n = ctx.count(1000 if durability == "fsync" else 20_000, 50)
        snaps = [snapshot(i) for i in range(n)]
        with SnapshotStore(ctx.scratch / "store", durability=durability) as store:
            seconds = _timed_saves(store, snaps)
            if len(store) != n:
                raise RuntimeError(f"{len(store)} snapshots saved, expected {n}")
        return Measurement(n, seconds)

    return run


benchmark(
    "store.save.fsync",
    group=_GROUP,
    durable=True,
    description='save_snapshot(), durability="fsync", one thread, empty store',
    ref="sqlite-snapshots.full",
)(_saves("fsync"))
benchmark(
    "store.save.write",
    group=_GROUP,
    durable=False,
    description='save_snapshot(), durability="write", one thread, empty store',
)(_saves("write"))


@benchmark(
    f"store.threads.{_THREADS}",
    group=_GROUP,
    durable=True,
    description=f"save_snapshot() from {_THREADS} threads of one handle, fsync",
    ref="store.save.fsync",
)
def threads(ctx: Context) -> Measurement:
    total = ctx.count(2400, 96)
    snaps = [snapshot(i) for i in range(total)]
    with SnapshotStore(ctx.scratch / "store") as store:
        seconds = timed_threads(_THREADS, total, lambda i: store.save_snapshot(snaps[i]))
        if len(store) != total:
            raise RuntimeError(f"{len(store)} snapshots saved, expected {total}")
    return Measurement(total, seconds)


@benchmark(
    "sqlite-snapshots.full",
    group=_GROUP,
    durable=True,
    description="sqlite3 WAL, synchronous=FULL, indexed like the store, one INSERT per snapshot",
)
def sqlite_saves(ctx: Context) -> Measurement:
    n = ctx.count(1000, 50)
    rows = [sqlite_row(i) for i in range(n)]
    db = connect(ctx.scratch / "snapshots.db", "FULL")
    try:
        start = time.perf_counter()
        for row in rows:
            db.execute(INSERT, row)
        seconds = time.perf_counter() - start
    finally:
        db.close()
    return Measurement(n, seconds)


def _json_index(existing: int, saves: tuple[int, int]) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        return json_rewrites(ctx, existing, ctx.count(*saves), snapshot_dict)

    return run


for _existing, _label, _saves_counts in ((1_000, "1k", (200, 10)), (10_000, "10k", (30, 3))):
    benchmark(
        f"json-index.{_label}",
        group=_GROUP,
        durable=True,
        description=f"rewrite a JSON index of {_existing:,} snapshots atomically per save",
        ref="store.save.fsync",
    )(_json_index(_existing, _saves_counts))


def _scale(scale: str) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        n = _size(ctx, scale)
        root = copied_store(ctx, n)
        os.sync()  # the copy's dirty pages must not be written back during the timed syncs
        saves = ctx.count(2000, 50)
        snaps = [snapshot(i) for i in range(n, n + saves)]
        with SnapshotStore(root) as store:
            seconds = _timed_saves(store, snaps)
            # A store this size checkpoints every `every` saves: charge the
            # timed saves their share of one checkpoint.
            every = checkpoint_interval(len(store), DEFAULT_CHECKPOINT_EVERY)
            start = time.perf_counter()
            store.checkpoint()
            checkpoint = time.perf_counter() - start
        share = checkpoint * saves / every
        return Measurement(
            saves,
            seconds + share,
            {"snapshots": n, "checkpoint_s": checkpoint, "checkpoint_every": every},
        )

    return run


for _scale_name, (_full, _quick) in _SCALES.items():
    benchmark(
        f"store.scale.{_scale_name}",
        group=_GROUP,
        durable=True,
        description=f"save_snapshot(), fsync, on a store of {_full:,} snapshots "
        f"({_quick:,} with --quick), checkpoints amortized",
        ref=None if _scale_name == "small" else "store.scale.small",
    )(_scale(_scale_name))


@benchmark(
    "store.open.large",
    group=_GROUP,
    durable=False,
    description="open the large store in a fresh process (from its checkpoint); peak RSS",
)
def open_large(ctx: Context) -> Measurement:
    root = built_store(ctx, _size(ctx, "large"))
    opened = json.loads(run_child(_OPEN, str(root)))
    return Measurement(
        1,
        opened["seconds"],
        {
            "snapshots": opened["count"],
            # Also the figure's time per operation; named here for its target.
            "open_s": opened["seconds"],
            "peak_rss_mb": opened["peak_kb"] / 1024,
            "before_open_rss_mb": opened["before_kb"] / 1024,
        },
    )


def _sample(ctx: Context) -> tuple[int, list[int]]:
    n = _size(ctx, "large")
    return n, random.Random(n).choices(range(n), k=ctx.count(20_000, 500))


@benchmark(
    "store.get",
    group=_GROUP,
    durable=False,
    description="get(run_id, stage) of a random key of the large store",
)
def get(ctx: Context) -> Measurement:
    n, picks = _sample(ctx)
    with SnapshotStore(built_store(ctx, n), durability="write") as store:
        return latencies([partial(store.get, run_id(i), stage(i)) for i in picks])


@benchmark(
    "store.previous_comparable",
    group=_GROUP,
    durable=False,
    description="find_previous_comparable(saved snapshot) in the large store",
)
def previous_comparable(ctx: Context) -> Measurement:
    n, picks = _sample(ctx)
    with SnapshotStore(built_store(ctx, n), durability="write") as store:
        snaps = [store.get(run_id(i), stage(i)) for i in picks]
        return latencies(
            [partial(store.find_previous_comparable, s) for s in snaps if s is not None]
        )


_SQLITE_COLUMNS = "seq, run_id, stage, comparison_key, created_at, metrics, config, data"


def _sqlite_lookup(db: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> object:
    # Decoded like the store's answer: the row with its three JSON documents parsed.
    row = db.execute(sql, args).fetchone()
    return None if row is None else (*row[:5], *(orjson.loads(text) for text in row[5:]))


@benchmark(
    "sqlite-snapshots.get",
    group=_GROUP,
    durable=False,
    description="the same get in SQLite: index on (run_id, stage), JSON decoded",
    ref="store.get",
)
def sqlite_get(ctx: Context) -> Measurement:
    n, picks = _sample(ctx)
    db = connect(built_sqlite(ctx, n), "NORMAL")
    sql = (
        f"SELECT {_SQLITE_COLUMNS} FROM snapshots WHERE run_id = ? AND stage = ? "
        "ORDER BY seq DESC LIMIT 1"
    )
    try:
        return latencies([partial(_sqlite_lookup, db, sql, (run_id(i), stage(i))) for i in picks])
    finally:
        db.close()


@benchmark(
    "sqlite-snapshots.previous",
    group=_GROUP,
    durable=False,
    description="the same previous comparable in SQLite: index on (stage, comparison_key, seq)",
    ref="store.previous_comparable",
)
def sqlite_previous(ctx: Context) -> Measurement:
    n, picks = _sample(ctx)
    db = connect(built_sqlite(ctx, n), "NORMAL")
    sql = (
        f"SELECT {_SQLITE_COLUMNS} FROM snapshots WHERE stage = ? AND comparison_key = ? "
        "AND seq < ? AND run_id != ? ORDER BY seq DESC LIMIT 1"
    )
    try:
        rows = [
            db.execute(
                "SELECT stage, comparison_key, seq, run_id FROM snapshots "
                "WHERE run_id = ? AND stage = ? ORDER BY seq DESC LIMIT 1",
                (run_id(i), stage(i)),
            ).fetchone()
            for i in picks
        ]
        return latencies([partial(_sqlite_lookup, db, sql, tuple(row)) for row in rows])
    finally:
        db.close()
