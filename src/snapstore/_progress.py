"""Progress of long work, told to whoever listens: nobody, unless someone said so.

The long jobs (a check's scan of each log, the bulk rebuild of a lost index
file) sit several calls below the command that starts them. Rather than pass
a callback down every layer, the caller installs a *listener* for the work it
runs (``with reporting(listener): store.verify()``), and each long loop asks
for the listener once per task, as it starts (``TaskProgress``). With none
installed, a task costs one context-variable lookup and its loop calls
nothing; with one, the listener is called at most about a thousand times a
task, however long the task.

What a listener is told, for each task: a first call with ``done == 0``
(the task has begun and its ``total`` is known), then calls with ``done``
rising, and, when the task ends normally, a last call with ``done == total``.
A label may come back as a new task (repair checks a log again after
mending it), starting from 0 again. A task that ends in an exception gets no
last call.

The listener runs inside the work, in the thread that installed it (a
context variable: another thread sees no listener), sometimes while the
work holds a store's writer lock: it should be quick. An exception it
raises propagates out of the work as an interrupt there would, and leaves
what an interrupt leaves (every write snapstore makes is crash-safe): which
makes raising the way to cancel.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType

# A task tells its listener about every thousandth of its total, not more
# often: a bar cannot show finer steps, and a listener that redraws must not
# slow the work down.
_STEPS = 1000


class Listener(Protocol):
    """Told that ``done`` of ``total`` units (bytes, or items) of ``task`` are done."""

    def __call__(self, task: str, done: int, total: int) -> None: ...


_listener: ContextVar[Listener | None] = ContextVar("snapstore_progress_listener", default=None)


@contextlib.contextmanager
def reporting(listener: Listener) -> Iterator[None]:
    """Tell ``listener`` about the long work done inside the ``with`` block."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def file_task(verb: str, path: Path) -> str:
    """A task's label: what is done to which file, named with its directory.

    ``checking store/snapshots.jsonl``, ``checking history/loss.jsonl``: a
    store's logs and its histories stay apart, and the label stays short.
    """
    return f"{verb} {path.parent.name}/{path.name}"


class TaskProgress:
    """One task's progress, used as ``with TaskProgress(task, total) as progress:``.

    The loop calls ``advance_to(done)`` as it goes (once per chunk it reads,
    not per line, where lines are many: the call itself is cheap, not free).
    Entering tells the listener the task began; leaving without an exception
    tells it the task is done, whether or not the loop reached ``total`` (a
    rebuild that stops at damage, leaving the rest to the log's own reader).
    """

    __slots__ = ("_listener", "_next", "_step", "_told", "task", "total")

    def __init__(self, task: str, total: int) -> None:
        self.task = task
        self.total = total
        self._listener = _listener.get()
        self._step = max(total // _STEPS, 1)
        self._told = -1  # nothing told yet
        # The next ``done`` worth telling: never, when nobody listens, so
        # that advance_to is a comparison and nothing else.
        self._next = 0 if self._listener is not None else total + 1

    def __enter__(self) -> Self:
        self.advance_to(0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None and self._listener is not None and self._told < self.total:
            self._tell(self.total)

    def advance_to(self, done: int) -> None:
        """``done`` units of the task are done (never fewer than told before)."""
        if done >= self._next:
            self._tell(min(done, self.total))

    def _tell(self, done: int) -> None:
        listener = self._listener
        assert listener is not None
        self._told = done
        # A step beyond the total is never reached: __exit__ makes the last call.
        self._next = done + self._step
        listener(self.task, done, self.total)
