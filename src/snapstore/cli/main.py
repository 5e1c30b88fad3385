"""The ``snapstore`` command: its group, its exit status, and how an error is told.

Each command lives in the module of its family (``check``, ``runs``,
``histories``, ``plot``, ``demo``) and is thin: it parses, calls the
library's public API, and prints through ``output``. The options several
commands share are defined once, in ``options``.
"""

from __future__ import annotations

import sys
from importlib import metadata

import click

from snapstore._errors import LockTimeout, SnapstoreError
from snapstore.cli.check import check_commands
from snapstore.cli.demo import demo
from snapstore.cli.histories import history
from snapstore.cli.options import EXIT_ERROR, EXIT_STATUS
from snapstore.cli.plot import plot
from snapstore.cli.runs import run_commands
from snapstore.cli.sync import sync


def _version() -> str:
    try:
        return metadata.version("snapstore")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


@click.group(
    epilog=EXIT_STATUS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=False,
)
@click.version_option(
    _version(), "--version", prog_name="snapstore", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Crash-safe local snapshot and history storage: record runs, look at them, check them.

    Commands that read (ls, show, diff, baseline without --set, export,
    history, plot, info, verify) open a store read-only: they work on a store
    another process is writing, and change nothing.
    """


for command in (*run_commands, history, plot, sync, *check_commands, demo):
    cli.add_command(command)


def _describe(exc: SnapstoreError | OSError | ModuleNotFoundError) -> str:
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
    """Run the command ``argv`` (the process's arguments if None); return its exit status.

    A usage error exits (SystemExit, status 2) after printing the usage, as
    the shell's commands do; any other error is told in one line on stderr.
    """
    try:
        status = cli.main(args=argv, prog_name="snapstore", standalone_mode=False)
    except click.UsageError as usage:
        usage.show()
        raise SystemExit(usage.exit_code) from None
    except click.ClickException as failed:
        click.echo(f"snapstore: error: {failed.format_message()}", err=True)
        return EXIT_ERROR
    except (SnapstoreError, OSError, ModuleNotFoundError) as exc:
        # Say why, in one line: a bare exit status would leave the user guessing,
        # and a traceback would bury the reason.
        click.echo(f"snapstore: error: {_describe(exc)}", err=True)
        return EXIT_ERROR
    except click.Abort:
        return 130  # interrupted (Ctrl-C), as a shell reports it
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
