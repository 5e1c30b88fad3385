"""A pipeline stage in its own process: open, save, compare, pin, close — and open, get, exit.

The commonest use of a store is one short process per stage. Each figure
here is that whole process, interpreter start-up and imports included, timed
from the parent (the median over several processes), with the child's peak
resident memory. The same jobs on SQLite (WAL, ``synchronous=FULL``, the two
indices the lookups need, a table of pins) are measured in the same run. The
stores have two shapes (see ``_stores``): 50,000 runs through three stages
with several versions each (``versions``), and a run of its own for every
snapshot (``distinct``).
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from benchmarks._child import PRINT_PEAK_RSS, timed_process, timed_processes
from benchmarks._stores import built_sqlite, built_store, comparison_key, run_id, snapshot, stage
from benchmarks.registry import Context, Measurement, benchmark

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from benchmarks.registry import BenchmarkFunction

_GROUP = "Cold process"
# Store sizes: (full run, quick run).
_SIZES = {"1k": (1_000, 100), "100k": (100_000, 500), "1m": (1_000_000, 2_000)}
_PROCESSES = (5, 2)  # processes timed per figure: (full run, quick run)
_SHAPES = ("versions", "distinct")


_SAVE = f"""
import sys
from snapstore import NormalizedSnapshot, SnapshotStore
root, run, stage, model = sys.argv[1:]
with SnapshotStore(root) as store:
    saved = store.save_snapshot(NormalizedSnapshot(
        run, stage, metrics={{"loss": 0.2, "accuracy": 0.9}},
        config={{"model": model, "lr": 0.0003, "epochs": 10}}, data={{"artifact": "s3://b/x"}},
    ))
    store.find_previous_comparable(saved)
    store.get_or_establish_baseline(saved)
{PRINT_PEAK_RSS}
"""
_READ = f"""
import sys
from snapstore import SnapshotStore
root, run, stage = sys.argv[1:]
with SnapshotStore(root, read_only=True) as store:
    assert store.get(run, stage) is not None
{PRINT_PEAK_RSS}
"""
_SQLITE_SAVE = f"""
import json, sqlite3, sys
path, run, stage, model, key = sys.argv[1:]
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
config = json.dumps({{"model": model, "lr": 0.0003, "epochs": 10}})
metrics, data = json.dumps({{"loss": 0.2, "accuracy": 0.9}}), json.dumps({{"artifact": "s3://b/x"}})
db.execute("BEGIN IMMEDIATE")
latest = db.execute(
    "SELECT metrics, config, data FROM snapshots WHERE run_id = ? AND stage = ? "
    "ORDER BY seq DESC LIMIT 1", (run, stage)).fetchone()
if latest != (metrics, config, data):
    seq = db.execute(
        "INSERT INTO snapshots (run_id, stage, comparison_key, created_at, metrics, config, data) "
        "VALUES (?, ?, ?, datetime('now'), ?, ?, ?)", (run, stage, key, metrics, config, data)
    ).lastrowid
db.execute("COMMIT")
db.execute(
    "SELECT * FROM snapshots WHERE stage = ? AND comparison_key = ? AND seq < ? AND run_id != ? "
    "ORDER BY seq DESC LIMIT 1", (stage, key, seq, run)).fetchone()
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS baselines (stage TEXT, comparison_key TEXT, seq INTEGER, "
           "PRIMARY KEY (stage, comparison_key))")
db.execute("INSERT OR IGNORE INTO baselines VALUES (?, ?, ?)", (stage, key, seq))
db.execute("SELECT * FROM snapshots JOIN baselines USING (seq) WHERE baselines.stage = ? "
           "AND baselines.comparison_key = ?", (stage, key)).fetchone()
db.execute("COMMIT")
db.close()
{PRINT_PEAK_RSS}
"""
_SQLITE_READ = f"""
import sqlite3, sys
path, run, stage = sys.argv[1:]
db = sqlite3.connect(path, isolation_level=None)
assert db.execute("SELECT * FROM snapshots WHERE run_id = ? AND stage = ? ORDER BY seq DESC "
                  "LIMIT 1", (run, stage)).fetchone() is not None
