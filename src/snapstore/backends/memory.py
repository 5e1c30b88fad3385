"""The in-memory backend: the executable model of snapstore's semantics.

Every rule the local directory backend keeps on disk holds here in a few
dicts and lists: seqs 1, 2, 3, ... per store and per history, versions,
idempotent retries, the previous comparable run, race-free baselines and
exactly-once keyed appends, across threads. Nothing outlives the process;
``durability`` has nothing to make durable and ``lock_timeout`` nothing to
wait for but other threads of this process, briefly.

Payloads are kept as the JSON the public classes encoded, and decoded on every
read, exactly as the local backend reads its lines: what a test or a notebook
reads back here is what it would read back from disk (a tuple comes back a
list, NaN stays NaN, a retry is recognised by the stored JSON).

Targets: ``"memory://NAME"`` is the store (or, for ``IterationHistory``, the
history) of that name in this process, created on first open and kept until
the process ends; ``"memory://"`` is a new, private one at each open. A
:class:`MemoryStore` or :class:`MemoryHistory` object is a target too, shared
by whoever holds it and freed with it.
"""

from __future__ import annotations

import errno
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from snapstore._errors import InvalidInputError, StorageError
from snapstore._options import refuse_backend_options
from snapstore._records import HistoryRecord
from snapstore._report import CheckReport
from snapstore._values import loads, same_content
from snapstore.snapshot import stored_snapshot

if TYPE_CHECKING:
    from collections.abc import Iterator

    from snapstore._options import Options
    from snapstore._records import Entry, Origin
    from snapstore._report import Problem
    from snapstore.snapshot import NormalizedSnapshot

SCHEME = "memory://"


