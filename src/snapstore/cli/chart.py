"""Drawing a chart to an image file: the one module of the command line that uses matplotlib.

matplotlib is an optional dependency (the ``plot`` extra), imported when a
chart is drawn, never by ``import snapstore`` or by the other commands. The
figure is drawn through the object API (``matplotlib.figure.Figure``), not
pyplot: pyplot keeps global figures and picks an interactive backend by
itself, while a bare Figure saves through the non-interactive canvas of the
file's format (Agg for PNG) with no display and no state left behind.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from snapstore._extras import import_extra

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes

# The image formats matplotlib writes with no other dependency, by extension.
IMAGE_FORMATS = (".png", ".svg", ".pdf")
# A series with more points than this is drawn as a bare line: markers would blot it.
MARKED_POINTS = 60
# Text sizes, in points, as matplotlib draws tick labels by default.
_FONT = 10.0
_EM = 0.6  # a character's average width in DejaVu Sans, in ems


@dataclass(frozen=True)
class Series:
    """One line of a chart: its points in x order, and its name in the legend.

    ``joined``: the points are drawn joined by a line. A series whose x
    repeats (several workers' iteration 3) is drawn as points only, since a
    line through it would zigzag between values that are not in sequence.
    """

    label: str
    x: list[float | datetime]
    y: list[float]
    joined: bool = True


@dataclass(frozen=True)
class Chart:
    """What is drawn: lines, points marked on top of them, axis names, tick labels."""

    title: str
    x_label: str
    y_label: str
    series: list[Series]
    marked: Series | None = None
    # Labels at x positions (a run's name at its first snapshot), drawn when they fit.
    ticks: list[tuple[float, str]] = field(default_factory=list)
    # The x label when the tick labels are drawn instead of numbers.
    ticks_label: str = ""


def draw(chart: Chart, output: Path, *, width: float, height: float, dpi: int) -> None:
    """Draw ``chart`` to ``output`` (.png, .svg or .pdf): ``width`` x ``height`` inches."""
    import_extra("matplotlib", "plot", "snapstore plot")
    from matplotlib.figure import Figure  # noqa: PLC0415 - optional; imported when drawing
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    # Constrained layout fits the labels inside the figure without changing
    # its size, as bbox_inches="tight" would: the image is width x dpi pixels.
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    axes = figure.add_subplot()
    for series in chart.series:
        axes.plot(
            _numeric(series.x),
            series.y,
            label=series.label,
            linestyle="-" if series.joined else "none",
            marker="o" if len(series.x) <= MARKED_POINTS or not series.joined else "",
            markersize=3 if series.joined else 4,
        )
    if chart.marked is not None:
        axes.scatter(
            _numeric(chart.marked.x),
            chart.marked.y,
            label=chart.marked.label,
            marker="*",
            s=200,
            color="gold",
            edgecolors="black",
            linewidths=0.8,
            zorder=3,
        )
    axes.set_title(chart.title)
    axes.set_ylabel(chart.y_label)
    axes.set_xlabel(chart.x_label)
    axes.grid(visible=True, alpha=0.3)
    if chart.ticks and _place_ticks(axes, chart.ticks, width):
        axes.set_xlabel(chart.ticks_label)
    elif any(isinstance(x, datetime) for series in chart.series for x in series.x[:1]):
        axes.xaxis_date(tz="UTC")  # times are stored in UTC, and shown so by the tables
        figure.autofmt_xdate()
    elif all(isinstance(x, int) for series in chart.series for x in series.x):
        # Seqs and iteration numbers: no tick at 2.5.
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    entries = len(chart.series) + (chart.marked is not None)
    axes.legend(fontsize="small", ncols=1 if entries <= 8 else 2)
    figure.savefig(output, dpi=dpi)


def _numeric(xs: list[float | datetime]) -> list[float]:
    """Positions as matplotlib places them: times as its date numbers (days)."""
    from matplotlib.dates import date2num  # noqa: PLC0415 - optional; imported when drawing

    # date2num carries no annotations in matplotlib's stubs: it returns a float for a datetime.
    return [float(date2num(x)) if isinstance(x, datetime) else x for x in xs]  # type: ignore[no-untyped-call]


def _place_ticks(axes: Axes, ticks: list[tuple[float, str]], width: float) -> bool:
    """Label the x axis with ``ticks`` if they can be read: level, slanted, or not at all."""
    positions = [position for position, _label in ticks]
    longest = max(len(label) for _position, label in ticks)
    # The plot area is most of the figure's width; matplotlib pads the data 5% each side.
    area = width * 0.85
    span = (max(positions) - min(positions)) * 1.1 or 1.0
    gap = min((b - a for a, b in itertools.pairwise(positions)), default=span)
    room = area * gap / span  # inches between two neighbouring labels
    text = longest * _FONT * _EM / 72  # inches one label takes, level
    if room >= text + 0.1:
        rotation = 0.0
    elif room >= _FONT / 72 * math.sqrt(2) + 0.05 and longest <= 24:
        rotation = 45.0  # slanted labels need only their height (over sin 45°) between them
    else:
        return False
    axes.set_xticks(positions, [label for _position, label in ticks], rotation=rotation)
    if rotation:
        for label in axes.get_xticklabels():
            label.set_horizontalalignment("right")
    return True
