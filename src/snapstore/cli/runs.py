"""The commands about snapshots: ``ls``, ``show``, ``diff``, ``baseline``, ``info``, ``export``."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from snapstore._errors import InvalidInputError, NotFoundError
from snapstore.cli.options import (
    LOCATION,
    Location,
    all_versions_option,
    format_option,
    is_history_file,
    lock_timeout_option,
    reading_history,
    reading_store,
    selection_options,
    store_argument,
)
from snapstore.cli.output import emit, emit_fields, select_columns, sort_rows, write_csv
from snapstore.cli.progress import on_terminal, progress_bar
from snapstore.snapshot import MAPPINGS

if TYPE_CHECKING:
    import pyarrow as pa

    from snapstore.diff import SnapshotDiff
    from snapstore.snapshot import NormalizedSnapshot
    from snapstore.store import SnapshotStore

# Rows a terminal table shows unless --limit says otherwise; csv, json and md show all.
TABLE_ROWS = 100
LS_COLUMNS = "snapshot_seq,run_id,stage,baseline,metrics.*"
EXPORT_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SEQ = re.compile(r"[0-9]+")


def rows_options(command: Any) -> Any:
    """Which columns, in which order, how many rows: every table command takes these."""
    for option in reversed(
        [
            click.option("--sort", metavar="COLUMN", help="Sort the rows by COLUMN."),
            click.option("--desc", is_flag=True, help="Sort in descending order."),
            click.option(
                "--limit",
                type=click.IntRange(min=0),
                help=f"Show at most this many rows (0: all; default {TABLE_ROWS} for "
                "--format table, all for the others).",
            ),
        ]
    ):
        command = option(command)
    return command


def print_table(
    table: pa.Table,
    output_format: str,
    *,
    columns: str,
    sort: str | None,
    desc: bool,
    limit: int | None,
) -> None:
    """Sort (by any column), choose the columns, print: the tail of every listing."""
    table = select_columns(sort_rows(table, sort, descending=desc), columns)
    if limit is None:
        limit = TABLE_ROWS if output_format == "table" else 0
    emit(table, output_format, limit=limit)


@click.command("ls", short_help="The run table: the latest snapshot of each run and stage.")
@store_argument
@selection_options
@all_versions_option
@click.option(
    "--columns",
    default=LS_COLUMNS,
    show_default=True,
    help="Comma-separated columns or globs ('*' for all: config.*, data.*, created_at, ...).",
)
@rows_options
@format_option
def ls(
    *,
    store: Location,
    stage: str | None,
    run: str | None,
    group: str | None,
    where: tuple[str, ...],
    all_versions: bool,
    columns: str,
    sort: str | None,
    desc: bool,
    limit: int | None,
    output_format: str,
) -> None:
    """List the snapshots of STORE: one row per (run, stage), its latest version, in seq order."""
    with progress_bar(on_terminal()), reading_store(store) as opened:
        table = opened.to_arrow(
            stage=stage, run=run, comparison_key=group, latest_only=not all_versions, where=where
        )
    print_table(table, output_format, columns=columns, sort=sort, desc=desc, limit=limit)


def find_snapshot(store: SnapshotStore, ref: str) -> NormalizedSnapshot:
    """The snapshot ``ref`` names: a seq (``12``), or ``RUN:STAGE`` for its latest version."""
    if _SEQ.fullmatch(ref):
        return store.get_by_seq(int(ref))
    run_id, colon, stage = ref.rpartition(":")
    if not colon:
        raise InvalidInputError(f"{ref!r} names no snapshot: write RUN:STAGE or a seq")
    found = store.get(run_id, stage)
    if found is None:
        raise NotFoundError(f"{store.root} has no snapshot of run {run_id!r}, stage {stage!r}")
    return found


@click.command(short_help="One snapshot in full: its fields, versions, group and baseline.")
@store_argument
@click.argument("run", required=False)
@click.argument("stage", required=False)
@click.option("--seq", type=click.IntRange(min=1), help="The snapshot with this seq.")
@format_option
def show(
    *, store: Location, run: str | None, stage: str | None, seq: int | None, output_format: str
) -> None:
    """Show the latest snapshot of RUN's STAGE in STORE (or the one --seq names).

    With it: every version of its (run, stage), its comparison group's
    pinned baseline (and whether it is that baseline), and its previous
    comparable run.
    """
    if (seq is None) == (run is None or stage is None) or (seq is not None and run is not None):
        raise click.UsageError("name a snapshot by RUN STAGE or by --seq N (one of the two)")
    with reading_store(store) as opened:
        snap = (
            opened.get_by_seq(seq) if seq is not None else find_snapshot(opened, f"{run}:{stage}")
        )
        assert snap.comparison_key is not None  # a stored snapshot
        versions = [version.snapshot_seq for version in opened.versions(snap.run_id, snap.stage)]
        baseline = opened.baseline(snap.stage, snap.comparison_key)
        previous = opened.find_previous_comparable(snap)
    if output_format == "json":
        emit_fields(
            {
                "snapshot": snap.to_dict(),
                "versions": versions,
                "baseline": None if baseline is None else baseline.snapshot_seq,
                "is_baseline": baseline == snap,
                "previous_comparable": None if previous is None else previous.snapshot_seq,
            },
            output_format,
        )
        return
    fields: dict[str, Any] = {
        name: value for name, value in snap.to_dict().items() if name not in MAPPINGS
    }
    for name in MAPPINGS:
        fields.update(_flat(name, getattr(snap, name)))
    fields["versions"] = ", ".join(f"{seq_}" for seq_ in versions)
    fields["baseline"] = "this snapshot" if baseline == snap else _named(baseline)
    fields["previous comparable"] = _named(previous)
    emit_fields(fields, output_format, title=f"{snap.run_id}:{snap.stage}")


def _flat(prefix: str, mapping: Any) -> dict[str, Any]:
    from snapstore._tables import flatten  # noqa: PLC0415 - the tables' own rule for names

    row: dict[str, Any] = {}
    flatten(prefix, mapping, row)
    return row


def _named(snap: NormalizedSnapshot | None) -> str | None:
    return None if snap is None else f"seq {snap.snapshot_seq} ({snap.run_id})"


@click.command(short_help="What changed between two snapshots: metrics, config, data.")
@store_argument
@click.argument("a")
@click.argument("b", required=False)
@click.option("--previous", is_flag=True, help="Compare A with its previous comparable run.")
@click.option("--baseline", is_flag=True, help="Compare A with its group's pinned baseline.")
@format_option
def diff(
    *,
    store: Location,
    a: str,
    b: str | None,
    previous: bool,
    baseline: bool,
    output_format: str,
) -> None:
    """Show how snapshot B of STORE differs from snapshot A (each RUN:STAGE or a seq).

    With --previous or --baseline instead of B: how A differs from its
    previous comparable run, or from its group's baseline. Every metric is
    listed, with the change and the relative change; config and data keys
    only when added, removed or changed.
    """
    if (b is not None) + previous + baseline != 1:
        raise click.UsageError("give B, or --previous, or --baseline (one of the three)")
    with reading_store(store) as opened:
        first = find_snapshot(opened, a)
        if b is not None:
            from snapstore.diff import diff_snapshots  # noqa: PLC0415 - only this command needs it

            found: SnapshotDiff | None = diff_snapshots(first, find_snapshot(opened, b))
        else:
            found = opened.diff_previous(first) if previous else opened.diff_baseline(first)
    if found is None:
        what = "previous comparable run" if previous else "pinned baseline"
        raise NotFoundError(
            f"{first.run_id}:{first.stage} (seq {first.snapshot_seq}) has no {what}"
        )
    if output_format == "json":
        emit_fields(found.to_dict(), output_format)
        return
    if output_format != "csv":
        click.echo(f"{_named(found.before)} -> {_named(found.after)}")
    emit(changes_table(found), output_format)


def changes_table(found: SnapshotDiff) -> pa.Table:
    """One row per metric, and per config or data key added, removed or changed."""
    import pyarrow as pa  # noqa: PLC0415 - heavy; only tables need it

    from snapstore._tables import json_text  # noqa: PLC0415

    rows: list[tuple[str, Any, Any, float | None, float | None]] = [
        (f"metrics.{m.name}", m.before, m.after, m.absolute, m.relative) for m in found.metrics
    ]
    for section in ("config", "data"):
        changes = getattr(found, section)
        rows.extend((f"{section}.{k}", None, v, None, None) for k, v in changes.added.items())
        rows.extend((f"{section}.{k}", v, None, None, None) for k, v in changes.removed.items())
        rows.extend((f"{section}.{c.name}", c.before, c.after, None, None) for c in changes.changed)
    return pa.table(
        {
            "field": [row[0] for row in rows],
            "before": [None if row[1] is None else json_text(row[1]) for row in rows],
            "after": [None if row[2] is None else json_text(row[2]) for row in rows],
            "change": pa.array([row[3] for row in rows], pa.float64()),
            "relative": pa.array([row[4] for row in rows], pa.float64()),
        }
    )


@click.command(short_help="List the pinned baselines, or pin one (--set).")
@store_argument
@click.option("--stage", help="Only this stage's baselines.")
@click.option(
    "--set",
    "pin",
    metavar="SNAPSHOT",
    help="Pin SNAPSHOT (RUN:STAGE or a seq) as the baseline of its group, replacing the pin.",
)
@lock_timeout_option
@format_option
def baseline(
    *, store: Location, stage: str | None, pin: str | None, lock_timeout: float, output_format: str
) -> None:
    """List the pinned baseline of each (stage, comparison key) group of STORE.

    With --set, pin a snapshot as its group's baseline instead (the only
    command here that writes), and say which it replaced: a sentence, or
    with --format csv or json the fields stage, comparison_key,
    snapshot_seq, run_id and replaced (the seq pinned before, or null).
    """
    if pin is not None:
        from snapstore.store import SnapshotStore  # noqa: PLC0415 - only --set writes

        with SnapshotStore(store, lock_timeout=lock_timeout) as opened:
            snap = find_snapshot(opened, pin)
            assert snap.comparison_key is not None  # a stored snapshot
            before = opened.baseline(snap.stage, snap.comparison_key)
            opened.set_baseline(snap)
        if output_format != "table":
            # Asked for csv or json, a script gets the pin as a record, not a sentence.
            emit_fields(
                {
                    "stage": snap.stage,
                    "comparison_key": snap.comparison_key,
                    "snapshot_seq": snap.snapshot_seq,
                    "run_id": snap.run_id,
                    "replaced": None if before is None else before.snapshot_seq,
                },
                output_format,
            )
            return
        was = "none" if before is None else _named(before)
        click.echo(
            f"pinned {_named(snap)} as the baseline of {snap.stage} / {snap.comparison_key} "
            f"(was {was})"
        )
        return
    from snapstore._tables import snapshot_table  # noqa: PLC0415 - only tables need it

    with reading_store(store) as opened:
        pinned = [snap for snap in opened.baselines() if stage is None or snap.stage == stage]
    table = snapshot_table(pinned, {snap.snapshot_seq or 0 for snap in pinned}, ())
    columns = "stage,comparison_key,snapshot_seq,run_id,created_at,metrics.*"
    print_table(table, output_format, columns=columns, sort=None, desc=False, limit=0)


@click.command(short_help="Counts, seq range, sizes, histories and index state of a store.")
@store_argument
@format_option
def info(*, store: Location, output_format: str) -> None:
    """Say what STORE holds: snapshots, seqs, baselines, histories, and its files."""
    with reading_store(store) as opened:
        facts = opened.info()
    seqs = "none" if facts.seq_range is None else "{} .. {}".format(*facts.seq_range)
    records = sum(facts.histories.values())
    if output_format == "json":
        emit_fields(dataclasses.asdict(facts), output_format)
        return
    emit_fields(
        {
            "location": facts.location,
            "snapshots": facts.snapshots,
            "snapshot seqs": seqs,
            "baselines": facts.baselines,
            "histories": f"{len(facts.histories)} ({records} record(s) in all)",
            **facts.details,
        },
        output_format,
    )


@click.command(short_help="Write snapshots or a history's records to parquet, CSV or JSON Lines.")
@click.argument("source", type=LOCATION)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="The file to write ('-': standard output, csv or jsonl).",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(sorted(set(EXPORT_FORMATS.values()))),
    help="parquet, csv or jsonl (default: by the output's extension).",
)
@click.option("--history", "history_name", metavar="NAME", help="Export the store's history NAME.")
@selection_options
@click.option("--latest-only", is_flag=True, help="Only the latest version of each run and stage.")
def export(
    *,
    source: Location,
    output: Path,
    file_format: str | None,
    history_name: str | None,
    stage: str | None,
    run: str | None,
    group: str | None,
    where: tuple[str, ...],
    latest_only: bool,
) -> None:
    """Write every snapshot of the store SOURCE (or every record of a history) to a file.

    SOURCE is a store directory, or a history .jsonl file; --history NAME
    exports one of the store's histories. Every column is typed as in ls and
    to_arrow(); nothing is sampled.
    """
    file_format = file_format or EXPORT_FORMATS.get(output.suffix.lower())
    if file_format is None:
        raise click.UsageError(
            f"cannot tell the format of {output} by its extension: give --format "
            f"({', '.join(sorted(set(EXPORT_FORMATS.values())))})"
        )
    if str(output) == "-" and file_format == "parquet":
        raise click.UsageError("parquet is not written to standard output: give a file with -o")
    is_history = history_name is not None or is_history_file(source)
    if is_history:
        with progress_bar(on_terminal()), reading_history(source, history_name) as history:
            table = history.to_arrow(where=where)
    else:
        with progress_bar(on_terminal()), reading_store(source) as opened:
            table = opened.to_arrow(
                stage=stage, run=run, comparison_key=group, latest_only=latest_only, where=where
            )
    write_table(table, output, file_format)
    if str(output) != "-":
        click.echo(f"{output}: {table.num_rows:,} row(s), {table.num_columns} column(s)", err=True)


def write_table(table: pa.Table, output: Path, file_format: str) -> None:
    """Write ``table`` to ``output`` ('-': standard output) as parquet, csv or jsonl."""
    if file_format == "parquet":
        import pyarrow.parquet as pq  # noqa: PLC0415 - only parquet needs it

        pq.write_table(table, output)
        return
    sys.stdout.flush()  # what was echoed before goes first
    with (
        contextlib.nullcontext(sys.stdout.buffer) if str(output) == "-" else output.open("wb")
    ) as stream:
        if file_format == "csv":
            write_csv(table, stream)
        else:
            write_jsonl(table, stream)


def write_jsonl(table: pa.Table, sink: Any) -> None:
    import orjson  # noqa: PLC0415

    for batch in table.to_batches(max_chunksize=10_000):
        sink.write(b"".join(orjson.dumps(row) + b"\n" for row in batch.to_pylist()))


run_commands = (ls, show, diff, baseline, export, info)
