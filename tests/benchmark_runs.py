"""Runs of the benchmark command as their JSON saves them, made up for the tests."""

from __future__ import annotations

from typing import Any


def figure(*rates: float, **extra: float) -> dict[str, Any]:
    """A figure as a run's JSON saves it: one round per rate, and its extra values."""
    return {"rounds": [{"ops": rate, "seconds": 1.0} for rate in rates], "extra": extra}


def good_figures() -> dict[str, dict[str, Any]]:
    """Figures that meet every target."""
    return {
        "raw.write+fdatasync": figure(1000),
        "raw.write": figure(100_000),
        "sqlite.wal.full": figure(1000),
        "sqlite-snapshots.full": figure(900),
        "history.append.fsync": figure(950),
        "history.append.write": figure(40_000),
        "history.threads.1": figure(1000),
        "history.threads.8": figure(5000),
        "history.threads.16": figure(6000),
        "store.save.fsync": figure(950),
        "store.scale.small": figure(1000),
        "store.scale.large": figure(900),
        "store.open.large": figure(1.25, open_s=0.8, peak_rss_mb=250),
        "store.get": figure(200_000, median_us=4.5),
        "store.previous_comparable": figure(200_000, median_us=5.5),
        **{
            f"{prefix}.{job}.{size}.{shape}": figure(rate, peak_rss_mb=40)
            for size, ours in (("1k", 10), ("100k", 9.5), ("1m", 9))
            for shape in ("versions", "distinct")
            for job in ("save", "read")
            for prefix, rate in (("cold", ours), ("cold.sqlite", 12))
        },
        "cold.index_lost.1m.versions": figure(0.5, median_s=2),
        "postgres.processes.16": figure(2100),
        "postgres.local.processes.16": figure(2000),
        "postgres.threads.16": figure(6000),
        "postgres.local.threads.16": figure(9000),
        "postgres.get": figure(100_000, median_us=8),
        "postgres.local.get": figure(200_000, median_us=4.5),
        "postgres.previous": figure(100_000, median_us=9),
        "postgres.local.previous": figure(200_000, median_us=5.5),
    }


def good_run() -> dict[str, Any]:
    """A whole saved run (mode, machine, figures) whose figures meet every target."""
    figures = good_figures()
    for saved in figures.values():
        # One round each: that round's rate is the figure's.
        saved["ops_per_s"] = saved["rounds"][0]["ops"] / saved["rounds"][0]["seconds"]
    machine = {
        "nproc": 2,
        "memory_gib": 23.5,
        "file_system": "ext4",
        "python": "3.11.7",
        "implementation": "cpython",
        "sqlite": "3.40.1",
        "platform": "Linux-6.18-x86_64",
    }
    return {"mode": "full", "machine": machine, "figures": figures}
