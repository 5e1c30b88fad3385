"""The ``snapstore`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snapstore._errors import SnapstoreError

DEFAULT_DEMO_DIR = "snapstore-demo"


def _demo(args: argparse.Namespace) -> int:
    from snapstore._demo import run_demo  # noqa: PLC0415 - only this command needs it

    root = Path(args.dir)
    return 0 if run_demo(root, args.runs, print) else 1


def _check(args: argparse.Namespace) -> int:
    from snapstore._repair import check_path  # noqa: PLC0415 - only these commands need it

    path = Path(args.path)
    repairing = args.command == "repair"
    report = check_path(path, repair=repairing, dry_run=getattr(args, "dry_run", False))
    for action in report.actions:
        print(action)
    if repairing and not args.dry_run:
        report = check_path(path)  # what is left after the repair
    for finding in report.findings:
        print(finding)
    verdict = "OK" if report.ok else f"{len(report.findings)} problem(s)"
    print(f"{path}: {report.files} file(s), {report.records} valid records: {verdict}")
    if args.command == "repair" and args.dry_run:
        # Damage with nothing to do about it here (a marker this version
        # cannot read) fails a dry run as much as work to do does.
        return 1 if report.actions or report.findings else 0
    return 0 if report.ok else 1


def _positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapstore", description="Crash-safe local snapshot and history storage."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="record a simulated ML pipeline in a store, then check every invariant",
        description="Record a simulated ML pipeline (several runs, three stages, "
        "parallel workers) in a store, compare runs, and check the store.",
    )
    demo.add_argument("dir", nargs="?", default=DEFAULT_DEMO_DIR, help="store directory")
    demo.add_argument(
        "--runs", type=_positive, default=4, help="pipeline runs to record (default 4)"
    )
    demo.set_defaults(handler=_demo)
    verify = commands.add_parser(
        "verify",
        help="check a store or history file; exit 1 if anything is damaged",
        description="Check every checksum, seq order, key and derived index of a store "
        "directory or a history .jsonl file. Reports each problem with path and offset; "
        "changes nothing. Exit status 1 if any problem is found.",
    )
    verify.add_argument("path", help="store directory or history .jsonl file")
    verify.set_defaults(handler=_check)
    repair = commands.add_parser(
        "repair",
        help="move damaged bytes to quarantine and rebuild derived files",
        description="Move damaged bytes to quarantine (with a note of what and why), keep "
        "every valid record, remove stale temp files and rebuild derived indices. "
        "Exit status 0 if the result verifies clean.",
    )
    repair.add_argument("path", help="store directory or history .jsonl file")
    repair.add_argument(
        "--dry-run",
        action="store_true",
        help="only say what would be done (exit status 1 if anything would be, or if "
        "anything is damaged that repair cannot fix)",
    )
    repair.set_defaults(handler=_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except SnapstoreError as exc:
        # Say why: a bare exit status would leave the user guessing.
        print(f"snapstore: error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
