"""The benchmark registry: every figure the runner can measure, by name.

A suite module registers functions with :func:`benchmark`; the runner imports
the modules listed in ``SUITES`` and runs what they registered, in order. To add
figures (a new class, a new baseline), write a module that registers them and
append it to ``SUITES``.

A benchmark function gets a :class:`Context` (a fresh scratch directory on the
disk under test, the run's mode) and returns a :class:`Measurement`: how many
operations it timed and how long they took. Setup and checks stay outside the
timed region.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

# Imported in this order; each registers its benchmarks when imported.
SUITES = (
    "benchmarks.baselines",
    "benchmarks.history",
    "benchmarks.store",
    "benchmarks.cold",
    "benchmarks.cli",
    "benchmarks.postgres",
)

# The physical limits every figure is compared with: a durable operation cannot
# beat one write + fdatasync of its bytes, a non-durable one cannot beat a write.
DURABLE_LIMIT = "raw.write+fdatasync"
CACHED_LIMIT = "raw.write"


@dataclass(frozen=True, slots=True)
class Measurement:
    """``ops`` operations (records, saves, lookups) timed over ``seconds``."""

    ops: int
    seconds: float
    # Figures that are not a rate (resident memory, file size) go here.
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """What a benchmark function may use: its scratch directory and the run's mode."""

    scratch: Path
    quick: bool
    # Kept for the whole run (on the same disk): fixtures that are slow to
    # build, such as a store of a million snapshots, are built here once.
    shared: Path

    def count(self, full: int, quick: int) -> int:
        """How many operations to time: ``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full


BenchmarkFunction = Callable[[Context], Measurement]


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    group: str
    description: str
    durable: bool
    function: BenchmarkFunction
    # Another figure this one is compared with besides its physical limit
    # (e.g. 8 threads against 1 thread).
    ref: str | None = None

    @property
    def limit(self) -> str:
        return DURABLE_LIMIT if self.durable else CACHED_LIMIT


REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, *, group: str, description: str, durable: bool, ref: str | None = None
) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register the decorated function as the benchmark ``name``."""

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, group, description, durable, function, ref)
        return function

    return register


def timed_threads(threads: int, total: int, call: Callable[[int], object]) -> float:
    """Seconds for ``threads`` threads to run ``call(i)`` for every i in range(total).

    Thread t takes i = t, t + threads, ...; all start together behind a barrier,
    so thread start-up is not timed.
    """
    barrier = threading.Barrier(threads + 1)

    def work(first: int) -> None:
        barrier.wait()
        for i in range(first, total, threads):
            call(i)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def latencies(calls: Sequence[Callable[[], object]]) -> Measurement:
    """Each call timed alone: their count, total time and median (``median_us``)."""
    times = []
    for call in calls:
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return Measurement(len(times), sum(times) / 1e9, {"median_us": statistics.median(times) / 1000})
