"""``history``: a store's histories, or one history's records, as a table or followed live."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click
import orjson

from snapstore._tables import flatten, history_table
from snapstore.cli.options import (
    LOCATION,
    Location,
    format_option,
    is_history_file,
    reading_history,
    reading_store,
    where_option,
)
from snapstore.cli.output import cell
from snapstore.cli.runs import print_table, rows_options

if TYPE_CHECKING:
    from snapstore._records import HistoryRecord
    from snapstore.history import IterationHistory

# How often --follow looks for new records.
FOLLOW_INTERVAL = 0.5


@click.command(short_help="A history's records as a table; --follow prints new ones live.")
@click.argument("source", type=LOCATION)
@click.argument("name", required=False)
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N records.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing records as other processes append them, until Ctrl-C "
    "(--format table: one line per record; json: one object per line).",
)
@where_option("'data.loss < 0.3'")
@click.option("--columns", default="*", show_default=True, help="Comma-separated columns or globs.")
@rows_options
@format_option
def history(
    *,
    source: Location,
    name: str | None,
    tail: int | None,
    follow: bool,
    where: tuple[str, ...],
    columns: str,
    sort: str | None,
    desc: bool,
    limit: int | None,
    output_format: str,
) -> None:
    """Show the records of the history NAME of the store SOURCE, or of the history file SOURCE.

    Without NAME, a store's histories are listed with their record counts.
    Columns: seq, ts (commit time), key, and data.<field> for each field.
    """
    if is_history_file(source) and name is not None:
        raise click.UsageError(f"{source} is a history file: it takes no NAME")
    if name is None and not is_history_file(source):
        _list_histories(source, output_format)
        return
    if follow and output_format not in ("table", "json"):
        raise click.UsageError("--follow prints --format table or json (one line per record)")
    with reading_history(source, name) as opened:
        if follow:
            _follow(opened, tail, output_format)
            return
        records = opened.load_recent(tail) if tail is not None else opened
        table = history_table(records, where)
    print_table(table, output_format, columns=columns, sort=sort, desc=desc, limit=limit)


def _list_histories(store: Location, output_format: str) -> None:
    import pyarrow as pa  # noqa: PLC0415 - heavy; only tables need it

    with reading_store(store) as opened:
        names = opened.history_names()
        counts = [len(opened.history(name)) for name in names]
    table = pa.table(
        {"name": pa.array(names, pa.string()), "records": pa.array(counts, pa.int64())}
    )
    print_table(table, output_format, columns="*", sort=None, desc=False, limit=0)


def _follow(history: IterationHistory, tail: int | None, output_format: str) -> None:
    """Print the last ``tail`` records (all if None), then each new one, until interrupted."""
    shown = len(history) - tail if tail is not None else 0
    try:
        while True:
            total = len(history)  # takes in what other processes appended
            if total > shown:
                for record in history.load_recent(total - shown):
                    click.echo(_line(record, output_format))
                shown = total
            time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a follow ends: not an error


def _line(record: HistoryRecord, output_format: str) -> str:
    if output_format == "json":
        row = {"seq": record.seq, "ts": record.ts, "key": record.key}
        flatten("data", record.data, row)  # the columns the table has
        return orjson.dumps(row).decode()
    fields = " ".join(f"{field}={cell(value)}" for field, value in record.data.items())
    return f"{record.seq:>6}  {cell(record.ts)}  {record.key or '-'}  {fields}"