db.close()
{PRINT_PEAK_RSS}
"""


def _processes(ctx: Context, one: Callable[[int], tuple[float, float]]) -> Measurement:
    return timed_processes(ctx, one, _PROCESSES)


def _fresh_copy(source: Path, target: Path) -> Path:
    """A copy the process may write to, on the same disk, replacing an earlier one."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    # Written back before the timed process starts: the job does not include
    # flushing a copy of the store out of the page cache (a first sync of the
    # copied log, or SQLite's of its copied database, would pay for it).
    os.sync()
    return target


def _save(size: str, shape: str, *, sqlite: bool) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        n = ctx.count(*_SIZES[size])
        source = built_sqlite(ctx, n, shape) if sqlite else built_store(ctx, n, shape)
        script = _SQLITE_SAVE if sqlite else _SAVE
        model = snapshot(n // 2, shape, n).config["model"]
        # The SQLite job is given the comparison key; snapstore derives it from the config.
        key = [comparison_key(model)] if sqlite else []

        def one(k: int) -> tuple[float, float]:
            target = _fresh_copy(source, ctx.scratch / source.name)
            return timed_process(script, str(target), f"cold-{k}", "train", model, *key)

        return _processes(ctx, one)

    return run


def _read(size: str, shape: str, *, sqlite: bool) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        n = ctx.count(*_SIZES[size])
        source = built_sqlite(ctx, n, shape) if sqlite else built_store(ctx, n, shape)
        script = _SQLITE_READ if sqlite else _READ

        def one(k: int) -> tuple[float, float]:
            i = n - 1 - k  # a snapshot of the newest run: its key's latest version
            return timed_process(script, str(source), run_id(i, shape, n), stage(i, shape))

        return _processes(ctx, one)

    return run


for _size, (_full, _quick) in _SIZES.items():
    for _shape in _SHAPES:
        for _sqlite in (False, True):
            _who = "SQLite WAL FULL" if _sqlite else "SnapshotStore"
            _prefix = "cold.sqlite" if _sqlite else "cold"
            _what = f"{_full:,} snapshots ({_quick:,} with --quick), {_shape} shape"
            benchmark(
                f"{_prefix}.save.{_size}.{_shape}",
                group=_GROUP,
                durable=True,
                description=f"{_who}, {_what}: a fresh process opens, saves one snapshot, "
                "finds its previous comparable, pins or reads its baseline, closes",
                ref=None if _sqlite else f"cold.sqlite.save.{_size}.{_shape}",
            )(_save(_size, _shape, sqlite=_sqlite))
            benchmark(
                f"{_prefix}.read.{_size}.{_shape}",
                group=_GROUP,
                durable=False,
                description=f"{_who}, {_what}: a fresh process opens, gets one snapshot, exits",
                ref=None if _sqlite else f"cold.sqlite.read.{_size}.{_shape}",
            )(_read(_size, _shape, sqlite=_sqlite))

# Every file a store derives from its log: the index file (with SQLite's side
# files) and the checkpoint.
_INDEX_FILES = (
    "index.sqlite",
    "index.sqlite-wal",
    "index.sqlite-shm",
    "index.parquet",
    "snapshot_index.json",
)
_OPEN = f"""
import sys
from snapstore import SnapshotStore
SnapshotStore(sys.argv[1]).close()
{PRINT_PEAK_RSS}
"""


@benchmark(
    "cold.index_lost.1m.versions",
    group=_GROUP,
    durable=False,
    description="the first open of the 1,000,000-snapshot store (versions shape) after its "
    "index files were deleted, in a fresh process, close included",
)
def index_lost(ctx: Context) -> Measurement:
    n = ctx.count(*_SIZES["1m"])
    source = built_store(ctx, n, "versions")

    def one(_: int) -> tuple[float, float]:
        target = _fresh_copy(source, ctx.scratch / source.name)
        for name in _INDEX_FILES:
            (target / name).unlink(missing_ok=True)
        return timed_process(_OPEN, str(target))

    return _processes(ctx, one)
