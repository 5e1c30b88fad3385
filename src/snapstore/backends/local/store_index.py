"""A store's index: the index file for the part of the log it covers, memory for the rest.

Lookups ask the *tail* first — an in-memory ``SnapshotIndex`` of the
snapshots after the seq the file covered when this handle last looked (its
*base*) — then the file, bounded by that base, so that rows other processes
add later never mix with what the tail holds about the same records. The
tail goes to the file in one transaction when asked (``flush``).

A file that fails a query (``sqlite3.Error``: I/O, damage SQLite reports)
or that points at the wrong line is dropped by the caller (``drop_file``):
the part of the log it covered is read into memory, and the lookup is asked
again there.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from snapstore import _fork
from snapstore._log.checked import LogPosition
from snapstore._log.record import utc_from_iso
from snapstore.backends.local.disk_index import DiskIndex, Row, read_rows
from snapstore.backends.local.snapshot_index import IndexRow, SnapshotIndex

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from snapstore._log.record import LogRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_T = TypeVar("_T")
Found = tuple[int, int, int]  # a snapshot's seq, and its line's offset and length

# Index files of handles inherited through fork(): never closed in the child
# (see close()), so kept referenced here rather than closed by the collector.
_inherited: list[DiskIndex] = []


class StoreIndex:
    """Where each snapshot of one store's log is, for one handle. Thread-safe."""

    def __init__(self, disk: DiskIndex | None, log: Path) -> None:
        self._lock = threading.Lock()
        self._log = log
        self._disk = disk
        self._opened_at = _fork.forks()
        covered = disk.covered if disk is not None else None
        # The part of the log the file covers, and how many snapshots it holds.
        self._base = covered.position if covered is not None else LogPosition()
        self._base_count = covered.size if covered is not None else 0
        self._tail = SnapshotIndex(self._base.seq)

    @property
    def start(self) -> LogPosition:
        """Where the log is to be read from: the end of what the file covers."""
        return self._base

    @property
    def held(self) -> int:
        """How many snapshots the tail holds, not yet in the file."""
        return self._tail.count

    @property
    def uses_file(self) -> bool:
        return self._disk is not None

    def describe(self) -> str:
        """Which snapshots the file answers for and which memory does: for people."""
        with self._lock:
            in_file, in_memory = self._base_count, self._tail.count
            path = self._disk.path.name if self._disk is not None else None
        if path is None:
            return f"no index file in use: {in_memory} snapshot(s) indexed in memory"
        return f"{path} answers for {in_file} snapshot(s), memory for the {in_memory} after"

    # -- fed by the log ---------------------------------------------------------

    def add(self, record: LogRecord) -> None:
        """Index the snapshot committed as ``record`` (KeyError/TypeError: not a snapshot)."""
        with self._lock:
            tail = self._tail
            if record.seq <= tail.base or tail.has(record.seq):
                return  # offered again after an interrupted commit: already held
            index_snapshot(tail, record)

    def reset(self) -> None:
        """The log was replaced: it is read again from its start, into memory.

        The file describes the old log until the next handle to open empties
        it: this handle stops using it.
        """
        with self._lock:
            self._drop_file()
            self._tail = SnapshotIndex()
            self._base, self._base_count = LogPosition(), 0

    # -- lookups ----------------------------------------------------------------

    def latest(self, run_id: str, stage: str) -> Found | None:
        def ask() -> Found | None:
            tail = self._tail
            seq = tail.latest_seq(run_id, stage)
            if seq is not None or self._disk is None:
                return _in(tail, seq)
            return self._disk.latest(run_id, stage, tail.base)

        return self._answer(ask)

    def place(self, seq: int) -> Found | None:
        def ask() -> Found | None:
            if seq > self._tail.base or self._disk is None:
                return _in(self._tail, seq)
            return self._disk.place(seq)

        return self._answer(ask)

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int | None
    ) -> Found | None:
        def ask() -> Found | None:
            tail = self._tail
            seq = tail.previous_comparable(stage, comparison_key, run_id, below)
            if seq is not None or self._disk is None:
                return _in(tail, seq)
            # None in the tail: the answer, if any, is in the part the file covers.
            bound = tail.base + 1 if below is None else min(below, tail.base + 1)
            return self._disk.previous_comparable(stage, comparison_key, run_id, bound)

        return self._answer(ask)

    def seqs(self, run_id: str | None, stage: str | None) -> list[int]:
        def ask() -> list[int]:
            tail = self._tail
            older = [] if self._disk is None else self._disk.seqs(run_id, stage, tail.base)
            return older + tail.seqs(run_id, stage)

        return self._answer(ask)

    def count(self) -> int:
        with self._lock:
            return self._base_count + self._tail.count

    def _answer(self, ask: Callable[[], _T]) -> _T:
        with self._lock:
            return ask()

    # -- the file ---------------------------------------------------------------

    def flush(self) -> None:
        """Add the tail to the file, in one transaction.

        Every snapshot in the tail is in the log, durably in "fsync" mode:
        the log took it in only after its sync (its own appends) or after
        making it durable (other handles'). A file that cannot take them (busy
        past the timeout, full, emptied by another process) is left behind:
        the tail stays, and is offered again at the next flush.
        """
        with self._lock:
            disk, tail = self._disk, self._tail
            if disk is None or not tail.count:
                return
            to = covered_position(tail)
            rows = [_file_row(row) for row in tail.rows()]
            if disk.add(rows, self._base, to, self._log):
                self._tail = SnapshotIndex(to.seq)
                self._base, self._base_count = to, self._base_count + tail.count

    def drop_file(self, scan: Callable[[int], Iterable[LogRecord]]) -> None:
        """Answer from memory alone from now on: the file failed a query or a check.

        ``scan(end)``: the log's records up to byte ``end``, read into memory
        ahead of the tail.
        """
        with self._lock:
            if self._disk is None:
                return
            self._drop_file()
            full = SnapshotIndex()
            for record in scan(self._base.end):
                index_snapshot(full, record)
            full.extend(self._tail.rows())
            self._tail, self._base, self._base_count = full, LogPosition(), 0

    def _drop_file(self) -> None:
        # Closed before it is forgotten: a close cut short by an interrupt
        # leaves the connection to the next close() (closing is idempotent).
        if self._disk is not None:
            with contextlib.suppress(sqlite3.Error):
                self._disk.close()
            self._disk = None

    def image(self) -> SnapshotIndex:
        """The whole index in memory: the rows the file covers, then the tail."""
        with self._lock:
            base, tail = self._base, self._tail.copy()
            path = self._disk.path if self._disk is not None else None
        index = SnapshotIndex()
        # Read through a connection of its own, outside the lock: the rows up
        # to ``base`` never change, and lookups go on meanwhile.
        for row in [] if path is None else read_rows(path, base.seq):
            created_us = (utc_from_iso(row.created_at) - _EPOCH) // _MICROSECOND
            index.add(*row[:4], created_us, row.offset, row.length)
        index.extend(tail.rows())
        return index

    def close(self) -> None:
        if self._opened_at != _fork.forks() and self._disk is not None:
            # A copy inherited through fork(): SQLite's connection must not be
            # used, closed included, in a process other than its opener's.
            _inherited.append(self._disk)
            self._disk = None
        self._drop_file()


