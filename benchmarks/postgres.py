"""The PostgreSQL backend against the local directory, in the same run, on the same machine.

Durable saves (durability="fsync": synchronous_commit=on on the server, an
fsync on the directory) from 1, 8 and 16 threads of one handle and from 1, 8
and 16 processes with a handle each; warm lookups (get,
find_previous_comparable) on a store of a few thousand snapshots. Each
PostgreSQL figure's ratio is against the local figure of the same work.

The server is the one ``SNAPSTORE_BENCH_POSTGRES_DSN`` names (else
``SNAPSTORE_TEST_POSTGRES_DSN``); without either, these benchmarks are not
registered, and the runner says so. Each figure uses a schema of its own,
dropped afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
from functools import partial
from typing import TYPE_CHECKING

from benchmarks._child import CHILD_ENV
from benchmarks._stores import run_id, snapshot, stage
from benchmarks.registry import Measurement, benchmark, latencies, timed_threads
from snapstore import SnapshotStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from benchmarks.registry import BenchmarkFunction, Context

_GROUP = "PostgreSQL against local"
COUNTS = (1, 8, 16)
DSN_VARIABLES = ("SNAPSTORE_BENCH_POSTGRES_DSN", "SNAPSTORE_TEST_POSTGRES_DSN")
_schemas = itertools.count(1)

# One saving process: opens its handle, says it is ready, waits for the word,
# saves its share and prints when it began and ended (wall clock, shared by
# the processes of one machine).
_SAVER = """
import json, sys, time
from benchmarks._stores import snapshot
from snapstore import SnapshotStore
target, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
snaps = [snapshot(i) for i in range(first, first + count)]
with SnapshotStore(target) as store:
    print("ready", flush=True)
    sys.stdin.readline()
    began = time.time()
    for snap in snaps:
        store.save_snapshot(snap)
    print(json.dumps([began, time.time()]), flush=True)
"""


def server_dsn() -> str | None:
    """The server the benchmarks measure, or None: then they are left out."""
    return next((os.environ[name] for name in DSN_VARIABLES if os.environ.get(name)), None)


@contextlib.contextmanager
def _store_target(ctx: Context, backend: str) -> Iterator[str]:
    """A new, empty store of ``backend`` ("postgres" or "local"), removed afterwards."""
    if backend == "local":
        yield str(ctx.scratch / f"store-{next(_schemas)}")
        return
    import psycopg  # noqa: PLC0415 - only a run with a server needs it

    from snapstore.testing.harnesses import drop_schema, with_query  # noqa: PLC0415

    dsn = server_dsn()
    assert dsn is not None
    schema = f"bench_{os.getpid()}_{next(_schemas)}"
    try:
        yield with_query(dsn, schema=schema)
    finally:
        with contextlib.suppress(psycopg.Error):
            drop_schema(dsn, schema)


def _saved_count(target: str, expected: int) -> None:
    with SnapshotStore(target, read_only=True) as store:
        if len(store) != expected:
            raise RuntimeError(f"{len(store)} snapshots saved in {target}, expected {expected}")


def _threads(backend: str, threads: int) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        total = ctx.count(150 * threads, 8 * threads)
        snaps = [snapshot(i) for i in range(total)]
        with _store_target(ctx, backend) as target:
            with SnapshotStore(target) as store:
                seconds = timed_threads(threads, total, lambda i: store.save_snapshot(snaps[i]))
            _saved_count(target, total)
        return Measurement(total, seconds)

    return run


def _processes(backend: str, processes: int) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        each = ctx.count(max(1600 // processes, 100), 5)
        with _store_target(ctx, backend) as target:
            with SnapshotStore(target):
                pass  # created before the savers start: they only save
            seconds = _timed_savers(target, processes, each)
            _saved_count(target, processes * each)
        return Measurement(processes * each, seconds)

    return run


def _timed_savers(target: str, processes: int, each: int) -> float:
    """From the first saver's start to the last one's end, all told to start at once."""
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVER, target, str(k * each), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=CHILD_ENV,
        )
        for k in range(processes)
    ]
    spans: list[tuple[float, float]] = []
    try:
        for saver in savers:
            assert saver.stdout is not None
            if saver.stdout.readline().strip() != "ready":
                raise RuntimeError("a saving process did not start")
        for saver in savers:
            assert saver.stdin is not None
            saver.stdin.write("go\n")
            saver.stdin.flush()
        for saver in savers:
            out, _ = saver.communicate(timeout=600)
            if saver.returncode != 0:
                raise RuntimeError(f"a saving process failed with status {saver.returncode}")
            began, ended = json.loads(out)
            spans.append((float(began), float(ended)))
    finally:
        for saver in savers:
            if saver.poll() is None:
                saver.kill()
                saver.wait()
    return max(end for _, end in spans) - min(began for began, _ in spans)


def _lookups(backend: str, what: str) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        n = ctx.count(3_000, 300)
        with _store_target(ctx, backend) as target, SnapshotStore(target) as store:
            for i in range(n):
                store.save_snapshot(snapshot(i))
            picks = [(i * 7919) % n for i in range(ctx.count(20_000, 500))]
            if what == "get":
                calls = [partial(store.get, run_id(i), stage(i)) for i in picks]
            else:
                snaps = [store.get(run_id(i), stage(i)) for i in picks]
                calls = [partial(store.find_previous_comparable, s) for s in snaps if s is not None]
            for call in calls[:1000]:
                call()  # warm: the second lookup of a key is what is measured
            return latencies(calls)

    return run


def _register_pair(
    name: str, work: str, make: Callable[[str], BenchmarkFunction], *, durable: bool
) -> None:
    """``postgres.local.NAME`` (a directory) and ``postgres.NAME``, compared with it."""
    local = f"postgres.local.{name}"
    benchmark(local, group=_GROUP, durable=durable, description=f"{work}, local directory")(
        make("local")
    )
    benchmark(
        f"postgres.{name}",
        group=_GROUP,
        durable=durable,
        description=f"{work}, PostgreSQL",
        ref=local,
    )(make("postgres"))


def _register() -> None:
    for count in COUNTS:
        _register_pair(
            f"threads.{count}",
            f"save_snapshot() from {count} threads of one handle, fsync",
            partial(_threads, threads=count),
            durable=True,
        )
        _register_pair(
            f"processes.{count}",
            f"save_snapshot() from {count} processes, a handle each, fsync",
            partial(_processes, processes=count),
            durable=True,
        )
    for what, call in (("get", "get(run_id, stage)"), ("previous", "find_previous_comparable")):
        _register_pair(what, f"{call}, warm", partial(_lookups, what=what), durable=False)


if server_dsn() is not None:
    _register()
