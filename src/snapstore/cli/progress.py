"""Progress bars for the command's long work, on a terminal.

The library tells a listener about its long tasks (see ``snapstore._progress``);
here the listener is a rich progress bar on stderr, one row per task, so that
stdout keeps only the command's results. rich is imported only when a bar is
shown: a command whose stderr is a file or a pipe never loads it.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

from snapstore._progress import reporting

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console
    from rich.progress import TaskID


def on_terminal() -> bool:
    """Whether a bar would be seen: stderr is a terminal, not a file, a pipe or a log."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(enabled: bool, *, console: Console | None = None) -> Iterator[None]:
    """Show the long tasks run inside the ``with`` block as bars (when ``enabled``).

    Each task label has a row: how far it is, the bytes done of its total,
    the speed and the time left. A row whose label comes back (a log checked
    again after a repair) starts over. The bars are cleared when the block
    ends: print the command's results after it, not inside, where they would
    tear the bars. ``console``: where to draw (stderr unless given).
    """
    if not enabled:
        yield
        return
    from rich.console import Console  # noqa: PLC0415 - see the module's docstring
    from rich.progress import (  # noqa: PLC0415 - ditto
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True) if console is None else console,
        transient=True,
        # A stdout proxy would send what is printed inside the block to the
        # bars' console, stderr. A warning on stderr is drawn above the bars.
        redirect_stdout=False,
    )
    rows: dict[str, TaskID] = {}

    def show(task: str, done: int, total: int) -> None:
        row = rows.get(task)
        if row is None:
            rows[task] = bars.add_task(task, total=total, completed=done)
        elif done == 0:
            bars.reset(row, total=total, completed=0)
        else:
            bars.update(row, total=total, completed=done)

    with bars, reporting(show):
        yield
