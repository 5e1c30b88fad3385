"""The performance targets, and whether a run met them.

Each target is one quantity of a run's figures with a bound. A ratio is taken
between two figures of the same run, round by round (as the table's ratios
are), so a target holds or fails on one machine at one time, not against
figures measured elsewhere. Targets are evaluated from the figures as saved in
a run's JSON, so a saved run can be judged again (``python -m benchmarks.chart``
does) exactly as it was when it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from benchmarks._report import median_ratio

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class Ratio:
    """The median over rounds of ``figure``'s rate over ``over``'s."""

    figure: str
    over: str
    unit: ClassVar[str] = "x"

    @property
    def source(self) -> str:
        return f"{self.figure} / {self.over}"

    def measure(self, figures: Mapping[str, Mapping[str, Any]]) -> float | None:
        if self.figure not in figures or self.over not in figures:
            return None
        return median_ratio(_rates(figures[self.figure]), _rates(figures[self.over]))


@dataclass(frozen=True, slots=True)
class Extra:
    """A value ``figure`` records besides its rate (``key`` of its ``extra``)."""

    figure: str
    key: str
    unit: str

    @property
    def source(self) -> str:
        return f"{self.figure} {self.key}"

    def measure(self, figures: Mapping[str, Mapping[str, Any]]) -> float | None:
        if self.figure not in figures:
            return None
        value = figures[self.figure]["extra"].get(self.key)
        return None if value is None else float(value)


def _rates(figure: Mapping[str, Any]) -> list[float]:
    return [r["ops"] / r["seconds"] for r in figure["rounds"]]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    quantity: Ratio | Extra
    bound: Literal["≥", "≤"]
    threshold: float

    def met_by(self, value: float) -> bool:
        # A value on the threshold meets it: the bounds read "at least", "at most".
        return value >= self.threshold if self.bound == "≥" else value <= self.threshold


TARGETS = (
    Target(
        "durable append / raw write+fdatasync",
        Ratio("history.append.fsync", "raw.write+fdatasync"),
        "≥",
        0.9,
    ),
    Target(
        "durable append, 8 threads / 1 thread",
        Ratio("history.threads.8", "history.threads.1"),
        "≥",
        4,
    ),
    Target(
        "durable append, 16 threads / SQLite WAL FULL",
        Ratio("history.threads.16", "sqlite.wal.full"),
        "≥",
        5,
    ),
    # The SQLite baseline of a save holds the same snapshots with the indices
    # the store's lookups need (sqlite-snapshots.full), not the history
    # records of sqlite.wal.full: like for like.
    Target(
        "durable save_snapshot / SQLite WAL FULL insert",
        Ratio("store.save.fsync", "sqlite-snapshots.full"),
        "≥",
        1.0,
    ),
    Target(
        "fast-mode append / raw no-sync write",
        Ratio("history.append.write", "raw.write"),
        "≥",
        0.3,
    ),
    # A cost is the inverse of a rate: cost at 1M / cost at 1k is the small
    # store's rate over the large one's.
    Target(
        "save cost at 1,000,000 / at 1,000",
        Ratio("store.scale.small", "store.scale.large"),
        "≤",
        1.3,
    ),
    Target("open 1,000,000 snapshots: time", Extra("store.open.large", "open_s", "s"), "≤", 1.0),
    Target(
        "open 1,000,000 snapshots: peak RSS",
        Extra("store.open.large", "peak_rss_mb", "MB"),
        "≤",
        300,
    ),
    Target("get, median", Extra("store.get", "median_us", "µs"), "≤", 10),
    Target(
        "find_previous_comparable, median",
        Extra("store.previous_comparable", "median_us", "µs"),
        "≤",
        10,
    ),
    # A fresh process per job (benchmarks/cold.py), on stores of two shapes. A
    # time over SQLite's is SQLite's rate over ours, as for the scale target.
    *(
        target
        for size in ("1k", "100k", "1m")
        for shape in ("versions", "distinct")
        for job in ("save", "read")
        for target in (
            Target(
                f"cold {job}, {size} {shape}: time / SQLite's",
                Ratio(f"cold.sqlite.{job}.{size}.{shape}", f"cold.{job}.{size}.{shape}"),
                "≤",
                1.5,
            ),
            Target(
                f"cold {job}, {size} {shape}: peak RSS",
                Extra(f"cold.{job}.{size}.{shape}", "peak_rss_mb", "MB"),
                "≤",
                60,
            ),
        )
    ),
    *(
        Target(
            f"cold {job}, {shape}: time at 1,000,000 / at 1,000",
            Ratio(f"cold.{job}.1k.{shape}", f"cold.{job}.1m.{shape}"),
            "≤",
            1.3,
        )
        for shape in ("versions", "distinct")
        for job in ("save", "read")
    ),
    Target(
        "first open at 1,000,000 with the index lost",
        Extra("cold.index_lost.1m.versions", "median_s", "s"),
        "≤",
        5,
    ),
    # PostgreSQL against a local directory doing the same work in the same run
    # (benchmarks/postgres.py): not measured in a run without a server.
    Target(
        "16 processes saving: PostgreSQL / local",
        Ratio("postgres.processes.16", "postgres.local.processes.16"),
        "≥",
        1.0,
    ),
    Target(
        "16 threads of one handle saving: PostgreSQL / local",
        Ratio("postgres.threads.16", "postgres.local.threads.16"),
        "≥",
        0.5,
    ),
    # A time over local's is local's rate over PostgreSQL's.
    Target(
        "warm get: PostgreSQL time / local's",
        Ratio("postgres.local.get", "postgres.get"),
        "≤",
        3,
    ),
    Target(
        "warm find_previous_comparable: PostgreSQL time / local's",
        Ratio("postgres.local.previous", "postgres.previous"),
        "≤",
        3,
    ),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    target: Target
    # None: the run did not measure the figures the target needs.
    value: float | None

    @property
    def status(self) -> Literal["met", "missed", "not measured"]:
        if self.value is None:
            return "not measured"
        return "met" if self.target.met_by(self.value) else "missed"

    @property
    def measured(self) -> str:
        """The value in the target's unit, as the table and the chart print it ("" if none)."""
        return "" if self.value is None else amount(self.value, self.target.quantity.unit)

    @property
    def bound(self) -> str:
        """The bound in the target's unit: "≥ 0.90x", "≤ 300 MB"."""
        target = self.target
        return f"{target.bound} {amount(target.threshold, target.quantity.unit)}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.target.name,
            "of": self.target.quantity.source,
            "value": self.value,
            "unit": self.target.quantity.unit,
            "bound": self.target.bound,
            "threshold": self.target.threshold,
            "status": self.status,
        }


def evaluate(figures: Mapping[str, Mapping[str, Any]]) -> list[Verdict]:
    """Every target, judged on the figures of one run (the ``figures`` of its JSON)."""
    return [Verdict(target, target.quantity.measure(figures)) for target in TARGETS]


def amount(value: float, unit: str) -> str:
    """``value`` in ``unit`` as the tables print it: 0.86x, 0.92 s, 339 MB, 16.3 µs."""
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:.3g} {unit}"


def table(verdicts: list[Verdict]) -> str:
    """The targets, each with the run's value and whether it was met."""
    header = f"{'target':<46} {'measured':>10} {'target':>9}  result"
    rows = [
        f"{verdict.target.name:<46} {verdict.measured:>10} {verdict.bound:>9}  {verdict.status}"
        for verdict in verdicts
    ]
    return "\n".join([header, "-" * len(header), *rows])
