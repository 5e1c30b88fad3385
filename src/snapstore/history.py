"""IterationHistory: a durable, ordered, multi-writer record of a pipeline's iterations."""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import threading
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson

from snapstore._errors import (
    InvalidInputError,
    KeyConflictError,
    NotFoundError,
    StorageError,
    read_only_hint,
    storage_errors,
)
from snapstore._log import seam
from snapstore._log.checked import (
    CheckedLog,
    Durability,
    check_count,
    check_seq,
    check_write_options,
    refuse_foreign,
)
from snapstore._log.fstype import check_filesystem
from snapstore._log.lock import WriterLock, lock_file_of, refuse_second_name
from snapstore._log.record import (
    DEFAULT_MAX_RECORD_BYTES,
    Entry,
    LogRecord,
    encode_data,
    same_content,
    utc_from_iso,
    validate_key,
)
from snapstore._names import check_fs_path, fit_name
from snapstore.backends.local.layout import store_of_log

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from datetime import datetime
    from types import TracebackType

    from snapstore._report import CheckReport, Problem

DEFAULT_LOCK_TIMEOUT = 30.0
# Records written (and synced) at once by import_jsonl.
_IMPORT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One committed iteration: its sequence number, commit time, payload and key."""

    seq: int
    ts: datetime
    data: dict[str, Any]
    key: str | None = None


def _history_record(record: LogRecord) -> HistoryRecord:
    return HistoryRecord(record.seq, utc_from_iso(record.ts), record.data, record.key)


def refuse_store_log(path: Path) -> None:
    """Refuse a store's own snapshot or pin log as a history: it has the store's lock."""
    store = store_of_log(path)
    if store is not None:
        raise InvalidInputError(
            f"{path} is a log of the store {store}, written under the store's lock: "
            f"open it with SnapshotStore({str(store)!r}) (or `snapstore verify {store}`)"
        )


def default_quarantine_dir(log: Path) -> Path:
    """Where a standalone history's damaged bytes go: beside the file its path leads to.

    A name too long for the suffix is shortened (see fit_name).
    """
    real = Path(os.path.realpath(log))
    return real.with_name(fit_name(real.name, ".quarantine"))


class _RecordIndex:
    """Where each record of one history is: its seq, offset and length, and its key.

    Apart from the handle on purpose: the log calls into the index, and the
    index holds nothing that leads back to the handle, so a handle that nobody
    refers to any more is freed at once, and its files closed (see __del__).
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
        read_only: bool = False,
    ) -> None:
        check_write_options(
            durability,
            lock_timeout,
            max_record_bytes,
            strict=strict,
            tolerant=tolerant,
            read_only=read_only,
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
        fs = seam.current()
        self._index = index = _RecordIndex()
        self._warn_if_unclosed = True
        refuse_store_log(self.path)
        with read_only_hint(read_only):
            # Report a failing disk as a StorageError here too, as every later call does.
            with storage_errors(self.path):
                refuse_foreign(fs, real, lock_file_of(real))
                check_filesystem(self.path.parent, strict=strict)
                if read_only:
                    # Nothing is created: a missing history is an error, not a new one.
                    if not real.exists():
                        raise StorageError(
                            errno.ENOENT,
                            f"{self.path}: no such file (a read-only open does not create "
                            "a history)",
                        )
                    self._lock = WriterLock(lock_file_of(real), fs, lock_timeout, create=False)
                else:
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
                    on_record=index.add,
                    on_reset=index.clear,
                    resolve=index.resolve,
                    tolerant=tolerant,
                    read_only=read_only,
                )
            except BaseException:
                self._lock.close()
                raise
        self._closed = False

    # -- writing -------------------------------------------------------------

    def append(self, data: Mapping[str, Any], *, key: str | None = None) -> HistoryRecord:
        """Append one record; with a ``key`` already stored, return that record instead."""
        entry = Entry(encode_data(data, self.max_record_bytes), validate_key(key))
        (record,) = self._log.append([entry])
        stored = _history_record(record)
        # A key names one request: a retry that sends other data is a mistake
        # (a reused key), not a retry, and must not be answered with the
        # record of another request as if this one were stored.
        if key is not None and not same_content(record.data, entry.data_json):
            raise KeyConflictError(
                f"key {key!r} is stored (seq {record.seq}) with other data than this append "
                "sends: a retry must send the same record; a new record needs a new key",
                stored,
            )
        return stored

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
        return len(self._index)

    def __iter__(self) -> Iterator[HistoryRecord]:
        """Every committed record in seq order, including other processes' appends."""
        self._log.refresh()
        for record in self._log.scan():
            yield _history_record(record)

    def get(self, seq: int) -> HistoryRecord:
        """The record with ``seq``; raises NotFoundError (a KeyError) if there is none."""
        check_seq(seq)
        self._log.check_open()
        located = self._index.locate(seq)
        if located is None:
            self._log.refresh()
            located = self._index.locate(seq)
        if located is None:
            raise NotFoundError(f"{self.path} has no record with seq {seq}")
        return _history_record(self._log.read(*located))

    def load_recent(self, n: int) -> list[HistoryRecord]:
        """The ``n`` newest records, oldest first."""
        check_count("n", n)
        self._log.refresh()
        return [_history_record(self._log.read(*place)) for place in self._index.newest(n)]

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
        from snapstore.backends.local.repair import check_history  # noqa: PLC0415 - repair imports this module

        return check_history(self._real, quarantine_dir=self._quarantine_dir)

    def repair(self, *, dry_run: bool = False) -> CheckReport:
        """Move damaged bytes to quarantine, keeping every valid record (see docs/recovery.md)."""
        from snapstore.backends.local.repair import check_history  # noqa: PLC0415 - repair imports this module

        self._log.check_not_read_only()
        report = check_history(
            self._real, repair=True, dry_run=dry_run, quarantine_dir=self._quarantine_dir
        )
        self._log.refresh()
        return report

    # -- lifecycle -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the file and its lock. Idempotent."""
        self._closed = True
        # The lock's descriptor is released even when closing the log reports
        # an error (close(2) may report EIO after releasing the descriptor).
        try:
            self._log.close()
        finally:
            self._lock.close()

    def __del__(self) -> None:
        # Like a file: a handle reclaimed while open gives its descriptors back,
        # and says it was not closed. A copy inherited through fork() is the
        # parent's to close, and a store's own histories are the store's.
        # A closed one releases again (idempotent): its close may have been
        # cut short by an interrupt.
        if not hasattr(self, "_closed"):
            return  # __init__ failed before there was anything to close
        if not self._closed and self._warn_if_unclosed and not self._log.inherited:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
        with contextlib.suppress(Exception):
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @classmethod
    def import_jsonl(
        cls, source: str | os.PathLike[str], path: str | os.PathLike[str], **options: Any
    ) -> Self:
        """Append every JSON object line of ``source`` to the history at ``path``; return it.

        For JSON Lines that snapstore did not write (pandas, jq, a logger):
        each line becomes one record, in file order, with its seq and commit
        time assigned here. ``source`` is only read. Every line is checked
        before anything is written: one that is not a JSON object (or not
        storable) raises InvalidInputError naming its line, and the history
        is left as it was. Blank lines are skipped.
        """
        source = check_fs_path("source path", source)
        history = cls(path, **options)
        try:
            entries = history._entries_of_lines(source)
            for start in range(0, len(entries), _IMPORT_BATCH):
                history._log.append(entries[start : start + _IMPORT_BATCH])
        except BaseException:
            history.close()
            raise
        return history

    def _entries_of_lines(self, source: Path) -> list[Entry]:
        """Every JSON object line of ``source`` as an entry, all checked before any is written."""
        entries: list[Entry] = []
        with storage_errors(source), source.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    item = orjson.loads(line)
                    entries.append(Entry(encode_data(item, self.max_record_bytes), None))
                except (orjson.JSONDecodeError, InvalidInputError) as exc:
                    raise InvalidInputError(f"{source}, line {number}: {exc}") from None
        return entries

    def __repr__(self) -> str:
        return f"IterationHistory({str(self.path)!r}, last_seq={self.last_seq})"


def open_store_history(path: Path, **options: Any) -> IterationHistory:
    """A history a store opens, keeps and closes itself: no ResourceWarning when reclaimed."""
    history = IterationHistory(path, **options)
    history._warn_if_unclosed = False  # noqa: SLF001 - this module's own handle
    return history
