"""IterationHistory: append per durability mode, concurrent writers, extend."""

from __future__ import annotations

import multiprocessing
import time
from typing import TYPE_CHECKING

from benchmarks._payload import payload
from benchmarks.registry import Context, Measurement, benchmark, timed_threads
from snapstore import IterationHistory
from snapstore._options import DURABILITY_MODES

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier as ProcessBarrier
    from pathlib import Path

    from benchmarks.registry import BenchmarkFunction
    from snapstore import Durability

_GROUP = "IterationHistory"
_THREAD_COUNTS = (1, 4, 8, 16)
_PROCESSES = 4
_EXTEND_BATCH = 1000
# A writer process that died never reports: fail instead of waiting forever.
_WORKER_TIMEOUT = 600.0


def _check_count(path: Path, expected: int) -> None:
    # Outside the timed region: a benchmark that lost records measures nothing.
    with IterationHistory(path) as history:
        if len(history) != expected or history.last_seq != expected:
            raise RuntimeError(f"{path}: {len(history)} records, expected {expected}")


def _appends(durability: Durability) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        n = ctx.count(1000 if durability == "fsync" else 50_000, 50)
        path = ctx.scratch / "history.jsonl"
        records = [payload(i) for i in range(n)]
        with IterationHistory(path, durability=durability) as history:
            start = time.perf_counter()
            for data in records:
                history.append(data)
            seconds = time.perf_counter() - start
        _check_count(path, n)
        return Measurement(n, seconds)

    return run


for _mode in DURABILITY_MODES:
    benchmark(
        f"history.append.{_mode}",
        group=_GROUP,
        durable=_mode == "fsync",
        description=f'append(), durability="{_mode}", one thread',
    )(_appends(_mode))


def _total(ctx: Context) -> int:
    # Divisible by every thread and process count.
    return ctx.count(2400, 96)


def _threads(count: int) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        total = _total(ctx)
        path = ctx.scratch / "history.jsonl"
        records = [payload(i) for i in range(total)]
        with IterationHistory(path) as history:
            seconds = timed_threads(count, total, lambda i: history.append(records[i]))
        _check_count(path, total)
        return Measurement(total, seconds)

    return run


for _count in _THREAD_COUNTS:
    benchmark(
        f"history.threads.{_count}",
        group=_GROUP,
        durable=True,
        description=f"append() from {_count} thread(s) of one handle, fsync",
        ref=None if _count == 1 else "history.threads.1",
    )(_threads(_count))


def _process_worker(
    path: Path,
    count: int,
    barrier: ProcessBarrier,
    times: multiprocessing.Queue[tuple[float, float]],
) -> None:
    records = [payload(i) for i in range(count)]
    with IterationHistory(path) as history:
        barrier.wait()
        # perf_counter is the system-wide monotonic clock on Linux, so start and
        # end times of different processes are comparable.
        start = time.perf_counter()
        for data in records:
            history.append(data)
        times.put((start, time.perf_counter()))


@benchmark(
    f"history.processes.{_PROCESSES}",
    group=_GROUP,
    durable=True,
    description=f"append() from {_PROCESSES} processes, one handle each, fsync",
    ref="history.threads.1",
)
def processes(ctx: Context) -> Measurement:
    total = _total(ctx)
    path = ctx.scratch / "history.jsonl"
    # spawn: a fork of a process with threads may copy a held lock.
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(_PROCESSES)
    times: multiprocessing.Queue[tuple[float, float]] = mp.Queue()
    workers = [
        mp.Process(target=_process_worker, args=(path, total // _PROCESSES, barrier, times))
        for _ in range(_PROCESSES)
    ]
    for worker in workers:
        worker.start()
    spans = [times.get(timeout=_WORKER_TIMEOUT) for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a writer process exited with {worker.exitcode}")
    _check_count(path, total)
    return Measurement(total, max(end for _, end in spans) - min(start for start, _ in spans))


@benchmark(
    f"history.extend.{_EXTEND_BATCH}",
    group=_GROUP,
    durable=True,
    description=f"extend() of {_EXTEND_BATCH} records (one write, one sync), per record",
)
def extend(ctx: Context) -> Measurement:
    batches = ctx.count(10, 2)
    path = ctx.scratch / "history.jsonl"
    records = [payload(i) for i in range(_EXTEND_BATCH)]
    with IterationHistory(path) as history:
        start = time.perf_counter()
        for _ in range(batches):
            history.extend(records)
        seconds = time.perf_counter() - start
    _check_count(path, batches * _EXTEND_BATCH)
    return Measurement(batches * _EXTEND_BATCH, seconds)
