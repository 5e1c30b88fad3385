"""Baselines: the disk's physical limits and the alternatives snapstore is measured against."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING

from benchmarks._payload import line, payload
from benchmarks.registry import CACHED_LIMIT, DURABLE_LIMIT, Context, Measurement, benchmark
from snapstore._log.seam import FileSystem

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

_GROUP = "baselines"


def _raw_loop(path: Path, n: int, *, sync: bool) -> Measurement:
    lines = [line(i) for i in range(n)]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = time.perf_counter()
        for data in lines:
            os.write(fd, data)
            if sync:
                os.fdatasync(fd)
        seconds = time.perf_counter() - start
    finally:
        os.close(fd)
    return Measurement(n, seconds)


@benchmark(
    DURABLE_LIMIT,
    group=_GROUP,
    durable=True,
    description="os.write + os.fdatasync of a snapstore line, one per record",
)
def raw_fdatasync(ctx: Context) -> Measurement:
    return _raw_loop(ctx.scratch / "raw.log", ctx.count(1000, 50), sync=True)


@benchmark(
    CACHED_LIMIT,
    group=_GROUP,
    durable=False,
    description="os.write of a snapstore line, no sync",
)
def raw_write(ctx: Context) -> Measurement:
    return _raw_loop(ctx.scratch / "raw.log", ctx.count(100_000, 2000), sync=False)


def _sqlite_inserts(ctx: Context, synchronous: str, n: int) -> Measurement:
    # isolation_level=None: every INSERT is its own transaction (one commit per
    # record), which is what a durable per-record append asks of SQLite.
    db = sqlite3.connect(ctx.scratch / "records.db", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(
            "CREATE TABLE records (seq INTEGER PRIMARY KEY, ts TEXT, key TEXT, data TEXT NOT NULL)"
        )
        rows = [json.dumps(payload(i)) for i in range(n)]
        start = time.perf_counter()
        for data in rows:
            db.execute("INSERT INTO records (ts, key, data) VALUES (?, NULL, ?)", ("now", data))
        seconds = time.perf_counter() - start
    finally:
        db.close()
    return Measurement(n, seconds)


@benchmark(
    "sqlite.wal.full",
    group=_GROUP,
    durable=True,
    description="sqlite3 WAL, synchronous=FULL, one INSERT transaction per record",
)
def sqlite_full(ctx: Context) -> Measurement:
    return _sqlite_inserts(ctx, "FULL", ctx.count(1000, 50))


@benchmark(
    "sqlite.wal.normal",
    group=_GROUP,
    # WAL with NORMAL syncs only at checkpoints: a power loss can lose commits.
    durable=False,
    description="sqlite3 WAL, synchronous=NORMAL, one INSERT transaction per record",
)
def sqlite_normal(ctx: Context) -> Measurement:
    return _sqlite_inserts(ctx, "NORMAL", ctx.count(10_000, 500))


def json_rewrites(
    ctx: Context, existing: int, n: int, record: Callable[[int], dict[str, Any]] = payload
) -> Measurement:
    """The pattern snapstore replaces: the whole index is one JSON file, rewritten
    atomically (temp, fsync, rename, directory fsync) on every save of ``record(i)``."""
    fs = FileSystem()
    path = ctx.scratch / "index.json"
    index = {str(i): record(i) for i in range(existing)}
    start = time.perf_counter()
    for i in range(existing, existing + n):
        index[str(i)] = record(i)
        fs.write_atomic(path, json.dumps(index).encode())
    return Measurement(n, time.perf_counter() - start)


@benchmark(
    "json-rewrite.empty",
    group=_GROUP,
    durable=True,
    description="rewrite a JSON index atomically per save, starting empty",
)
def json_rewrite_empty(ctx: Context) -> Measurement:
    return json_rewrites(ctx, 0, ctx.count(300, 20))


@benchmark(
    "json-rewrite.10k",
    group=_GROUP,
    durable=True,
    description="rewrite a JSON index atomically per save, index of 10,000 records",
)
def json_rewrite_10k(ctx: Context) -> Measurement:
    return json_rewrites(ctx, 10_000, ctx.count(40, 5))
