"""A history kept in one checked log file: ``<name>.jsonl``, its lock beside it."""

from __future__ import annotations

import bisect
import errno
import os
import threading
from array import array
from pathlib import Path
from typing import TYPE_CHECKING

from snapstore._errors import InvalidInputError, StorageError, read_only_hint, storage_errors
from snapstore._log import seam
from snapstore._log.checked import CheckedLog, refuse_foreign
from snapstore._log.fstype import check_filesystem
from snapstore._log.lock import WriterLock, lock_file_of, refuse_second_name
from snapstore._log.record import LogRecord, utc_from_iso
from snapstore._records import HistoryRecord
from snapstore.backends.local.layout import default_quarantine_dir, refuse_store_log

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from snapstore._options import Options
    from snapstore._records import Entry
    from snapstore._report import CheckReport, Problem


class LocalHistory:
    """One open handle on a history file: its checked log and an index of where each record is.

    Every record gets ``seq`` 1, 2, 3, ... assigned under the writer lock, so
    seqs are unique and strictly increasing across threads and processes.
    """

    def __init__(
        self,
        path: Path,
        options: Options,
        *,
        tolerant: bool = False,
        strict: bool = False,
        quarantine_dir: Path | None = None,
    ) -> None:
        if path.suffix != ".jsonl":
            raise InvalidInputError(f"a history file must end in .jsonl: {path}")
        self.path = path
        self.location = str(path)
        refuse_second_name(path)
        # The file the path leads to, resolved once: the lock and quarantine
        # are derived from it (one lock per log, whichever path reaches it),
        # and the handle keeps to it even if a symlink on the way is later
        # pointed elsewhere (its lock would no longer guard what it reached).
        real = self._real = Path(os.path.realpath(path))
        self._quarantine_dir = (
            quarantine_dir if quarantine_dir is not None else default_quarantine_dir(path)
        )
        self._lock_timeout = options.lock_timeout
        read_only = options.read_only
        fs = seam.current()
        self._index = index = _RecordIndex()
        refuse_store_log(path)
        with read_only_hint(read_only):
            # Report a failing disk as a StorageError here too, as every later call does.
            with storage_errors(path):
                refuse_foreign(fs, real, lock_file_of(real))
                check_filesystem(path.parent, strict=strict)
                if read_only:
                    # Nothing is created: a missing history is an error, not a new one.
                    if not real.exists():
                        raise StorageError(
                            errno.ENOENT,
                            f"{path}: no such file (a read-only open does not create a history)",
                        )
                    self._lock = WriterLock(
                        lock_file_of(real), fs, options.lock_timeout, create=False
                    )
                else:
                    fs.make_dirs(path.parent)
                    fs.remove_stale_temps(self._quarantine_dir)
                    self._lock = WriterLock(lock_file_of(real), fs, options.lock_timeout)
            try:
                self._log = CheckedLog(
                    real,
                    fs=fs,
                    lock=self._lock,
                    quarantine_dir=self._quarantine_dir,
                    durability=options.durability,
                    on_record=index.add,
                    on_reset=index.clear,
                    resolve=index.resolve,
                    tolerant=tolerant,
                    read_only=read_only,
                )
            except BaseException:
                self._lock.close()
                raise

    @property
    def last_seq(self) -> int:
        return self._log.last_seq

    @property
    def problems(self) -> list[Problem]:
        return list(self._log.problems)

    def append(self, entries: list[Entry]) -> list[HistoryRecord]:
        return list(map(_history_record, self._log.append(entries)))

    def count(self) -> int:
        self._log.refresh()
        return len(self._index)

    def records(self) -> Iterator[HistoryRecord]:
        self._log.refresh()
        return (_history_record(record) for record in self._log.scan())

    def get(self, seq: int) -> HistoryRecord | None:
        # Refreshed on a miss only: the record a seq names never changes.
        located = self._index.locate(seq)
        if located is None:
            self._log.refresh()
            located = self._index.locate(seq)
        return None if located is None else _history_record(self._log.read(*located))

    def recent(self, n: int) -> list[HistoryRecord]:
        self._log.refresh()
        return [_history_record(self._log.read(*place)) for place in self._index.newest(n)]

    def refresh(self) -> None:
        self._log.refresh()

    def verify(self) -> CheckReport:
        from snapstore.backends.local.repair import check_history  # noqa: PLC0415 - only checks need it

        return check_history(
            self._real, quarantine_dir=self._quarantine_dir, lock_timeout=self._lock_timeout
        )

    def repair(self, *, dry_run: bool) -> CheckReport:
        from snapstore.backends.local.repair import check_history  # noqa: PLC0415 - only checks need it

        report = check_history(
            self._real,
            repair=True,
            dry_run=dry_run,
            quarantine_dir=self._quarantine_dir,
            lock_timeout=self._lock_timeout,
        )
        self._log.refresh()
        return report

    def close(self) -> None:
        # The lock's descriptor is released even when closing the log reports
        # an error (close(2) may report EIO after releasing the descriptor).
        try:
            self._log.close()
        finally:
            self._lock.close()


def _history_record(record: LogRecord) -> HistoryRecord:
    return HistoryRecord(record.seq, utc_from_iso(record.ts), record.data, record.key)


class _RecordIndex:
    """Where each record of one history is: its seq, offset and length, and its key.

    Apart from the handle on purpose: the log calls into the index, and the
    index holds nothing that leads back to the handle, so a handle that nobody
    refers to any more is freed at once, and its files closed (see
    IterationHistory.__del__).
    """

    __slots__ = ("_keys", "_lengths", "_lock", "_offsets", "_seqs")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seqs = array("q")
        self._offsets = array("q")
        self._lengths = array("q")
        self._keys: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._seqs)

    def add(self, record: LogRecord) -> None:
        with self._lock:
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

    def clear(self) -> None:
        with self._lock:
            del self._seqs[:], self._offsets[:], self._lengths[:]
            self._keys.clear()

    def locate(self, seq: int) -> tuple[int, int] | None:
        with self._lock:
            i = bisect.bisect_left(self._seqs, seq)
            if i < len(self._seqs) and self._seqs[i] == seq:
                return self._offsets[i], self._lengths[i]
        return None

    def newest(self, n: int) -> list[tuple[int, int]]:
        """The places of the ``n`` newest records, oldest first."""
        with self._lock:
            start = max(len(self._seqs) - n, 0)
            return list(zip(self._offsets[start:], self._lengths[start:], strict=True))

    def resolve(
        self, entry: Entry, staged: list[LogRecord], read: Callable[[int, int], LogRecord]
    ) -> LogRecord | None:
        """The record already stored under ``entry.key``, if any (exactly-once retries)."""
        if entry.key is None:
            return None
        with self._lock:
            i = self._keys.get(entry.key)
            place = None if i is None else (self._offsets[i], self._lengths[i])
        if place is not None:
            return read(*place)
        return next((record for record in staged if record.key == entry.key), None)
