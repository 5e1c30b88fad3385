"""``snapstore sync``: copy one store into another, exactly once."""

from __future__ import annotations

import dataclasses

import click

from snapstore.cli.options import (
    EXIT_DAMAGE,
    EXIT_OK,
    LOCATION,
    Location,
    format_option,
    lock_timeout_option,
)
from snapstore.cli.output import emit_fields
from snapstore.cli.progress import on_terminal, progress_bar


@click.command(short_help="Copy snapshots, baselines and histories into another store, once.")
@click.argument("source", type=LOCATION)
@click.argument("destination", type=LOCATION)
@lock_timeout_option
@format_option
def sync(
    *, source: Location, destination: Location, lock_timeout: float, output_format: str
) -> int:
    """Copy into DESTINATION what it lacks of SOURCE: snapshots, baseline pins, histories.

    Either may be a store directory or a postgresql:// URL. DESTINATION is
    created if it does not exist. Each copy gets DESTINATION's next seq and
    keeps its origin (SOURCE's identity and seq), so running sync again, or
    after it was interrupted at any point, copies nothing twice and loses
    nothing. A group DESTINATION has pinned on another snapshot than
    SOURCE's baseline, or a history record it holds under the same key with
    other data, is kept and reported: the exit status is then 1.
    """
    from snapstore.store import SnapshotStore  # noqa: PLC0415 - only store commands need it

    with (
        SnapshotStore(source, read_only=True) as reading,
        SnapshotStore(destination, lock_timeout=lock_timeout) as writing,
        progress_bar(on_terminal()),
    ):
        report = writing.sync_from(reading)
    if output_format == "json":
        emit_fields(dataclasses.asdict(report), output_format)
    else:
        emit_fields(
            {
                "from": report.source,
                "to": report.destination,
                "snapshots": _counted(report.snapshots_copied, "copied", report.snapshots_present),
                "baselines": _counted(report.baselines_pinned, "pinned", report.baselines_present),
                "history records": _counted(
                    report.records_copied, "copied", report.records_present
                ),
                **{
                    f"conflict {c.stage} {c.comparison_key}": (
                        f"source pins its seq {c.source_seq}; kept this store's seq "
                        f"{c.destination_seq}"
                    )
                    for c in report.baseline_conflicts
                },
                **{
                    f"conflict {c.history} key {c.key}": (
                        f"source seq {c.source_seq} holds other data; kept this store's record"
                    )
                    for c in report.record_conflicts
                },
            },
            output_format,
        )
    return EXIT_OK if report.ok else EXIT_DAMAGE


def _counted(done: int, verb: str, present: int) -> str:
    return f"{done} {verb}, {present} there already"
