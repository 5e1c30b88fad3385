"""Measured work in a fresh process: its output, as an installed package would run it."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from benchmarks.registry import Measurement

if TYPE_CHECKING:
    from collections.abc import Callable

    from benchmarks.registry import Context

# The last line of a timed child's script: its peak resident memory (KiB).
PRINT_PEAK_RSS = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"

# Linux carries ru_maxrss across fork and exec: a child of this (large) process
# would report our peak. A small middle process starts the measured one.
_LAUNCH = "import subprocess, sys; subprocess.run([sys.executable, *sys.argv[1:]], check=True)"
# With bytecode caching on, as an installed package runs: a child that
# compiled every module from source would time the compiler, not snapstore.
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def run_child(script: str, *args: str) -> str:
    """The standard output of ``python -c script args`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-c", _LAUNCH, "-c", script, *args],
        check=True,
        capture_output=True,
        text=True,
        env=CHILD_ENV,
    ).stdout


def timed_process(script: str, *args: str) -> tuple[float, float]:
    """Wall seconds of one process running ``script``, and its peak RSS in MB.

    ``script`` ends by printing its peak resident memory (``PRINT_PEAK_RSS``).
    """
    start = time.perf_counter()
    out = run_child(script, *args)
    return time.perf_counter() - start, int(out.split()[-1]) / 1024


def timed_processes(
    ctx: Context, one: Callable[[int], tuple[float, float]], counts: tuple[int, int]
) -> Measurement:
    """``one(k)`` for k = 1..n (``counts``: n in a full run, in a quick one): the median wall."""
    one(0)  # untimed: writes the bytecode caches an installed package ships with
    runs = [one(k) for k in range(1, ctx.count(*counts) + 1)]
    walls = [wall for wall, _ in runs]
    return Measurement(
        len(runs),
        sum(walls),
        {"median_s": statistics.median(walls), "peak_rss_mb": max(rss for _, rss in runs)},
    )
