"""What several commands share: exit statuses, options, and how a store or history is opened."""

from __future__ import annotations

import contextlib
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from snapstore._errors import NotFoundError
from snapstore._options import DEFAULT_LOCK_TIMEOUT
from snapstore.backends import is_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from snapstore.history import IterationHistory
    from snapstore.store import SnapshotStore

# Exit status: the same three for every command.
EXIT_OK = 0
EXIT_DAMAGE = 1
EXIT_ERROR = 2

# click rewraps an epilog's paragraphs; "\b" keeps the one after it as written.
# Its lines fit an 80-column terminal with click's indent of 2 (docs/cli.md is rendered at 80).
EXIT_STATUS = f"""\b
exit status:
  {EXIT_OK}  clean: verify found nothing damaged; repair left the path verifying
     clean; repair --dry-run has nothing to do; every check of the demo
     passed; any other command did what it was asked
  {EXIT_DAMAGE}  damage found: verify found a problem; repair left damage it cannot
     fix; repair --dry-run has something to do (or damage it cannot fix); a
     check of the demo failed; sync kept a conflicting baseline or record
  {EXIT_ERROR}  cannot run: bad arguments, no such file or directory, permission
     denied, a lock timeout (wait longer with --lock-timeout SECONDS), a path
     that is not a store or history, or any other error (one line on stderr)
"""

FORMATS = ("table", "csv", "json", "md")

_F = TypeVar("_F", bound="Callable[..., Any]")


class Seconds(click.ParamType):  # type: ignore[type-arg]
    """A finite number of seconds, at least 0."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            seconds = float(value)
        except ValueError:
            self.fail(f"not a number of seconds: {value!r}", param, ctx)
        if not math.isfinite(seconds) or seconds < 0:
            self.fail(f"must be a finite number >= 0, not {value}", param, ctx)
        return seconds


def lock_timeout_option(command: _F) -> _F:
    return click.option(
        "--lock-timeout",
        type=Seconds(),
        default=DEFAULT_LOCK_TIMEOUT,
        show_default=True,
        metavar="SECONDS",
        help="How long to wait for a writer lock another process holds before giving up "
        f"with exit status {EXIT_ERROR} (0: do not wait).",
    )(command)


def format_option(command: _F) -> _F:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table: for people, fitted to the terminal; csv, json (stable, for scripts), md.",
    )(command)


def where_option(examples: str) -> Callable[[_F], _F]:
    """``--where``: conditions every row must meet (``examples``: of the rows at hand)."""
    return click.option(
        "--where",
        multiple=True,
        metavar="CONDITION",
        help=f"Only rows meeting CONDITION, e.g. {examples} (repeat: all must hold).",
    )


def selection_options(command: _F) -> _F:
    """Which snapshots: every command that reads a store's table takes these (ls, export, plot)."""
    for option in reversed(
        [
            click.option("--stage", help="Only this stage's snapshots."),
            click.option("--run", metavar="GLOB", help="Only runs matching GLOB (run-00*)."),
            click.option("--group", metavar="KEY", help="Only this comparison key's snapshots."),
            where_option("'metrics.auc > 0.8' or 'config.model == gbm'"),
        ]
    ):
        command = option(command)
    return command


def all_versions_option(command: _F) -> _F:
    return click.option("--all-versions", is_flag=True, help="Every version, not only the latest.")(
        command
    )


# A store or history: a path, or a URL (postgresql://...). Kept a string when
# it is a URL: a Path would fold its "//".
Location = Path | str


class LocationType(click.ParamType):  # type: ignore[type-arg]
    """A path, or a URL such as postgresql://host/db?schema=NAME."""

    name = "path|url"

    def convert(
        self,
        value: Any,
        param: click.Parameter | None,  # noqa: ARG002 - click's signature
        ctx: click.Context | None,  # noqa: ARG002
    ) -> Location:
        if isinstance(value, Path) or is_url(value):
            return value
        return Path(value)


LOCATION = LocationType()


def store_argument(command: _F) -> _F:
    return click.argument("store", type=LOCATION)(command)


@contextlib.contextmanager
def reading_store(path: Location) -> Iterator[SnapshotStore]:
    """The store at ``path``, opened read-only: another process may be writing it."""
    from snapstore.store import SnapshotStore  # noqa: PLC0415 - only store commands need it

    with SnapshotStore(path, read_only=True) as store:
        yield store


@contextlib.contextmanager
def reading_history(path: Location, name: str | None) -> Iterator[IterationHistory]:
    """The history ``name`` of the store at ``path``, or the history file ``path`` itself."""
    from snapstore.history import IterationHistory  # noqa: PLC0415 - only history commands need it

    if name is None:
        with IterationHistory(path, read_only=True) as history:
            yield history
        return
    with reading_store(path) as store:
        if name not in store.history_names():
            # The library's answer is about a file a read-only open does not
            # create; here the user named a history, so say which there are.
            raise NotFoundError(
                f"{path} has no history {name!r} "
                f"(snapstore history {shlex.quote(str(path))} lists its histories)"
            )
        yield store.history(name)


def is_history_file(path: Location) -> bool:
    """Whether ``path`` names a history file rather than a store (a directory or a URL)."""
    return isinstance(path, Path) and path.suffix == ".jsonl" and not path.is_dir()