class _Clock:
    """Commit times that never go backwards (the seq is the order; times inform)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        self._last = max(self._last, datetime.now(UTC))
        return self._last


class MemoryHistory:
    """The records of one in-memory history; a target for ``IterationHistory``."""

    def __init__(self, location: str = SCHEME) -> None:
        self.location = location
        self._lock = threading.Lock()
        self._clock = _Clock()
        self._records: list[tuple[datetime, bytes, str | None]] = []
        self._keys: dict[str, int] = {}  # key -> its record's seq

    def open_history(self, options: Options, **extra: Any) -> MemoryHistoryBackend:  # noqa: ARG002 - nothing to ask of memory
        refuse_backend_options("memory", extra)
        return MemoryHistoryBackend(self)

    def append(self, entries: list[Entry]) -> list[HistoryRecord]:
        with self._lock:
            committed = self._clock.now()  # one batch, one commit, one time
            stored = []
            for entry in entries:
                seq = self._keys.get(entry.key) if entry.key is not None else None
                if seq is None:
                    self._records.append((committed, entry.data_json, entry.key))
                    seq = len(self._records)
                    if entry.key is not None:
                        self._keys[entry.key] = seq
                stored.append(seq)
            return [self.record(seq) for seq in stored]

    def count(self) -> int:
        return len(self._records)

    def dump(self) -> list[tuple[int, datetime, bytes, str | None]]:
        """Every record as stored: for comparing states and for debugging."""
        with self._lock:
            return [(seq, *record) for seq, record in enumerate(self._records, start=1)]

    def record(self, seq: int) -> HistoryRecord:
        ts, data, key = self._records[seq - 1]
        return HistoryRecord(seq, ts, loads(data), key)


class MemoryHistoryBackend:
    """A handle on a :class:`MemoryHistory`."""

    path = None

    def __init__(self, history: MemoryHistory) -> None:
        self.location = history.location
        self._history = history

    @property
    def last_seq(self) -> int:
        return self._history.count()

    @property
    def problems(self) -> list[Problem]:
        return []  # nothing is ever damaged, so nothing is skipped

    def append(self, entries: list[Entry]) -> list[HistoryRecord]:
        return self._history.append(entries)

    def count(self) -> int:
        return self._history.count()

    # Reads take no lock: a record, once appended, never changes, and a list
    # item below the length read is there to stay.

    def records(self) -> Iterator[HistoryRecord]:
        # The records committed when iteration begins, as a history file's reader sees.
        history = self._history
        return (history.record(seq) for seq in range(1, history.count() + 1))

    def get(self, seq: int) -> HistoryRecord | None:
        return self._history.record(seq) if 0 < seq <= self._history.count() else None

    def recent(self, n: int) -> list[HistoryRecord]:
        last = self._history.count()
        return [self._history.record(seq) for seq in range(max(last - n, 0) + 1, last + 1)]

    def refresh(self) -> None:
        pass  # every handle reads the one copy: always fresh

    def verify(self) -> CheckReport:
        return CheckReport(records=self.count())

    def repair(self, *, dry_run: bool) -> CheckReport:  # noqa: ARG002 - nothing to do either way
        return self.verify()  # nothing can be damaged

    def close(self) -> None:
        pass  # nothing to release: the records belong to the MemoryHistory


class MemoryStore:
    """The snapshots, pins and histories of one in-memory store; a target for ``SnapshotStore``.

    One lock orders every write, as the writer lock does on disk; reads take it
    too, briefly, to see the lists in one state.
    """

    def __init__(self, location: str = SCHEME) -> None:
        self.location = location
        self.lock = threading.Lock()
        self._clock = _Clock()
        self._payloads: list[tuple[datetime, bytes]] = []  # seq - 1 -> (created_at, payload)
        self.identities: list[tuple[str, str, str]] = []  # seq - 1 -> (run_id, stage, group)
        self.versions: dict[tuple[str, str], list[int]] = {}  # (run_id, stage) -> seqs
        self.groups: dict[tuple[str, str], list[int]] = {}  # (stage, comparison_key) -> seqs
        self.baselines: dict[tuple[str, str], int] = {}  # (stage, comparison_key) -> seq
        self.origins: dict[Origin, int] = {}  # the origin of a copy -> its seq
        self.identity = uuid.uuid4().hex
        self._histories: dict[str, MemoryHistory] = {}

    def open_store(self, options: Options, **extra: Any) -> MemorySnapshotBackend:  # noqa: ARG002 - nothing to ask of memory
        refuse_backend_options("memory", extra)
        return MemorySnapshotBackend(self)

    def dump(self) -> dict[str, Any]:
        """Everything stored, as plain values: for comparing states and for debugging."""
        with self.lock:
            snapshots, baselines = list(self._payloads), dict(self.baselines)
            origins, histories = dict(self.origins), dict(self._histories)
        return {
            "snapshots": snapshots,
            "baselines": baselines,
            "origins": origins,
            "histories": {name: history.dump() for name, history in sorted(histories.items())},
        }

    def history(self, name: str) -> MemoryHistory:
        with self.lock:
            history = self._histories.get(name)
            if history is None:
                history = self._histories[name] = MemoryHistory(f"{self.location}#{name}")
            return history

    def history_names(self) -> list[str]:
        with self.lock:
            histories = list(self._histories.items())
        return sorted(name for name, history in histories if history.count())

    # The caller holds ``lock`` for the methods below.

    def snapshot(self, seq: int | None) -> NormalizedSnapshot | None:
        if seq is None or not 0 < seq <= len(self._payloads):
            return None
        created_at, payload = self._payloads[seq - 1]
        return stored_snapshot(seq, created_at, loads(payload))

    def save(
        self, snap: NormalizedSnapshot, payload: bytes, origin: Origin | None = None
    ) -> NormalizedSnapshot:
        key = (snap.run_id, snap.stage)
        versions = self.versions.get(key)
        if origin is not None:
            copy = self.snapshot(self.origins.get(origin))
            if copy is not None:
                return copy
        elif versions:
            latest = versions[-1]
            _, stored = self._payloads[latest - 1]
            if stored == payload or same_content(loads(stored), payload):
                saved = self.snapshot(latest)
                assert saved is not None
                return saved
        assert snap.comparison_key is not None
        self._payloads.append((self._clock.now(), payload))
        seq = len(self._payloads)
        self.identities.append((snap.run_id, snap.stage, snap.comparison_key))
        self.versions.setdefault(key, []).append(seq)
        self.groups.setdefault((snap.stage, snap.comparison_key), []).append(seq)
        if origin is not None:
            self.origins[origin] = seq
        saved = self.snapshot(seq)
        assert saved is not None
        return saved

    def pin(self, snap: NormalizedSnapshot) -> None:
        seq = snap.snapshot_seq
        stored = self.identities[seq - 1] if seq is not None and 0 < seq <= len(self) else None
        if stored is None or stored[:2] != (snap.run_id, snap.stage):
            raise InvalidInputError(
                f"snapshot {snap.run_id}:{snap.stage} seq {seq} is not stored "
                f"in {self.location}; save it first"
            )
        assert seq is not None
        self.baselines[stored[1], stored[2]] = seq

    def __len__(self) -> int:
        return len(self._payloads)


class MemorySnapshotBackend:
    """A handle on a :class:`MemoryStore`."""

    path = None

    def __init__(self, store: MemoryStore) -> None:
        self.location = store.location
        self.identity = store.identity
        self._store = store

    def save(
        self, snap: NormalizedSnapshot, payload: bytes, origin: Origin | None = None
    ) -> NormalizedSnapshot:
        with self._store.lock:
            return self._store.save(snap, payload, origin)

    def copies(self, store: str) -> dict[int, int]:
        with self._store.lock:
            return {
                origin.seq: seq
                for origin, seq in self._store.origins.items()
                if origin.store == store
            }

    def get_latest(self, run_id: str, stage: str) -> NormalizedSnapshot | None:
        with self._store.lock:
            versions = self._store.versions.get((run_id, stage))
            return self._store.snapshot(versions[-1]) if versions else None

    def get_by_seq(self, seq: int) -> NormalizedSnapshot | None:
        with self._store.lock:
            return self._store.snapshot(seq)

    def versions(self, run_id: str, stage: str) -> list[NormalizedSnapshot]:
        with self._store.lock:
            return self._all(self._store.versions.get((run_id, stage), []))

    def snapshots(self, run_id: str | None, stage: str | None) -> Iterator[NormalizedSnapshot]:
        store = self._store
        with store.lock:
            seqs = [
                seq
                for seq, (run, stage_of, _) in enumerate(store.identities, start=1)
                if run_id in {None, run} and stage in {None, stage_of}
            ]
            return iter(self._all(seqs))

    def count(self) -> int:
        return len(self._store)

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int | None
    ) -> NormalizedSnapshot | None:
        store = self._store
        with store.lock:
            for seq in reversed(store.groups.get((stage, comparison_key), [])):
                if (below is None or seq < below) and store.identities[seq - 1][0] != run_id:
                    return store.snapshot(seq)
        return None

    def baseline(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None:
        with self._store.lock:
            return self._store.snapshot(self._store.baselines.get((stage, comparison_key)))

    def establish_baseline(
        self, snap: NormalizedSnapshot, payload: bytes | None
    ) -> NormalizedSnapshot:
        assert snap.comparison_key is not None
        store = self._store
        with store.lock:  # decided under the one lock: racing threads agree
            existing = store.snapshot(store.baselines.get((snap.stage, snap.comparison_key)))
            if existing is not None:
                return existing
            saved = snap if payload is None else store.save(snap, payload)
            store.pin(saved)
            return saved

    def pin_baseline(self, snap: NormalizedSnapshot) -> None:
        with self._store.lock:
            self._store.pin(snap)

    def baselines(self) -> list[NormalizedSnapshot]:
        with self._store.lock:
            pins = sorted(self._store.baselines.items())
            return self._all([seq for _group, seq in pins])

    def open_history(self, name: str) -> MemoryHistoryBackend:
        return MemoryHistoryBackend(self._store.history(name))

    def history_names(self) -> list[str]:
        return self._store.history_names()

    def details(self) -> dict[str, str]:
        return {"kept": "in this process's memory: gone when it exits"}

    def refresh(self) -> None:
        pass  # every handle reads the one copy: always fresh

    def checkpoint(self) -> None:
        pass  # no derived state to persist

    def verify(self) -> CheckReport:
        return CheckReport(records=self.count())

    def repair(self, *, dry_run: bool) -> CheckReport:  # noqa: ARG002 - nothing to do either way
        return self.verify()  # nothing can be damaged

    def close(self, *, finish: bool = True) -> None:
        pass  # nothing to release: the records belong to the MemoryStore

    def _all(self, seqs: list[int]) -> list[NormalizedSnapshot]:
        snaps = [self._store.snapshot(seq) for seq in seqs]
        return [snap for snap in snaps if snap is not None]


# -- targets named by URL -------------------------------------------------------

_named_lock = threading.Lock()
_named_stores: dict[str, MemoryStore] = {}
_named_histories: dict[str, MemoryHistory] = {}


def store_named(url: str, *, create: bool) -> MemoryStore:
    """The store ``url`` (``memory://NAME``) names; a new private one for ``memory://``."""
    return _named(url, _named_stores, MemoryStore, "store", create=create)


def history_named(url: str, *, create: bool) -> MemoryHistory:
    """The history ``url`` (``memory://NAME``) names; a new private one for ``memory://``."""
    return _named(url, _named_histories, MemoryHistory, "history", create=create)


_Target = TypeVar("_Target", MemoryStore, MemoryHistory)


def _named(
    url: str, named: dict[str, _Target], kind: type[_Target], what: str, *, create: bool
) -> _Target:
    if url == SCHEME:
        if not create:
            raise _no_such(url, what)
        return kind(url)
    with _named_lock:
        found = named.get(url)
        if found is None:
            if not create:
                raise _no_such(url, what)
            found = named[url] = kind(url)
        return found


def _no_such(url: str, what: str) -> StorageError:
    return StorageError(
        errno.ENOENT, f"{url}: no such {what} (a read-only open does not create a {what})"
    )
