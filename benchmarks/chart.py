"""Draw a saved run:  python -m benchmarks.chart RUN.json [-o docs/performance.png]

Two panels, titled with the run's machine: each performance target as the
factor by which the run met or missed it, and the durable write rates of
snapstore next to the disk's limit and the alternatives, on log axes.
Needs matplotlib (pip install -e '.[bench]'); the benchmarks themselves do not.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._report import describe
from benchmarks.targets import Verdict, evaluate

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_DEFAULT = Path(__file__).resolve().parent.parent / "docs" / "performance.png"
# The durable write figures a reader weighs against each other: the disk's
# limit, the alternatives, and snapstore's appends and saves.
THROUGHPUT = (
    "raw.write+fdatasync",
    "sqlite.wal.full",
    "sqlite-snapshots.full",
    "json-rewrite.empty",
    "json-index.1k",
    "history.append.fsync",
    "history.threads.8",
    "history.threads.16",
    "store.save.fsync",
    "store.threads.8",
)
_SNAPSTORE = ("history.", "store.")
_COLORS = {
    "met": "#2e7d32",
    "missed": "#c62828",
    "snapstore": "#1565c0",
    "baseline": "#9e9e9e",
}
_SIZE = (10, 6)
_DPI = 120


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    # None: no bar (a target the run did not measure).
    length: float | None
    note: str
    color: str


def margin(verdict: Verdict) -> float | None:
    """How many times over the target the value is: 1 on the threshold, above 1
    when met, below when missed, whichever way the target is bounded."""
    if verdict.value is None:
        return None
    threshold = verdict.target.threshold
    return verdict.value / threshold if verdict.target.bound == "≥" else threshold / verdict.value


def target_bars(run: dict[str, Any]) -> list[Bar]:
    """One bar per target: its margin, with the value and the bound beside it."""
    bars = []
    for verdict in evaluate(run["figures"]):
        # The status in words too: the colors alone do not reach every reader.
        note = f"{verdict.measured} {verdict.status} (target {verdict.bound})".lstrip()
        bars.append(
            Bar(
                verdict.target.name,
                margin(verdict),
                note,
                _COLORS.get(verdict.status, _COLORS["baseline"]),
            )
        )
    return bars


def throughput_bars(run: dict[str, Any]) -> list[Bar]:
    """The durable write rates of :data:`THROUGHPUT` that the run measured."""
    figures = run["figures"]
    return [
        Bar(
            name,
            figures[name]["ops_per_s"],
            f"{figures[name]['ops_per_s']:,.0f}/s",
            _COLORS["snapstore" if name.startswith(_SNAPSTORE) else "baseline"],
        )
        for name in THROUGHPUT
        if name in figures
    ]


def title(run: dict[str, Any]) -> str:
    return f"snapstore benchmarks, {run['mode']} run\n{describe(run['machine'])}"


def _panel(axes: Axes, bars: list[Bar], heading: str, xlabel: str, *, mark: float | None) -> None:
    """Bars top to bottom in the order given, on a log axis; ``mark`` draws a line there."""
    rows = list(range(len(bars) - 1, -1, -1))
    drawn = [
        (row, bar.length, bar.color)
        for row, bar in zip(rows, bars, strict=True)
        if bar.length is not None
    ]
    axes.barh(
        [row for row, _, _ in drawn],
        [length for _, length, _ in drawn],
        color=[color for _, _, color in drawn],
        height=0.6,
    )
    axes.set_yticks(rows, [bar.label for bar in bars], fontsize=8)
    axes.set_xscale("log")
    axes.set_title(heading, fontsize=10, loc="left")
    axes.set_xlabel(xlabel, fontsize=8)
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="x", which="major", alpha=0.3)
    lengths = [length for _, length, _ in drawn] + ([] if mark is None else [mark])
    # Room on the right for the notes, which are drawn after each bar's end.
    axes.set_xlim(min(lengths, default=1.0) / 2, max(lengths, default=1.0) * 10)
    if mark is not None:
        axes.axvline(mark, color="black", linewidth=0.8)
    for row, bar in zip(rows, bars, strict=True):
        axes.annotate(
            bar.note,
            (axes.get_xlim()[0] if bar.length is None else bar.length, row),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7.5,
            # Over the mark's line, not under it.
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
        )


def render(run: dict[str, Any], path: Path) -> None:
    """Draw ``run`` (a saved run's JSON) as a PNG at ``path``."""
    # Imported here: only this command needs matplotlib. Agg draws to files, no screen.
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    targets, throughput = target_bars(run), throughput_bars(run)
    figure, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=_SIZE,
        gridspec_kw={"height_ratios": [len(targets), len(throughput)]},
        layout="constrained",
    )
    figure.suptitle(title(run), fontsize=9)
    _panel(
        top,
        targets,
        "Targets (green: met, red: missed)",
        "measured / target, inverted for upper bounds (≥ 1 meets the target)",
        mark=1.0,
    )
    _panel(
        bottom,
        throughput,
        "Durable writes (blue: snapstore, grey: the disk's limit and alternatives)",
        "operations per second",
        mark=None,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chart", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, help="a run's JSON, written by python -m benchmarks")
    parser.add_argument("-o", "--output", type=Path, default=_DEFAULT, help="the PNG to write")
    args = parser.parse_args(argv)
    render(json.loads(args.run.read_text()), args.output)
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
