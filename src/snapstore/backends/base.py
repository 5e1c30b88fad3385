"""The seam between the public classes and where their records live.

``SnapshotStore`` sits on a :class:`SnapshotBackend` and ``IterationHistory``
on a :class:`HistoryBackend`. The public classes check every argument, encode
every value and speak to users, once, for every backend; a backend stores and
answers. What reaches a backend is checked already: names valid, comparison
key filled in, payloads encoded within ``max_record_bytes``, the handle open
and in the process that opened it, writes only on a handle that may write.

Every answer is fresh: it includes everything committed, by any handle, before
the call began. (A PostgreSQL handle's read cache narrows "any handle" to those
of its process; another process's commit is included from the moment its
notification arrives, and ``refresh()`` includes everything: see
``backends.postgres.cache``.) Order is the seq, never a clock. Every backend passes the
conformance suites of :mod:`snapstore.testing.conformance`.

A *target* names where a store or a history lives and opens handles on it:
``SnapshotStore(target)`` calls ``target.open_store(options, **extra)``, where
``extra`` holds the options only that backend understands (its own to check).
Paths and ``memory://`` URLs are turned into targets by
:func:`snapstore.backends.store_target` and ``history_target``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from snapstore._records import Entry, HistoryRecord, Origin
    from snapstore._report import CheckReport, Problem
    from snapstore.snapshot import NormalizedSnapshot


class SnapshotBackend(Protocol):
    """One open handle on a store of snapshots, baseline pins and named histories."""

    @property
    def location(self) -> str:
        """Where the store is, as the user named it: for messages."""

    @property
    def path(self) -> Path | None:
        """The directory of a store kept in files; None for any other."""

    @property
    def identity(self) -> str:
        """What tells this store from every other, for the origins of copies made from it."""

    def save(
        self, snap: NormalizedSnapshot, payload: bytes, origin: Origin | None = None
    ) -> NormalizedSnapshot:
        """Commit ``snap`` (stored as ``payload``) with the next seq.

        If the latest version of its ``(run_id, stage)`` holds the same
        payload, return that version and write nothing: retries are idempotent.
        A copy (``origin`` given) is matched by its origin instead: if a copy
        of that origin is stored, it is returned and nothing is written.
        """

    def copies(self, store: str) -> dict[int, int]:
        """The copies of the store ``store`` (an identity) stored here: its seq -> our seq."""

    def get_latest(self, run_id: str, stage: str) -> NormalizedSnapshot | None: ...

    def get_by_seq(self, seq: int) -> NormalizedSnapshot | None: ...

    def versions(self, run_id: str, stage: str) -> list[NormalizedSnapshot]:
        """Every version of ``(run_id, stage)``, oldest first."""

    def snapshots(self, run_id: str | None, stage: str | None) -> Iterator[NormalizedSnapshot]:
        """In seq order, those of one run, one stage, or all (None: any)."""

    def count(self) -> int: ...

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int | None
    ) -> NormalizedSnapshot | None:
        """The highest-seq snapshot of the group from another run, below ``below`` if given."""

    def baseline(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None: ...

    def baselines(self) -> list[NormalizedSnapshot]:
        """Every pinned baseline, one per group, by ``(stage, comparison_key)``."""

    def establish_baseline(
        self, snap: NormalizedSnapshot, payload: bytes | None
    ) -> NormalizedSnapshot:
        """Atomically: the pinned baseline of snap's group, or pin ``snap``.

        An unsaved ``snap`` (``payload`` given) is saved first. Handles racing
        on an empty group, in any process or host, all get the same answer.
        """

    def pin_baseline(self, snap: NormalizedSnapshot) -> None:
        """Pin the saved ``snap`` as its group's baseline; InvalidInputError if not stored."""

    def open_history(self, name: str) -> HistoryBackend:
        """A new handle on the store's history ``name`` (created on first write)."""

    def history_names(self) -> list[str]:
        """The names of the store's histories that hold a record or once did, sorted."""

    def details(self) -> dict[str, str]:
        """What only this backend knows about the store (its files, its index), for people."""

    def refresh(self) -> None:
        """Take in what other handles committed (answers are fresh without it)."""

    def checkpoint(self) -> None:
        """Persist derived state now (a backend that keeps none does nothing)."""

    def verify(self) -> CheckReport:
        """Check everything stored; change nothing."""

    def repair(self, *, dry_run: bool) -> CheckReport:
        """Set damage aside, keep every valid record (or say what would be done)."""

    def close(self, *, finish: bool = True) -> None:
        """Release everything; with ``finish``, first persist what is pending.

        ``finish=False`` is for a handle that may not write: a copy inherited
        through fork(), or one the garbage collector reclaims. Idempotent: a
        second call releases whatever a first one, cut short, left.
        """


class HistoryBackend(Protocol):
    """One open handle on an append-only history of records."""

    @property
    def location(self) -> str:
        """Where the history is, as the user named it: for messages."""

    @property
    def path(self) -> Path | None:
        """The file of a history kept in one; None for any other."""

    @property
    def last_seq(self) -> int:
        """The highest seq this handle has seen (0: none)."""

    @property
    def problems(self) -> list[Problem]:
        """Damaged records skipped so far (a backend that never skips: always empty)."""

    def append(self, entries: list[Entry]) -> list[HistoryRecord]:
        """Commit the entries, in order, with the next seqs; return them as stored.

        An entry whose key is stored already is not written: the stored
        record is returned in its place (exactly-once retries).
        """

    def count(self) -> int: ...

    def records(self) -> Iterator[HistoryRecord]:
        """Every record in seq order."""

    def get(self, seq: int) -> HistoryRecord | None: ...

    def recent(self, n: int) -> list[HistoryRecord]:
        """The ``n`` newest records, oldest first."""

    def refresh(self) -> None:
        """Take in what other handles committed (answers are fresh without it)."""

    def verify(self) -> CheckReport: ...

    def repair(self, *, dry_run: bool) -> CheckReport: ...

    def close(self) -> None:
        """Release everything. Idempotent."""


@runtime_checkable
class StoreTarget(Protocol):
    """Where a store lives: opens handles on it."""

    @property
    def open_store(self) -> Callable[..., SnapshotBackend]:
        """``open_store(options, **extra)``: a new handle on the store.

        Declared as a callable so that each target spells out the keyword
        options of its own backend.
        """


@runtime_checkable
class HistoryTarget(Protocol):
    """Where a standalone history lives: opens handles on it."""

    @property
    def open_history(self) -> Callable[..., HistoryBackend]:
        """``open_history(options, **extra)``: a new handle (see ``StoreTarget``)."""
