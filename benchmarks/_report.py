"""Figures of a run: the machine they were measured on, the table, the JSON file."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import snapstore

if TYPE_CHECKING:
    from collections.abc import Sequence

    from benchmarks.registry import Benchmark, Measurement


@dataclass(frozen=True, slots=True)
class Figure:
    """A benchmark's rounds; the figure is the round with the median rate."""

    benchmark: Benchmark
    rounds: tuple[Measurement, ...]

    @property
    def rates(self) -> tuple[float, ...]:
        return tuple(m.ops / m.seconds for m in self.rounds)

    @property
    def median(self) -> Measurement:
        rates = self.rates
        return self.rounds[rates.index(statistics.median_low(rates))]

    @property
    def ops_per_s(self) -> float:
        return self.median.ops / self.median.seconds

    @property
    def us_per_op(self) -> float:
        return self.median.seconds / self.median.ops * 1e6


def machine(directory: Path) -> dict[str, Any]:
    """What the figures depend on: cores, memory, the file system under test, Python."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(page * pages / 2**30, 1),
        "file_system": _file_system(directory),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "snapstore": snapstore.__version__,
    }


def _file_system(directory: Path) -> str:
    """The type of the file system holding ``directory`` (Linux only, else "unknown")."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    target = str(directory.resolve())
    best, kind = "", "unknown"
    for mount in mounts:
        fields = mount.split()
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def as_json(figures: list[Figure], info: dict[str, Any], mode: str) -> dict[str, Any]:
    by_name = {figure.benchmark.name: figure for figure in figures}
    return {
        "mode": mode,
        "machine": info,
        "figures": {
            figure.benchmark.name: {
                "group": figure.benchmark.group,
                "description": figure.benchmark.description,
                "durable": figure.benchmark.durable,
                "ops": figure.median.ops,
                "seconds": figure.median.seconds,
                "ops_per_s": figure.ops_per_s,
                "us_per_op": figure.us_per_op,
                "limit": figure.benchmark.limit,
                "limit_ratio": _ratio(figure, figure.benchmark.limit, by_name),
                "ref": figure.benchmark.ref,
                "ref_ratio": _ratio(figure, figure.benchmark.ref, by_name),
                "extra": dict(figure.median.extra),
                "rounds": [{"ops": m.ops, "seconds": m.seconds} for m in figure.rounds],
            }
            for figure in figures
        },
    }


def table(figures: list[Figure]) -> str:
    """The figures side by side, each with its ratio to the limit and to its reference."""
    by_name = {figure.benchmark.name: figure for figure in figures}
    header = f"{'figure':<24} {'ops':>7} {'ops/s':>10} {'µs/op':>9} {'x limit':>8}  x ref"
    rows = [header, "-" * len(header)]
    group = None
    for figure in figures:
        bench = figure.benchmark
        if bench.group != group:
            group = bench.group
            rows.append(f"[{group}]")
        limit = _ratio(figure, bench.limit, by_name)
        ref = _ratio(figure, bench.ref, by_name)
        extra = "  ".join(f"{key}={value:g}" for key, value in figure.median.extra.items())
        rows.append(
            f"{bench.name:<24} {figure.median.ops:>7} {figure.ops_per_s:>10,.0f} "
            f"{figure.us_per_op:>9.1f} {_times(limit):>8}  "
            + (f"{_times(ref)} {bench.ref}" if ref is not None else "")
            + (f"  {extra}" if extra else "")
        )
    rows.append("")
    rows.append("x limit: rate / raw.write+fdatasync (durable) or raw.write (not durable)")
    rows.append("ratios are medians over rounds of the two rates measured in the same round")
    return "\n".join(rows)


def _ratio(figure: Figure, other: str | None, by_name: dict[str, Figure]) -> float | None:
    """The median over rounds of this figure's rate over ``other``'s in the same round."""
    if other is None or other not in by_name or other == figure.benchmark.name:
        return None
    return median_ratio(figure.rates, by_name[other].rates)


def median_ratio(mine: Sequence[float], theirs: Sequence[float]) -> float:
    """The median over rounds of one figure's rate over another's in the same round.

    Taken round by round because the rounds are round-robin: a burst of load on
    a shared disk slows both figures of a round, so their ratio holds steady
    while the rates themselves swing.
    """
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"


def describe(info: dict[str, Any]) -> str:
    """The machine of a run in one line (runs saved before the implementation was
    recorded leave it out rather than guess it from the interpreter reading them)."""
    implementation = f" ({info['implementation']})" if "implementation" in info else ""
    return (
        f"{info['nproc']} CPUs, {info['memory_gib']} GiB, {info['file_system']}, "
        f"Python {info['python']}{implementation}, SQLite {info['sqlite']}, "
        f"{info['platform']}"
    )
