"""The ``snapstore`` command."""

from __future__ import annotations

import argparse
import math
import sys
from importlib import metadata
from pathlib import Path

from snapstore._errors import LockTimeout, SnapstoreError
from snapstore._options import DEFAULT_LOCK_TIMEOUT

DEFAULT_DEMO_DIR = "snapstore-demo"

# Exit status: the same three for every command.
EXIT_OK = 0
EXIT_DAMAGE = 1
EXIT_ERROR = 2

EXIT_STATUS = f"""\
exit status:
  {EXIT_OK}  clean: verify found nothing damaged; repair left the path verifying
     clean; repair --dry-run has nothing to do; every check of the demo passed
  {EXIT_DAMAGE}  damage found: verify found a problem; repair left damage it cannot
     fix; repair --dry-run has something to do (or damage it cannot fix); a
     check of the demo failed
  {EXIT_ERROR}  cannot run: bad arguments, no such file or directory, permission
     denied, a lock timeout (wait longer with --lock-timeout SECONDS), a path
     that is not a store or history, or any other error (one line on stderr)
"""


def _demo(args: argparse.Namespace) -> int:
    from snapstore.cli.demo import run_demo  # noqa: PLC0415 - only this command needs it

    root = Path(args.dir)
    passed = run_demo(root, args.runs, print, lock_timeout=args.lock_timeout)
    return EXIT_OK if passed else EXIT_DAMAGE


def _check(args: argparse.Namespace) -> int:
    from snapstore.backends.local.repair import check_path  # noqa: PLC0415 - only these commands need it

    path = Path(args.path)
    repairing = args.command == "repair"
    dry_run: bool = getattr(args, "dry_run", False)
    timeout: float = args.lock_timeout
    report = check_path(path, repair=repairing, dry_run=dry_run, lock_timeout=timeout)
    for action in report.actions:
        print(action)
    if repairing and not dry_run:
        report = check_path(path, lock_timeout=timeout)  # what is left after the repair
    for finding in report.findings:
        print(finding)
    verdict = "OK" if report.ok else f"{len(report.findings)} problem(s)"
    print(f"{path}: {report.files} file(s), {report.records} valid records: {verdict}")
    if repairing and dry_run:
        # Damage with nothing to do about it here (a marker this version
        # cannot read) fails a dry run as much as work to do does.
        return EXIT_DAMAGE if report.actions or report.findings else EXIT_OK
    return EXIT_OK if report.ok else EXIT_DAMAGE


def _import(args: argparse.Namespace) -> int:
    from snapstore.history import IterationHistory  # noqa: PLC0415 - only this command needs it

    with IterationHistory.import_jsonl(
        args.source, args.history, lock_timeout=args.lock_timeout
    ) as history:
        print(f"{args.history}: imported {args.source}; {len(history)} record(s) in all")
    return EXIT_OK


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return seconds


def _add_lock_timeout(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for a writer lock another process holds before giving up "
        f"with exit status {EXIT_ERROR} (default {DEFAULT_LOCK_TIMEOUT:g}; 0: do not wait)",
    )


def _version() -> str:
    try:
        return metadata.version("snapstore")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapstore",
        description="Crash-safe local snapshot and history storage.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="record a simulated ML pipeline in a store, then check every invariant",
        description="Record a simulated ML pipeline (several runs, three stages, "
        "parallel workers) in a store, compare runs, and check the store. DIR may be "
        "new, empty, or a store the demo wrote: each snapshot the demo saves carries the "
        "data field 'snapstore_demo', and each history it writes is named run-NNN.STAGE. "
        "A store holding any other snapshot or history is refused, and nothing is "
        f"written to it (exit status {EXIT_ERROR}). Exit status {EXIT_DAMAGE} if a check "
        "fails.",
    )
    demo.add_argument("dir", nargs="?", default=DEFAULT_DEMO_DIR, help="store directory")
    demo.add_argument(
        "--runs", type=_positive, default=4, help="pipeline runs to record (default 4)"
    )
    _add_lock_timeout(demo)
    demo.set_defaults(handler=_demo)
    verify = commands.add_parser(
        "verify",
        help="check a store or history file; exit 1 if anything is damaged",
        description="Check every checksum, seq order, key and derived index of a store "
        "directory or a history .jsonl file. Reports each problem with path and offset; "
        f"changes nothing. Exit status {EXIT_OK} if clean, {EXIT_DAMAGE} if any problem is "
        f"found, {EXIT_ERROR} if the check cannot run.",
    )
    verify.add_argument("path", help="store directory or history .jsonl file")
    _add_lock_timeout(verify)
    verify.set_defaults(handler=_check)
    repair = commands.add_parser(
        "repair",
        help="move damaged bytes to quarantine and rebuild derived files",
        description="Move damaged bytes to quarantine (with a note of what and why), keep "
        "every valid record, remove stale temp files and rebuild derived indices. "
        f"Exit status {EXIT_OK} if the result verifies clean, {EXIT_DAMAGE} if damage is "
        f"left, {EXIT_ERROR} if the repair cannot run.",
    )
    repair.add_argument("path", help="store directory or history .jsonl file")
    repair.add_argument(
        "--dry-run",
        action="store_true",
        help=f"only say what would be done (exit status {EXIT_DAMAGE} if anything would be, "
        "or if anything is damaged that repair cannot fix)",
    )
    _add_lock_timeout(repair)
    repair.set_defaults(handler=_check)
    importing = commands.add_parser(
        "import",
        help="record the lines of a JSON Lines file in a history",
        description="Append every JSON object line of SOURCE (a file snapstore did not "
        "write: pandas, jq, a logger) to the history HISTORY, one record per line, in "
        "file order. SOURCE is only read; every line is checked before anything is "
        "written.",
    )
    importing.add_argument("source", help="a JSON Lines file")
    importing.add_argument("history", help="the history .jsonl file to append to")
    _add_lock_timeout(importing)
    importing.set_defaults(handler=_import)
    return parser


def _describe(exc: SnapstoreError | OSError) -> str:
    """One line saying what went wrong, in terms of the command."""
    if isinstance(exc, LockTimeout):
        # The library's message names its lock_timeout parameter; here it is an option.
        return (
            f"could not acquire the writer lock {exc.path} within {exc.timeout:g} s; "
            "another process holds it (wait longer with --lock-timeout SECONDS)"
        )
    if isinstance(exc, OSError) and not isinstance(exc, SnapstoreError) and exc.strerror:
        # "[Errno 36] File name too long: '/x'" reads better as "/x: File name too long".
        where = f"{exc.filename}: " if exc.filename is not None else ""
        text = f"{where}{exc.strerror}"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror  # a StorageError's reason names its path already
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.splitlines())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits with status 2 here
    try:
        status: int = args.handler(args)
    except (SnapstoreError, OSError) as exc:
        # Say why, in one line: a bare exit status would leave the user guessing,
        # and a traceback would bury the reason.
        print(f"snapstore: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return status


if __name__ == "__main__":
    sys.exit(main())
