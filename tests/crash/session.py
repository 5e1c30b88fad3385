"""Recording the operations of a crash scenario, and what each one committed."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Generic, TypeVar

from snapstore._log import seam
from snapstore.testing.crash import CrashRecorder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from snapstore.testing.crash import Recording

R = TypeVar("R")


class Session(Generic[R]):
    """Records operations under ``root`` and the records (with their seq) each returned.

    ``records``: every record a reader may see, in seq order. ``required[k]``:
    how many of them must be visible once ``k`` operations are acknowledged.
    """

    def __init__(
        self,
        root: Path,
        seq_of: Callable[[R], int],
        *,
        resume: Recording | None = None,
        records: Iterable[R] = (),
        required: Iterable[int] | None = None,
    ) -> None:
        self.root = root
        self.recorder = CrashRecorder(root, resume=resume)
        self.records = list(records)
        self.required = [len(self.records)] if required is None else list(required)
        self._seq_of = seq_of

    @contextlib.contextmanager
    def operation(self, label: str) -> Iterator[list[R]]:
        """Record one operation; the block puts the records it returned in the list."""
        done: list[R] = []
        with seam.installed(self.recorder), self.recorder.operation(label):
            yield done
        last = self._seq_of(self.records[-1]) if self.records else 0
        # A retried key (or a save of unchanged content) returns the record
        # already stored: nothing new.
        self.records.extend(r for r in done if self._seq_of(r) > last)
        self.required.append(len(self.records))
        self.acknowledged()

    def acknowledged(self) -> None:
        """Called once an operation returned (for what subclasses track besides records)."""
