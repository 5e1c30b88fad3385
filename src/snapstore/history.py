"""IterationHistory: a durable, ordered, multi-writer record of a pipeline's iterations."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any, Self

import orjson

from snapstore import _fork
from snapstore._errors import (
    ClosedError,
    InvalidInputError,
    KeyConflictError,
    NotFoundError,
    ReadOnlyError,
    storage_errors,
)
from snapstore._names import check_fs_path, validate_key
from snapstore._options import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MAX_RECORD_BYTES,
    Durability,
    Options,
    check_flag,
    check_int_at_least,
    check_seq,
    checked_options,
)
from snapstore._records import Entry, HistoryRecord
from snapstore._values import encode_data, same_content
from snapstore.backends import history_target

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path
    from types import TracebackType

    import pandas as pd
    import pyarrow as pa

    from snapstore._report import CheckReport, Problem
    from snapstore.backends.base import HistoryBackend, HistoryTarget

__all__ = ["HistoryRecord", "IterationHistory"]

# Records written (and synced) at once by import_jsonl.
_IMPORT_BATCH = 1000


class IterationHistory:
    """An append-only history of records: one ``.jsonl`` file, or a history of another backend.

    Every record gets ``seq`` 1, 2, 3, ... assigned under the writer lock, so seqs
    are unique and strictly increasing across threads and processes. With
    ``durability="fsync"`` (the default) ``append`` returns only once the record
    is on stable storage; with ``durability="write"`` it returns once the record
    is in the operating system's cache, which survives a crash of the process
    but not of the machine.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | HistoryTarget,
        *,
        durability: Durability = "fsync",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        read_only: bool = False,
        **backend_options: Any,
    ) -> None:
        """Open the history ``target`` names: a ``.jsonl`` path, a ``memory://`` URL, or a target.

        ``backend_options`` are those of the target's backend: for a file,
        ``tolerant``, ``strict`` and ``quarantine_dir`` (see docs/api.md).
        """
        options = checked_options(durability, lock_timeout, max_record_bytes, read_only)
        opener = history_target(target, read_only=options.read_only)
        self._attach(opener.open_history(options, **backend_options), options)

    @classmethod
    def _over(cls, backend: HistoryBackend, options: Options) -> Self:
        """A handle on a history a store opened, keeps and closes: no ResourceWarning."""
        history = cls.__new__(cls)
        history._attach(backend, options)  # noqa: SLF001 - this class's own
        history._warn_if_unclosed = False  # noqa: SLF001
        return history

    def _attach(self, backend: HistoryBackend, options: Options) -> None:
        self._backend = backend
        self.max_record_bytes = options.max_record_bytes
        self.read_only = options.read_only
        self._opened_at = _fork.forks()
        self._warn_if_unclosed = True
        self._closed = False

    # -- writing -------------------------------------------------------------

    def append(self, data: Mapping[str, Any], *, key: str | None = None) -> HistoryRecord:
        """Append one record; with a ``key`` already stored, return that record instead."""
        entry = Entry(encode_data(data, self.max_record_bytes), validate_key(key))
        self._check_writable()
        (stored,) = self._backend.append([entry])
        # A key names one request: a retry that sends other data is a mistake
        # (a reused key), not a retry, and must not be answered with the
        # record of another request as if this one were stored.
        if key is not None and not same_content(stored.data, entry.data_json):
            raise KeyConflictError(
                f"key {key!r} is stored (seq {stored.seq}) with other data than this append "
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
        self._check_writable()
        return self._backend.append(entries)

    # -- reading -------------------------------------------------------------

    def refresh(self) -> None:
        """Take in records other processes appended since the last look."""
        self._check_open()
        self._backend.refresh()

    def __len__(self) -> int:
        self._check_open()
        return self._backend.count()

    def __iter__(self) -> Iterator[HistoryRecord]:
        """Every committed record in seq order, including other processes' appends."""
        self._check_open()
        yield from self._backend.records()

    def get(self, seq: int) -> HistoryRecord:
        """The record with ``seq``; raises NotFoundError (a KeyError) if there is none."""
        check_seq(seq)
        self._check_open()
        found = self._backend.get(seq)
        if found is None:
            raise NotFoundError(f"{self._backend.location} has no record with seq {seq}")
        return found

    def load_recent(self, n: int) -> list[HistoryRecord]:
        """The ``n`` newest records, oldest first."""
        check_int_at_least("n", n, 0)
        self._check_open()
        return self._backend.recent(n)

    def to_arrow(self, *, where: str | Iterable[str] = ()) -> pa.Table:
        """Every record as an Arrow table: ``seq``, ``ts``, ``key`` and one typed column per field.

        The record's fields are named ``data.<field>`` (nested keys dotted);
        ``where`` holds conditions such as ``"data.loss < 0.3"`` that a row
        must all meet. Columns and types: docs/api.md, "Tables".
        """
        from snapstore._tables import history_table  # noqa: PLC0415 - only tables need it

        return history_table(self, where)

    def to_pandas(self, *, where: str | Iterable[str] = ()) -> pd.DataFrame:
        """``to_arrow(where=...)`` as a pandas DataFrame (needs the ``pandas`` extra)."""
        from snapstore._tables import to_pandas  # noqa: PLC0415 - only tables need it

        return to_pandas(self.to_arrow(where=where))

    @property
    def path(self) -> Path:
        """The file the history is kept in (the local backend's; no other has one)."""
        path = self._backend.path
        if path is None:
            raise AttributeError(f"{self._backend.location} is not kept in a file: it has no path")
        return path

    @property
    def last_seq(self) -> int:
        """The highest seq this handle has seen (0 for an empty history)."""
        return self._backend.last_seq

    @property
    def problems(self) -> list[Problem]:
        """Damaged lines skipped so far (``tolerant=True`` only)."""
        return self._backend.problems

    # -- checking ------------------------------------------------------------

    def verify(self) -> CheckReport:
        """Check every line: checksum, seq order, unique keys. Changes nothing."""
        return self._backend.verify()

    def repair(self, *, dry_run: bool = False) -> CheckReport:
        """Move damaged bytes to quarantine, keeping every valid record (see docs/recovery.md)."""
        check_flag("dry_run", dry_run)  # here, for every backend
        self._check_writable()
        return self._backend.repair(dry_run=dry_run)

    # -- lifecycle -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the file and its lock. Idempotent."""
        self._closed = True
        self._backend.close()

    def __del__(self) -> None:
        # Like a file: a handle reclaimed while open gives its descriptors back,
        # and says it was not closed. A copy inherited through fork() is the
        # parent's to close, and a store's own histories are the store's.
        # A closed one releases again (idempotent): its close may have been
        # cut short by an interrupt.
        if not hasattr(self, "_closed"):
            return  # __init__ failed before there was anything to close
        if not self._closed and self._warn_if_unclosed and self._opened_at == _fork.forks():
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
            history._check_writable()
            for start in range(0, len(entries), _IMPORT_BATCH):
                history._backend.append(entries[start : start + _IMPORT_BATCH])
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
        return f"IterationHistory({self._backend.location!r}, last_seq={self.last_seq})"

    # -- internals -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self._backend.location} is closed")
        _fork.check_not_inherited(self._opened_at, self._backend.location)

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(
                f"{self._backend.location} was opened with read_only=True: it is not written"
            )
