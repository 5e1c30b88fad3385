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
    demo.add_argument("--runs", type=int, default=4, help="pipeline runs to record (default 4)")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except SnapstoreError as exc:
        # The message names the path and what to do; exiting without it would
        # leave the user with a bare status code.
        print(f"snapstore: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
