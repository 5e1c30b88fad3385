"""``verify``, ``repair`` and ``import``: check a path, mend it, bring foreign records in."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from snapstore.cli.options import EXIT_DAMAGE, EXIT_OK, LOCATION, Location, lock_timeout_option
from snapstore.cli.progress import on_terminal, progress_bar

if TYPE_CHECKING:
    from snapstore._report import CheckReport

_PATH = click.argument("path", type=LOCATION)


def _check(path: Location, lock_timeout: float, *, repairing: bool, dry_run: bool) -> int:
    with progress_bar(on_terminal()):
        report = _checked(path, lock_timeout, repairing=repairing, dry_run=dry_run)
        # What is left after the repair.
        left = (
            _checked(path, lock_timeout, repairing=False, dry_run=False)
            if repairing and not dry_run
            else None
        )
    for action in report.actions:
        click.echo(action)
    if left is not None:
        report = left
    for finding in report.findings:
        click.echo(str(finding))
    verdict = "OK" if report.ok else f"{len(report.findings)} problem(s)"
    click.echo(f"{path}: {report.files} file(s), {report.records} valid records: {verdict}")
    if repairing and dry_run:
        # Damage with nothing to do about it here (a marker this version
        # cannot read) fails a dry run as much as work to do does.
        return EXIT_DAMAGE if report.actions or report.findings else EXIT_OK
    return EXIT_OK if report.ok else EXIT_DAMAGE


def _checked(path: Location, lock_timeout: float, *, repairing: bool, dry_run: bool) -> CheckReport:
    """What checking (or repairing) the store or history ``path`` found."""
    if isinstance(path, Path):
        from snapstore.backends.local.repair import check_path  # noqa: PLC0415 - only these commands need it

        return check_path(path, repair=repairing, dry_run=dry_run, lock_timeout=lock_timeout)
    from snapstore.store import SnapshotStore  # noqa: PLC0415 - only store commands need it

    # A store named by URL checks itself; a repair may write, a check never.
    with SnapshotStore(path, read_only=not repairing, lock_timeout=lock_timeout) as store:
        return store.repair(dry_run=dry_run) if repairing else store.verify()


@click.command(
    short_help="Check a store or history file; exit 1 if anything is damaged.",
)
@_PATH
@lock_timeout_option
def verify(*, path: Location, lock_timeout: float) -> int:
    """Check every checksum, seq order, key and derived index of PATH.

    PATH is a store directory, a history .jsonl file, or a store's URL
    (postgresql://...: every row is read and checked). Reports each problem
    with path and offset; changes nothing. Exit status 0 if clean, 1 if any
    problem is found, 2 if the check cannot run.
    """
    return _check(path, lock_timeout, repairing=False, dry_run=False)


@click.command(short_help="Move damaged bytes to quarantine and rebuild derived files.")
@_PATH
@click.option(
    "--dry-run",
    is_flag=True,
    help=f"Only say what would be done (exit status {EXIT_DAMAGE} if anything would be, "
    "or if anything is damaged that repair cannot fix).",
)
@lock_timeout_option
def repair(*, path: Location, dry_run: bool, lock_timeout: float) -> int:
    """Repair the store directory or history .jsonl file PATH.

    Moves damaged bytes to quarantine (with a note of what and why), keeps
    every valid record, removes stale temp files and rebuilds derived
    indices. Exit status 0 if the result verifies clean, 1 if damage is
    left, 2 if the repair cannot run.
    """
    return _check(path, lock_timeout, repairing=True, dry_run=dry_run)


@click.command("import", short_help="Record the lines of a JSON Lines file in a history.")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("history", type=click.Path(path_type=Path))
@lock_timeout_option
def import_jsonl(*, source: Path, history: Path, lock_timeout: float) -> int:
    """Append every JSON object line of SOURCE to the history file HISTORY.

    SOURCE is a file snapstore did not write (pandas, jq, a logger): one
    record per line, in file order. SOURCE is only read; every line is
    checked before anything is written.
    """
    from snapstore.history import IterationHistory  # noqa: PLC0415 - only this command needs it

    with IterationHistory.import_jsonl(source, history, lock_timeout=lock_timeout) as imported:
        click.echo(f"{history}: imported {source}; {len(imported)} record(s) in all")
    return EXIT_OK


check_commands = (verify, repair, import_jsonl)
