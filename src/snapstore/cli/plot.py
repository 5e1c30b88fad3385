"""``plot``: a metric over a store's runs, or a history's field over its records, as an image.

The points come from the library's tables (``SnapshotStore.to_arrow``,
``IterationHistory.to_arrow``), read through a read-only handle; ``chart``
draws them. Only numeric columns are drawn: a column mixing numbers with
other values is typed as text by the tables' rule, and is refused rather
than drawn in part.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from snapstore._errors import InvalidInputError, NotFoundError
from snapstore.cli.chart import IMAGE_FORMATS, Chart, Series, draw
from snapstore.cli.options import (
    LOCATION,
    Location,
    all_versions_option,
    is_history_file,
    reading_history,
    reading_store,
    selection_options,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    import pyarrow as pa
    from click.decorators import FC

    from snapstore.store import SnapshotStore

# How many names an error lists before it says "...".
_NAMED = 12


def _inches_option(side: str, default: float) -> Callable[[FC], FC]:
    """``--width`` or ``--height``: one side of the image, in inches."""
    return click.option(
        f"--{side}",
        type=click.FloatRange(min=1, max=50),
        default=default,
        show_default=True,
        metavar="INCHES",
        help=f"The image's {side}.",
    )


@click.command(short_help="Draw a metric over runs, or over a history's records, to an image.")
@click.argument("source", type=LOCATION)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--metric",
    "-m",
    required=True,
    metavar="NAME",
    help="What to draw: a metric (auc or metrics.auc) over runs, or a history's field "
    "(loss or data.loss); any numeric column by its full name (config.lr).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The image to write, by its extension: .png, .svg or .pdf.",
)
@click.option(
    "--histories",
    metavar="GLOB",
    help="Overlay every history of the store whose name matches GLOB ('run-*.TRAINING').",
)
@click.option(
    "--x",
    "x_field",
    metavar="FIELD",
    help="A history's x axis: a field (iteration or data.iteration), or ts. [default: seq]",
)
@selection_options
@all_versions_option
@click.option("--title", help="The chart's title (default: what is drawn over what).")
@_inches_option("width", 8.0)
@_inches_option("height", 4.5)
@click.option(
    "--dpi",
    type=click.IntRange(min=20, max=600),
    default=100,
    show_default=True,
    help="Pixels per inch: a PNG is width x dpi by height x dpi pixels.",
)
def plot(
    *,
    source: Location,
    names: tuple[str, ...],
    metric: str,
    output: Path,
    histories: str | None,
    x_field: str | None,
    stage: str | None,
    run: str | None,
    group: str | None,
    where: tuple[str, ...],
    all_versions: bool,
    title: str | None,
    width: float,
    height: float,
    dpi: int,
) -> None:
    """Draw a metric of the store SOURCE over its runs, or a history's field over its records.

    \b
    snapstore plot STORE --metric auc -o auc.png
        one line per stage over the snapshot seq, each run named at its
        first snapshot, the pinned baselines marked with a star; the latest
        version of each run and stage (--all-versions: every one)
    snapstore plot STORE NAME... --metric loss -o loss.png
    snapstore plot STORE --histories 'run-*.TRAINING' --metric loss -o loss.png
    snapstore plot HISTORY.jsonl --metric loss --x iteration -o loss.png
        one line per history over its records' seq (or --x FIELD)

    A history's records whose x repeats (parallel workers each counting
    iterations) are drawn as points, not joined.
    """
    if output.suffix.lower() not in IMAGE_FORMATS:
        raise click.UsageError(
            f"cannot tell the image format of {output} by its extension: "
            f"give a {', '.join(IMAGE_FORMATS[:-1])} or {IMAGE_FORMATS[-1]} file with -o"
        )
    if any(not math.isfinite(inches) for inches in (width, height)):
        raise click.UsageError("--width and --height must be finite numbers of inches")
    if is_history_file(source) or names or histories is not None:
        if stage is not None or run is not None or group is not None or all_versions:
            raise click.UsageError(
                "--stage, --run, --group and --all-versions choose snapshots: "
                "a history's plot takes --where and --x"
            )
        chart = _history_chart(
            _history_tables(source, names, histories, where), metric, x_field, where=where
        )
    else:
        if x_field is not None:
            raise click.UsageError(
                "--x is for a history's plot: a store's runs are drawn over their snapshot seq "
                "(name histories of the store after STORE, or give --histories GLOB)"
            )
        selection = {"stage": stage, "run": run, "comparison_key": group, "where": where}
        chart = _runs_chart(
            _runs_table(source, selection, latest_only=not all_versions),
            metric,
            source,
            chosen=any(selection.values()),
        )
    if title is not None:
        chart = dataclasses.replace(chart, title=title)
    draw(chart, output, width=width, height=height, dpi=dpi)
    points = sum(len(series.x) for series in chart.series)
    click.echo(f"{output}: {points:,} point(s), {len(chart.series)} series", err=True)


# -- a store's runs ------------------------------------------------------------------


def _runs_table(source: Location, selection: dict[str, Any], *, latest_only: bool) -> pa.Table:
    """The snapshots of the store ``source`` that ``selection`` (to_arrow's) chooses."""
    with reading_store(source) as opened:
        table = opened.to_arrow(latest_only=latest_only, **selection)
        if table.num_rows == 0:
            raise InvalidInputError(
                f"{source} has no snapshots: nothing to plot"
                if len(opened) == 0
                else f"no snapshot of {source} matches --stage, --run, --group or --where: "
                "nothing to plot"
            )
    return table


def _runs_chart(table: pa.Table, metric: str, source: Location, *, chosen: bool) -> Chart:
    """One series per stage, in the order the stages first appear; the baselines marked."""
    missing = (
        f"no snapshot of {source} that --stage, --run, --group and --where chose "
        f"has a metric {metric!r}"
        if chosen
        else f"{source} has no metric {metric!r}"
    )
    column = _column(table, metric, "metrics", missing, "metrics")
    values = _numbers(table, column)
    lines: dict[str, tuple[list[float | datetime], list[float]]] = {}
    pinned: tuple[list[float | datetime], list[float]] = ([], [])
    first_seq: dict[str, int] = {}
    for seq, run_id, stage, baseline, value in zip(
        table.column("snapshot_seq").to_pylist(),
        table.column("run_id").to_pylist(),
        table.column("stage").to_pylist(),
        table.column("baseline").to_pylist(),
        values,
        strict=True,
    ):
        if value is None:
            continue
        xs, ys = lines.setdefault(stage, ([], []))
        xs.append(seq)
        ys.append(value)
        first_seq.setdefault(run_id, seq)
        if baseline:
            pinned[0].append(seq)
            pinned[1].append(value)
    if not lines:
        raise InvalidInputError(f"no snapshot has a number as {column}: nothing to plot")
    return Chart(
        title=f"{column} over runs",
        x_label="snapshot seq",
        y_label=column,
        series=[Series(stage, xs, ys) for stage, (xs, ys) in lines.items()],
        marked=Series("baseline", *pinned) if pinned[0] else None,
        ticks=sorted((seq, run_id) for run_id, seq in first_seq.items()),
        ticks_label="run, at the seq of its first snapshot",
    )


# -- histories -----------------------------------------------------------------------


def _history_tables(
    source: Location, names: tuple[str, ...], pattern: str | None, where: tuple[str, ...]
) -> list[tuple[str, pa.Table]]:
    """Each history chosen, by its name, with its records' table."""
    if is_history_file(source):
        if names or pattern is not None:
            raise click.UsageError(f"{source} is a history file: it takes no NAME or --histories")
        with reading_history(source, None) as opened:
            return [(Path(source).stem, opened.to_arrow(where=where))]
    with reading_store(source) as store:
        return [
            (name, store.history(name).to_arrow(where=where))
            for name in _chosen(store, source, names, pattern)
        ]


def _chosen(
    store: SnapshotStore, source: Location, names: tuple[str, ...], pattern: str | None
) -> list[str]:
    """The histories ``names`` names, then those ``pattern`` matches, each once."""
    known = store.history_names()
    listed = f"{_some(known) or 'none'} (snapstore history {source} lists them)"
    for name in names:
        if name not in known:
            raise NotFoundError(f"{source} has no history {name!r}; its histories are {listed}")
    chosen = list(dict.fromkeys(names))
    if pattern is not None:
        matched = [name for name in known if fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            raise NotFoundError(f"no history of {source} matches {pattern!r}; there are {listed}")
        chosen.extend(name for name in matched if name not in chosen)
    return chosen


def _history_chart(
    tables: list[tuple[str, pa.Table]], metric: str, x_field: str | None, *, where: tuple[str, ...]
) -> Chart:
    """One series per history: ``metric`` over ``x_field`` (the record's seq by default)."""
    series: list[Series] = []
    y_column = x_column = ""
    for name, table in tables:
        if table.num_rows == 0:
            meeting = " meeting --where" if where else ""
            raise InvalidInputError(f"history {name} has no records{meeting}: nothing to plot")
        y_column = _column(
            table, metric, "data", f"history {name} has no field {metric!r}", "fields"
        )
        x_column = (
            "seq"
            if x_field is None
            else _column(
                table, x_field, "data", f"history {name} has no field {x_field!r}", "fields"
            )
        )
        points = sorted(
            (
                (x, y)
                for x, y in zip(_positions(table, x_column), _numbers(table, y_column), strict=True)
                if x is not None and y is not None
            ),
            key=lambda point: point[0],
        )
        if points:
            xs = [x for x, _y in points]
            series.append(Series(name, xs, [y for _x, y in points], joined=len(set(xs)) == len(xs)))
    if not series:
        raise InvalidInputError(
            f"no record has numbers as {y_column} and {x_column}: nothing to plot"
        )
    return Chart(
        title=f"{y_column} over {x_column}", x_label=x_column, y_label=y_column, series=series
    )


# -- columns -------------------------------------------------------------------------


def _column(table: pa.Table, name: str, prefix: str, missing: str, kind: str) -> str:
    """The column ``name`` means: ``prefix.name``, or ``name`` itself as a full column name."""
    for candidate in (f"{prefix}.{name}", name):
        if candidate in table.column_names:
            return candidate
    numeric = [
        column
        for column in table.column_names
        if column.startswith(f"{prefix}.") and _is_number(table.schema.field(column).type)
    ]
    raise InvalidInputError(f"{missing}; its numeric {kind} are {_some(numeric) or 'none'}")


def _numbers(table: pa.Table, column: str) -> list[float | None]:
    """The finite numbers of ``column``; None where a row has none (missing, NaN, infinite)."""
    values: list[float | None] = table.column(column).to_pylist()
    if all(value is None for value in values):
        return values  # no row has the field: a table types such a column as text
    kind = table.schema.field(column).type
    if not _is_number(kind):
        held = (
            "true/false"
            if str(kind) == "bool"
            # The tables' rule: a field mixing numbers with other values ("n/a") is text.
            else "text (or numbers mixed with other values, which the tables type as text)"
        )
        raise InvalidInputError(f"{column} holds {held}, not numbers: nothing to plot")
    return [value if value is not None and math.isfinite(value) else None for value in values]


def _positions(table: pa.Table, column: str) -> list[float | datetime | None]:
    """``column`` as x positions: numbers, or times."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the table it reads

    if pa.types.is_timestamp(table.schema.field(column).type):
        times: list[datetime | None] = table.column(column).to_pylist()
        return list(times)
    return list(_numbers(table, column))


def _is_number(kind: pa.DataType) -> bool:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the table it reads

    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _some(names: list[str]) -> str:
    return ", ".join(names[:_NAMED]) + (", ..." if len(names) > _NAMED else "")
