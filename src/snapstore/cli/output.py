"""How listings are printed: a terminal table, CSV, JSON or Markdown, from one Arrow table.

``table`` and ``md`` are for people: floats to 6 significant digits, times
to the second, a missing value as ``-``. ``csv`` and ``json`` are for
scripts, exact and stable: every value as stored, times in ISO 8601 (UTC),
a missing value empty (csv) or null (json); json is one array of objects,
keys in column order. NaN and infinities are null in json (JSON has none).
"""

from __future__ import annotations

import fnmatch
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
import orjson

from snapstore._errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa

MISSING = "-"


def select_columns(table: pa.Table, patterns: str) -> pa.Table:
    """The columns of ``table`` that the comma-separated globs ``patterns`` name, in that order."""
    chosen: list[str] = []
    for pattern in (part.strip() for part in patterns.split(",")):
        matched = [name for name in table.column_names if fnmatch.fnmatchcase(name, pattern)]
        if not matched and not any(char in pattern for char in "*?["):
            raise InvalidInputError(
                f"no column {pattern!r}; there are {', '.join(table.column_names)}"
            )
        chosen.extend(name for name in matched if name not in chosen)
    return table.select(chosen)


def sort_rows(table: pa.Table, column: str | None, *, descending: bool) -> pa.Table:
    if column is None:
        return table
    if column not in table.column_names:
        raise InvalidInputError(
            f"cannot sort by {column!r}: no such column; there are {', '.join(table.column_names)}"
        )
    return table.sort_by([(column, "descending" if descending else "ascending")])


def emit(table: pa.Table, output_format: str, *, limit: int | None = None) -> None:
    """Print ``table`` in ``output_format``; at most ``limit`` rows (None or 0: all)."""
    shown = table if not limit else table.slice(0, limit)
    if output_format == "json":
        _write(orjson.dumps(shown.to_pylist(), option=orjson.OPT_INDENT_2) + b"\n")
    elif output_format == "csv":
        write_csv(shown, sys.stdout.buffer)
    elif output_format == "md":
        click.echo(markdown(shown.column_names, _cells(shown)))
    else:
        terminal_table(shown.column_names, _cells(shown))
    if shown.num_rows < table.num_rows and output_format in ("table", "md"):
        click.echo(
            f"({table.num_rows - shown.num_rows:,} more row(s) not shown: --limit 0 shows all)",
            err=True,
        )


def emit_fields(fields: dict[str, Any], output_format: str, *, title: str | None = None) -> None:
    """Print one record: ``fields`` as name/value rows (json: the object itself)."""
    if output_format == "json":
        _write(orjson.dumps(fields, option=orjson.OPT_INDENT_2, default=str) + b"\n")
        return
    rows = [[name, cell(value)] for name, value in fields.items()]
    if output_format == "csv":
        import csv  # noqa: PLC0415 - only csv output needs it

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["field", "value"])
        writer.writerows([name, _exact(value)] for name, value in fields.items())
    elif output_format == "md":
        if title:
            click.echo(f"**{title}**\n")
        click.echo(markdown(["field", "value"], rows))
    else:
        terminal_table(["field", "value"], rows, title=title)


def write_csv(table: pa.Table, sink: Any) -> None:
    import pyarrow.csv  # noqa: PLC0415 - only csv output needs it

    pyarrow.csv.write_csv(table, sink)
    sink.flush()


def cell(value: Any) -> str:
    """``value`` as a table cell for people."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _exact(value: Any) -> str:
    if isinstance(value, dict | list | bool) or value is None:
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _cells(table: pa.Table) -> list[list[str]]:
    columns = [[cell(value) for value in column.to_pylist()] for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)]


def markdown(header: list[str], rows: Iterable[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(text.replace("|", "\\|") for text in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def terminal_table(
    header: list[str], rows: Iterable[list[str]], *, title: str | None = None
) -> None:
    """A table fitted to the terminal's width; as wide as it needs when not printed to one."""
    from rich.console import Console  # noqa: PLC0415 - heavy; only table output needs it
    from rich.measure import Measurement  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title, title_justify="left", header_style="bold", box=None)
    for name in header:
        table.add_column(name, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console(soft_wrap=False, highlight=False)
    if not console.is_terminal:
        # Into a file or a pipe, nothing is cut short: there is no width to fit.
        natural = Measurement.get(console, console.options.update(width=1 << 16), table)
        console.width = natural.maximum
    console.print(table)


def _write(data: bytes) -> None:
    sys.stdout.flush()  # what click.echo wrote before goes first
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