def index_snapshot(index: SnapshotIndex, record: LogRecord) -> None:
    """Add the snapshot committed as ``record`` to ``index``."""
    data = record.data
    index.add(
        record.seq,
        data["run_id"],
        data["stage"],
        data["comparison_key"],
        (utc_from_iso(record.ts) - _EPOCH) // _MICROSECOND,
        record.offset,
        record.length,
    )


def covered_position(index: SnapshotIndex) -> LogPosition:
    """The log position just after the last snapshot ``index`` holds (empty: the start).

    Trailing slots without a snapshot are an add cut short by an interrupt;
    the record they were for is offered again by the next catch-up.
    """
    seq = index.last_seq()
    while seq > index.base and not index.has(seq):
        seq -= 1
    place = index.place(seq)
    if place is None:
        return LogPosition()
    offset, length = place
    return LogPosition(offset + length, seq, length)


def _in(index: SnapshotIndex, seq: int | None) -> Found | None:
    """Where snapshot ``seq`` is, as ``index`` holds it."""
    place = index.place(seq)
    return None if seq is None or place is None else (seq, *place)


def _file_row(row: IndexRow) -> Row:
    created_at = (_EPOCH + row.created_us * _MICROSECOND).isoformat()
    return Row(
        row.seq, row.run_id, row.stage, row.comparison_key, created_at, row.offset, row.length
    )
