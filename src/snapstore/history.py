"""IterationHistory: a durable, ordered, multi-writer record of a pipeline's iterations."""

from __future__ import annotations

import bisect
import os
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from snapstore import _io
from snapstore._errors import InvalidInputError, NotFoundError, storage_errors
from snapstore._fstype import check_filesystem
from snapstore._lock import WriterLock, lock_file_of, refuse_second_name
from snapstore._log import (
    CheckedLog,
    Durability,
    Problem,
    check_count,
    check_seq,
    check_write_options,
)
from snapstore._names import check_fs_path, fit_name
from snapstore._record import (
    DEFAULT_MAX_RECORD_BYTES,
    Entry,
    LogRecord,
    encode_data,
    utc_from_iso,
    validate_key,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from datetime import datetime
    from types import TracebackType

    from snapstore._repair import CheckReport

DEFAULT_LOCK_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One committed iteration: its sequence number, commit time, payload and key."""

    seq: int
    ts: datetime
    data: dict[str, Any]
    key: str | None = None


def _history_record(record: LogRecord) -> HistoryRecord:
    return HistoryRecord(record.seq, utc_from_iso(record.ts), record.data, record.key)


def default_quarantine_dir(log: Path) -> Path:
    """Where a standalone history's damaged bytes go: beside the file its path leads to.

    A name too long for the suffix is shortened (see fit_name).
    """
    real = Path(os.path.realpath(log))
    return real.with_name(fit_name(real.name, ".quarantine"))


class IterationHistory:
    """An append-only history of records in one ``.jsonl`` file.

    Every record gets ``seq`` 1, 2, 3, ... assigned under the writer lock, so seqs
    are unique and strictly increasing across threads and processes. With
    ``durability="fsync"`` (the default) ``append`` returns only once the record
    is on stable storage; with ``durability="write"`` it returns once the record
    is in the operating system's cache, which survives a crash of the process
    but not of the machine.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "fsync",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        tolerant: bool = False,
        strict: bool = False,
        quarantine_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        check_write_options(
            durability, lock_timeout, max_record_bytes, strict=strict, tolerant=tolerant
        )
        self.path = check_fs_path("history path", path)
        if self.path.suffix != ".jsonl":
            raise InvalidInputError(f"a history file must end in .jsonl: {self.path}")
        self.max_record_bytes = max_record_bytes
        refuse_second_name(self.path)
        # The file the path leads to, resolved once: the lock and quarantine
        # are derived from it (one lock per log, whichever path reaches it),
        # and the handle keeps to it even if a symlink on the way is later
        # pointed elsewhere (its lock would no longer guard what it reached).
        real = self._real = Path(os.path.realpath(self.path))
        self._quarantine_dir = (
            check_fs_path("quarantine_dir", quarantine_dir)
            if quarantine_dir is not None
            else default_quarantine_dir(self.path)
        )
        fs = _io.current()
        self._index_lock = threading.Lock()
        self._seqs = array("q")
        self._offsets = array("q")
        self._lengths = array("q")
        self._keys: dict[str, int] = {}
        # Report a failing disk as a StorageError here too, as every later call does.
        with storage_errors(self.path):
            check_filesystem(self.path.parent, strict=strict)
            fs.make_dirs(self.path.parent)
            fs.remove_stale_temps(self._quarantine_dir)
            self._lock = WriterLock(lock_file_of(real), fs, lock_timeout)
        try:
            self._log = CheckedLog(
                real,
                fs=fs,
                lock=self._lock,
                quarantine_dir=self._quarantine_dir,
                durability=durability,
                on_record=self._index_record,
                on_reset=self._clear_index,
                resolve=self._resolve,
                tolerant=tolerant,
            )
        except BaseException:
            self._lock.close()
            raise

    # -- writing -------------------------------------------------------------

    def append(self, data: Mapping[str, Any], *, key: str | None = None) -> HistoryRecord:
        """Append one record; with a ``key`` already stored, return that record instead."""
        entry = Entry(encode_data(data, self.max_record_bytes), validate_key(key))
        (record,) = self._log.append([entry])
        return _history_record(record)

    def extend(self, items: Iterable[Mapping[str, Any]]) -> list[HistoryRecord]:
        """Append several records with one write and one sync; all or none are checked first."""
        try:
            iterator = iter(items)
        except TypeError:
            raise InvalidInputError(
                f"extend needs an iterable of mappings, not {type(items).__name__}"
            ) from None
        entries = [Entry(encode_data(data, self.max_record_bytes), None) for data in iterator]
        if not entries:
            return []
        return [_history_record(record) for record in self._log.append(entries)]

    # -- reading -------------------------------------------------------------

    def refresh(self) -> None:
        """Take in records other processes appended since the last look."""
        self._log.refresh()

    def __len__(self) -> int:
        self._log.refresh()
        return len(self._seqs)

    def __iter__(self) -> Iterator[HistoryRecord]:
        """Every committed record in seq order, including other processes' appends."""
        self._log.refresh()
        for record in self._log.scan():
            yield _history_record(record)

    def get(self, seq: int) -> HistoryRecord:
        """The record with ``seq``; raises NotFoundError (a KeyError) if there is none."""
        check_seq(seq)
        located = self._locate(seq)
        if located is None:
            self._log.refresh()
            located = self._locate(seq)
        if located is None:
            raise NotFoundError(f"{self.path} has no record with seq {seq}")
        return _history_record(self._log.read(*located))

    def load_recent(self, n: int) -> list[HistoryRecord]:
        """The ``n`` newest records, oldest first."""
        check_count("n", n)
        self._log.refresh()
        with self._index_lock:
            start = max(len(self._seqs) - n, 0)
            places = list(zip(self._offsets[start:], self._lengths[start:], strict=True))
        return [_history_record(self._log.read(*place)) for place in places]

    @property
    def last_seq(self) -> int:
        """The highest seq this handle has seen (0 for an empty history)."""
        return self._log.last_seq

    @property
    def problems(self) -> list[Problem]:
        """Damaged lines skipped so far (``tolerant=True`` only)."""
        return list(self._log.problems)

    # -- checking ------------------------------------------------------------

    def verify(self) -> CheckReport:
        """Check every line: checksum, seq order, unique keys. Changes nothing."""
        from snapstore._repair import check_history  # noqa: PLC0415 - _repair imports this module

        return check_history(self._real, quarantine_dir=self._quarantine_dir)

    def repair(self, *, dry_run: bool = False) -> CheckReport:
        """Move damaged bytes to quarantine, keeping every valid record (see docs/recovery.md)."""
        from snapstore._repair import check_history  # noqa: PLC0415 - _repair imports this module

        report = check_history(
            self._real, repair=True, dry_run=dry_run, quarantine_dir=self._quarantine_dir
        )
        self._log.refresh()
        return report

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        # The lock's descriptor is released even when closing the log reports
        # an error (close(2) may report EIO after releasing the descriptor).
        try:
            self._log.close()
        finally:
            self._lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"IterationHistory({str(self.path)!r}, last_seq={self.last_seq})"

    # -- the index: where each record is -----------------------------------------

    def _index_record(self, record: LogRecord) -> None:
        with self._index_lock:
            held = len(self._seqs)
            if held and record.seq <= self._seqs[held - 1]:
                return  # offered again after an interrupted commit: already held
            # seqs is appended last and says what is held: a call cut short by
            # an interrupt may have left the other columns one longer.
            del self._offsets[held:], self._lengths[held:]
            self._offsets.append(record.offset)
            self._lengths.append(record.length)
            if record.key is not None:
                self._keys.setdefault(record.key, held)
            self._seqs.append(record.seq)

    def _clear_index(self) -> None:
        with self._index_lock:
            del self._seqs[:], self._offsets[:], self._lengths[:]
            self._keys.clear()

    def _locate(self, seq: int) -> tuple[int, int] | None:
        with self._index_lock:
            i = bisect.bisect_left(self._seqs, seq)
            if i < len(self._seqs) and self._seqs[i] == seq:
                return self._offsets[i], self._lengths[i]
        return None

    def _resolve(self, entry: Entry, staged: list[LogRecord]) -> LogRecord | None:
        """The record already stored under ``entry.key``, if any (exactly-once retries)."""
        if entry.key is None:
            return None
        with self._index_lock:
            i = self._keys.get(entry.key)
            place = None if i is None else (self._offsets[i], self._lengths[i])
        if place is not None:
            return self._log.read(*place)
        return next((record for record in staged if record.key == entry.key), None)
