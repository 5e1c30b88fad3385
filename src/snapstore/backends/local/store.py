"""The local directory backend: a store is a folder of checked logs and caches.

<store>/
  SNAPSTORE             marker {"format": 1, ...}; created once, atomically
  .lock                 the store's writer lock (never deleted)
  snapshots.jsonl       the commit log: one snapshot a line; its seq is the snapshot_seq
  baselines.jsonl       baseline pins, a checked log of its own (seq space apart)
  index.sqlite          derived: where each snapshot is, queried in place (disk_index)
  snapshot_index.json   derived, by checkpoint(): latest seq per "run_id:stage", groups, baselines
  index.parquet         derived, by checkpoint(): one row per snapshot, for analytics
  history/<name>.jsonl  named IterationHistory logs
  quarantine/           bytes moved aside by recovery and repair
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import threading
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from snapstore._errors import (
    CheckpointWarning,
    CorruptionError,
    InvalidInputError,
    NotAStoreError,
    StorageError,
    read_only_hint,
    storage_errors,
)
from snapstore._log import seam
from snapstore._log.checked import CheckedLog, LogPosition
from snapstore._log.fstype import check_filesystem
from snapstore._log.lock import WriterLock, refuse_second_name
from snapstore._log.record import LogRecord, utc_from_iso
from snapstore._log.synced import BASELINE_SLOT, SNAPSHOT_SLOT
from snapstore._names import group_key
from snapstore._records import Entry, Origin
from snapstore._values import loads, same_content
from snapstore.backends.local.checkpoint import IndexImage, write_checkpoint
from snapstore.backends.local.disk_index import DiskIndex, open_index
from snapstore.backends.local.layout import (
    BASELINE_LOG,
    HISTORY_DIR,
    LOCK_FILE,
    MARKER,
    QUARANTINE_DIR,
    SNAPSHOT_LOG,
    STORE_FORMAT,
)
from snapstore.backends.local.store_index import Found, StoreIndex, covered_position
from snapstore.snapshot import stored_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from snapstore._options import Options
    from snapstore.snapshot import NormalizedSnapshot

# Files a store may hold before its marker exists (a creation that crashed).
_PRE_MARKER = {LOCK_FILE}
# An open that finds the index file this far behind the log (about 2,700
# snapshots) adds the missing rows to the file in bulk; less is read into
# memory, and added to the file at the next flush.
BULK_CATCH_UP_BYTES = 1 << 20
# How many snapshots a handle holds in memory before it adds them to the
# index file (and at close): one transaction for many saves.
FLUSH_ROWS = 1_000
_T = TypeVar("_T")


class LocalStore:
    """One open handle on a store directory: its two logs and their indices.

    Lookups go to the index file (``index.sqlite``) for the snapshots it
    covers, and to an in-memory index (the *tail*) for those after: the
    records this handle took from the log since, which it adds to the file
    every ``FLUSH_ROWS`` and at close. Each answer takes in what other
    handles committed first (a stat when nothing changed). Verification,
    repair and the store's histories are added by
    ``backend.LocalSnapshotBackend``, which sits above the checks that
    themselves open a ``LocalStore``.
    """

    def __init__(
        self,
        root: Path,
        options: Options,
        *,
        checkpoint_every: int,
        strict: bool = False,
    ) -> None:
        self.location = str(root)
        self.path = root
        # The directory the path leads to, resolved once: the handle's lock,
        # logs, quarantine and histories stay in that one store even if a
        # symlink on the way is later pointed elsewhere (its lock would no
        # longer guard the logs it reached).
        self.root = Path(os.path.realpath(root))
        self.options = options
        self._checkpoint_every = checkpoint_every
        self._strict = strict
        read_only = options.read_only
        self._fs = seam.current()
        self._checkpoint_lock = threading.Lock()
        self._retry_after = 0  # the seq after which a failed automatic checkpoint is retried
        self._baselines: dict[str, int] = {}
        # The origin of each copy in the log -> its seq: read from the whole
        # log the first time a copy is saved or asked for (see _origin_seqs),
        # kept current from then on as records are read.
        self._origins: dict[Origin, int] | None = None
        self._origins_lock = threading.Lock()
        self._log_path = self.root / SNAPSHOT_LOG
        with (
            read_only_hint(read_only),
            storage_errors(self.root),
            contextlib.ExitStack() as opened,
        ):
            check_filesystem(self.root, strict=strict)
            if read_only:
                self._find_marker()
            else:
                self._fs.make_dirs(self.root)
                self._open_marker()
            for log in (SNAPSHOT_LOG, BASELINE_LOG):
                refuse_second_name(self.root / log)
            # The caller gets no handle to close if opening fails: release what
            # was opened so far (a log that fails to open closes its own file).
            self._lock = WriterLock(
                self.root / LOCK_FILE, self._fs, options.lock_timeout, create=not read_only
            )
            opened.callback(_close_quietly, self._lock)
            if not read_only:
                for directory in (self.root, self.root / HISTORY_DIR, self.root / QUARANTINE_DIR):
                    self._fs.remove_stale_temps(directory)
            disk = self._open_index()
            if disk is not None:
                opened.callback(disk.close)
            self._index = StoreIndex(disk, self._log_path)
            # Read from where the index file ends; from the start if the log
            # is replaced (repair), or is not the one the file was checked against.
            self._snapshots = self._open_log(
                SNAPSHOT_LOG, self._index_snapshot, self._reset_snapshots, self._index.start
            )
            opened.callback(_close_quietly, self._snapshots)
            self._baseline_log = self._open_log(
                BASELINE_LOG, self._index_pin, self._baselines.clear, None
            )
            self.identity = store_identity(self.root)
            # The automatic checkpoint counts the saves this handle sees from
            # now: a short process never writes one.
            self._checkpointed = self._snapshots.last_seq
            opened.pop_all()  # opened: the handle owns its files now

    # -- opening -------------------------------------------------------------

    def _open_index(self) -> DiskIndex | None:
        """The index file, brought up to date in bulk if it is far behind the log.

        None for a handle that answers from memory alone: read-only with no
        usable file (a read-only open writes nothing, so it cannot mend one).
        """
        writable = not self.options.read_only
        disk = open_index(
            self.root, self._log_path, writable=writable, busy_timeout=self.options.lock_timeout
        )
        if disk is None or not writable:
            return disk
        try:
            behind = self._log_path.stat().st_size - disk.covered.position.end
        except FileNotFoundError:
            return disk  # a new store: no log yet
        if behind >= BULK_CATCH_UP_BYTES:
            # In "fsync" mode the log is synced first: records another process
            # wrote and died before syncing must be durable before the index
            # names them (as the log's own catch-up does). Left behind on
            # failure: this handle then reads the rest of the log into memory.
            try:
                disk.catch_up(self._fs, self._log_path, sync=self.options.durability == "fsync")
            except sqlite3.Error:
                pass
            except BaseException:  # the log failed: no handle, so nothing left open
                disk.close()
                raise
        return disk

    def _find_marker(self) -> None:
        """For a read-only open: the store must exist; nothing is created."""
        if not self.root.is_dir():
            raise StorageError(
                errno.ENOENT,
                f"{self.root}: no such directory (a read-only open does not create a store)",
            )
        if not (self.root / MARKER).exists():
            raise NotAStoreError(f"{self.root} is not a snapstore store (no {MARKER} file)")
        problem = marker_problem(self.root)
        if problem is not None:
            raise NotAStoreError(problem)

    def _open_marker(self) -> None:
        marker = self.root / MARKER
        if not marker.exists():
            foreign = [
                name
                for name in sorted(p.name for p in self.root.iterdir())
                if name not in _PRE_MARKER and not seam.is_temp_name(name)
            ]
            # A peer creating the store at the same time may publish its marker
            # between our look for it and the listing. A creator makes the
            # marker before any file the listing counts (its lock and temp
            # files are not counted), so files seen while a marker exists by
            # now are that peer's store, not a foreign directory.
            if foreign and not marker.exists():
                raise NotAStoreError(
                    f"{self.root} is not a snapstore store (no {MARKER} file) but holds "
                    f"{', '.join(foreign[:5])}; pick an empty directory, or migrate an "
                    "older layout with SnapshotStore.import_legacy()"
                )
            document = {
                "format": STORE_FORMAT,
                "created_at": datetime.now(UTC).isoformat(),
                "created_by": "snapstore",
                "identity": uuid.uuid4().hex,
            }
            # Exclusive: two processes creating one store both end up with one
            # marker, the first one's. False (a peer's came first) is no error:
            # the marker read below is the one every opener reads.
            self._fs.create_exclusive(marker, orjson.dumps(document, option=orjson.OPT_INDENT_2))
        problem = marker_problem(self.root)
        if problem is not None:
            raise NotAStoreError(problem)

    def _open_log(
        self,
        name: str,
        on_record: Any,
        on_reset: Any,
        start: LogPosition | None,
    ) -> CheckedLog:
        return CheckedLog(
            self.root / name,
            fs=self._fs,
            lock=self._lock,
            quarantine_dir=self.root / QUARANTINE_DIR,
            durability=self.options.durability,
            on_record=on_record,
            on_reset=on_reset,
            resolve=self._stored_already if name == SNAPSHOT_LOG else None,
            start=start,
            mark_slot=SNAPSHOT_SLOT if name == SNAPSHOT_LOG else BASELINE_SLOT,
            read_only=self.options.read_only,
        )

    # -- the index, fed by the logs ---------------------------------------------

    def _index_snapshot(self, record: LogRecord) -> None:
        try:
            self._index.add(record)
        except (KeyError, TypeError) as exc:
            # A line with a valid checksum that is not a snapshot: written by
            # something other than snapstore.
            raise CorruptionError(
                self._log_path, record.offset, None, f"not a snapshot record: {exc}"
            ) from None
        origins = self._origins
        if origins is not None and record.key is not None:
            origin = Origin.of_key(record.key)
            if origin is not None:
                origins[origin] = record.seq

    def _reset_snapshots(self) -> None:
        """The log was replaced (repair): what was read of the old one is forgotten."""
        self._index.reset()
        self._origins = None

    def _origin_seqs(self) -> dict[Origin, int]:
        """The copies in the log by origin, read from the whole log once per handle.

        The map is published before the log is scanned, so that a record read
        meanwhile (by another thread's save or refresh) is added to it too; the
        scan covers everything read before that. A copy saved later finds
        every earlier one here: its save takes in the log under the writer
        lock, adding to the map, before it looks.
        """
        with self._origins_lock:
            origins = self._origins
            if origins is None:
                origins = self._origins = {}
                for record in self._snapshots.scan(self._snapshots.position.end):
                    origin = None if record.key is None else Origin.of_key(record.key)
                    if origin is not None:
                        origins[origin] = record.seq
            return origins

    def _index_pin(self, record: LogRecord) -> None:
        data = record.data
        self._baselines[group_key(data["stage"], data["comparison_key"])] = data["snapshot_seq"]

    def _stored_already(
        self, entry: Entry, staged: list[LogRecord], read: Callable[[int, int], LogRecord]
    ) -> LogRecord | None:
        """The record that makes the entry a retry: a copy of its origin, or its latest version.

        A copy (an entry with a key) is the same as a record with its key,
        whatever their contents; anything else is a retry of the latest
        version of its ``(run_id, stage)`` only if the content is identical.
        """
        if entry.key is not None:
            stored = next((record for record in staged if record.key == entry.key), None)
            origin = Origin.of_key(entry.key)
            seq = None if stored is not None or origin is None else self._origin_seqs().get(origin)
            if seq is not None:
                stored = self._lookup(lambda: self._index.place(seq), read)
            return stored
        payload = loads(entry.data_json)
        run_id, stage = payload["run_id"], payload["stage"]
        latest = next(
            (
                record
                for record in reversed(staged)
                if record.data["run_id"] == run_id and record.data["stage"] == stage
            ),
            None,
        )
        if latest is None:
            latest = self._lookup(lambda: self._index.latest(run_id, stage), read)
            if latest is None:
                return None  # a new key: nothing to compare
        return latest if same_content(latest.data, entry.data_json) else None

    # -- the store: SnapshotBackend, less what backend.py adds ------------------
    #
    # Each answer takes in what other handles committed first. Reads of
    # snapshots need only the snapshot log: no stat of the pin log on their
    # hot path. Each lookup takes the index lock once, for the seq and its
    # place together.

    def save(
        self,
        snap: NormalizedSnapshot,  # noqa: ARG002 - the payload holds all a line needs
        payload: bytes,
        origin: Origin | None = None,
    ) -> NormalizedSnapshot:
        self._check_writable()
        if origin is not None:
            # The first copy reads the whole log for the copies in it: before
            # the writer lock is taken, not while every writer waits.
            self._origin_seqs()
        key = None if origin is None else origin.key
        (record,) = self._snapshots.append([Entry(payload, key)])
        self._maybe_flush()
        self._maybe_checkpoint()
        return _snapshot_from(record)

    def get_latest(self, run_id: str, stage: str) -> NormalizedSnapshot | None:
        self._refresh_snapshots()
        return self._find(lambda: self._index.latest(run_id, stage))

    def get_by_seq(self, seq: int) -> NormalizedSnapshot | None:
        # Refreshed on a miss only: the snapshot a seq names never changes.
        found = self._stored(seq)
        if found is None:
            self._snapshots.refresh()
            found = self._stored(seq)
        return found

    def versions(self, run_id: str, stage: str) -> list[NormalizedSnapshot]:
        return self._read_all(self._seqs(run_id, stage))

    def snapshots(self, run_id: str | None, stage: str | None) -> Iterator[NormalizedSnapshot]:
        if run_id is None and stage is None:
            self._refresh_snapshots()
            end = self._snapshots.position.end
            return (_snapshot_from(record) for record in self._snapshots.scan(end))
        return iter(self._read_all(self._seqs(run_id, stage)))

    def count(self) -> int:
        self._refresh_snapshots()
        return self._index.count()

    def copies(self, store: str) -> dict[int, int]:
        origins = self._origin_seqs()
        self._refresh_snapshots()  # adds the copies committed since to the map
        return {origin.seq: seq for origin, seq in list(origins.items()) if origin.store == store}

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int | None
    ) -> NormalizedSnapshot | None:
        self._refresh_snapshots()

        return self._find(
            lambda: self._index.previous_comparable(stage, comparison_key, run_id, below)
        )

    def baseline(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None:
        # Another handle may have pinned (or re-pinned) the group since we last looked.
        self.refresh()
        return self._pinned(stage, comparison_key)

    def baselines(self) -> list[NormalizedSnapshot]:
        self.refresh()
        pinned = [self._stored(seq) for seq in list(self._baselines.values())]
        return sorted(
            (snap for snap in pinned if snap is not None),
            key=lambda snap: (snap.stage, snap.comparison_key or ""),
        )

    def establish_baseline(
        self, snap: NormalizedSnapshot, payload: bytes | None
    ) -> NormalizedSnapshot:
        assert snap.comparison_key is not None
        self._check_writable()
        # Decided under the writer lock, after reading every pin committed so
        # far: processes racing on an empty group all get the same answer.
        with self._lock.threads, self._lock.processes:
            self._baseline_log.catch_up_locked()
            self._snapshots.catch_up_locked()
            existing = self._pinned(snap.stage, snap.comparison_key)
            if existing is not None:
                return existing
            saved = snap if payload is None else self.save(snap, payload)
            self._append_pin(saved, "established")
            return saved

    def pin_baseline(self, snap: NormalizedSnapshot) -> None:
        self._check_writable()
        with self._lock.threads, self._lock.processes:
            self._snapshots.catch_up_locked()
            self._append_pin(snap, "set")

    def _append_pin(self, snap: NormalizedSnapshot, action: str) -> None:
        stored = self._stored(snap.snapshot_seq) if snap.snapshot_seq is not None else None
        if stored is None or (stored.run_id, stored.stage) != (snap.run_id, snap.stage):
            raise InvalidInputError(
                f"snapshot {snap.run_id}:{snap.stage} seq {snap.snapshot_seq} is not stored "
                f"in {self.root}; save it first"
            )
        pin = {
            "stage": stored.stage,
            "comparison_key": stored.comparison_key,
            "snapshot_seq": stored.snapshot_seq,
            "action": action,
        }
        self._baseline_log.append([Entry(orjson.dumps(pin), None)])

    def _pinned(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None:
        seq = self._baselines.get(group_key(stage, comparison_key))
        return None if seq is None else self._stored(seq)

    def _stored(self, seq: int) -> NormalizedSnapshot | None:
        """The snapshot ``seq`` as this handle's indices hold it (no look at the log)."""
        return self._find(lambda: self._index.place(seq))

    def _find(self, ask: Callable[[], Found | None]) -> NormalizedSnapshot | None:
        record = self._lookup(ask, self._snapshots.read)
        return None if record is None else _snapshot_from(record)

    def _lookup(
        self, ask: Callable[[], Found | None], read: Callable[[int, int], LogRecord]
    ) -> LogRecord | None:
        """The record ``ask()`` finds in the indices, read from the log with ``read``.

        The index file has no checksums of its own: the line it points at is
        checked to be the record it names (the line's own checksum, and its
        seq). A file that fails that is dropped, and the lookup made again
        from memory, where the log itself is read.
        """
        found = self._ask(ask)
        if found is None:
            return None
        seq, offset, length = found
        try:
            record = read(offset, length)
        except CorruptionError:
            if not self._index.uses_file:
                raise
            record = None
        if record is not None and record.seq == seq:
            return record
        if not self._index.uses_file:
            raise CorruptionError(
                self._log_path, offset, None, f"seq {seq} is not at offset {offset}"
            )
        self._index.drop_file(self._snapshots.scan)
        return self._lookup(ask, read)

    def _seqs(self, run_id: str | None, stage: str | None) -> list[int]:
        self._refresh_snapshots()
        return self._ask(lambda: self._index.seqs(run_id, stage))

    def _ask(self, query: Callable[[], _T]) -> _T:
        """``query()`` of the indices; asked again of memory alone if the index file fails."""
        try:
            return query()
        except sqlite3.Error:
            self._index.drop_file(self._snapshots.scan)
            return query()

    def refresh(self) -> None:
        self._refresh_snapshots()
        self._baseline_log.refresh()

    def _refresh_snapshots(self) -> None:
        self._snapshots.refresh()
        self._maybe_flush()

    def checkpoint(self) -> None:
        self._check_writable()
        with self._checkpoint_lock:
            if not self._write_checkpoint():
                # repair replaced the log since this handle read it: take in
                # the new file, and checkpoint that one.
                self._snapshots.refresh()
                self._write_checkpoint()

    def close(self, *, finish: bool = True) -> None:
        # Every file is released even when closing another one fails
        # (close(2) releases the descriptor even when it reports EIO).
        with storage_errors(self.root), contextlib.ExitStack() as closing:
            closing.callback(self._lock.close)
            closing.callback(self._baseline_log.close)
            closing.callback(self._snapshots.close)
            closing.callback(self._index.close)
            if finish and not self.options.read_only and not self._failed():
                self._index.flush()

    # -- internals -----------------------------------------------------------

    def _failed(self) -> bool:
        return self._snapshots.failed or self._baseline_log.failed

    def _check_writable(self) -> None:
        # A failed sync of either log leaves the whole handle refusing writes,
        # checkpoints included: the device just lost data it had accepted, and
        # one rule ("reopen the store") is easier to act on than one per file.
        self._snapshots.check_writable()
        self._baseline_log.check_writable()

    def _maybe_flush(self) -> None:
        if self._index.held >= FLUSH_ROWS and not self.options.read_only and not self._failed():
            self._index.flush()

    def _maybe_checkpoint(self) -> None:
        """Write the checkpoint if it is due; called after a save was committed.

        The save is durable and other handles already see it, so a failing
        checkpoint must not make it look failed (a caller would retry a save
        that is stored): it is reported as a warning and tried again an
        interval later. The indices are a cache; the log has every record.
        """
        due = checkpoint_interval(self._index.count(), self._checkpoint_every)
        counted_from = max(self._checkpointed, self._retry_after)
        if self._snapshots.last_seq - counted_from < due:
            return
        if self._checkpoint_lock.acquire(blocking=False):  # one thread at a time is enough
            try:
                self._write_checkpoint()
            except StorageError as exc:
                self._retry_after = self._snapshots.last_seq
                warnings.warn(
                    f"{self.root}: the automatic checkpoint failed ({exc}); every record is "
                    "in the log, and the checkpoint is tried again at a later save",
                    CheckpointWarning,
                    stacklevel=4,
                )
            finally:
                self._checkpoint_lock.release()

    def _write_checkpoint(self) -> bool:
        """Checkpoint the index; False if it describes a log that was replaced since."""
        index = self._index.image()
        # The position is read off the index itself: the log's position and
        # the index advance one after the other, and an interrupt may fall
        # between, so only the index can say exactly which records it holds.
        image = IndexImage(covered_position(index), index, dict(self._baselines))
        with storage_errors(self.root):
            if not write_checkpoint(self._fs, self.root, self.root / SNAPSHOT_LOG, image):
                return False
        self._checkpointed = image.position.seq
        return True

    def _read_all(self, seqs: list[int]) -> list[NormalizedSnapshot]:
        snaps = [self._stored(seq) for seq in seqs]
        return [snap for snap in snaps if snap is not None]


def store_identity(root: Path) -> str:
    """The identity of the store in ``root``: its marker's, or the marker's digest.

    A marker written before stores had identities is never rewritten: the
    digest of its bytes (which hold its creation time to the microsecond)
    serves, and is as stable as the marker.
    """
    text = (root / MARKER).read_bytes()
    identity = orjson.loads(text).get("identity")
    return identity if isinstance(identity, str) else hashlib.sha256(text).hexdigest()[:32]


def marker_problem(root: Path) -> str | None:
    """Why the store marker of ``root`` cannot be used, or None when it names our format."""
    marker = root / MARKER
    try:
        document = orjson.loads(marker.read_bytes())
    except orjson.JSONDecodeError:
        what = "is not a JSON document"
    else:
        found = document.get("format") if isinstance(document, dict) else None
        # An int, not just equal to one: true == 1 in Python, and snapstore
        # never writes anything but the int.
        if type(found) is int and found == STORE_FORMAT:
            return None
        what = (
            f"names store format {orjson.dumps(found).decode()}"
            if isinstance(document, dict) and "format" in document
            else "names no store format"
        )
    return (
        f"{marker} {what}; this snapstore reads format {STORE_FORMAT}. "
        f"If the file was damaged, restore it from a backup, or write "
        f'{{"format": {STORE_FORMAT}}} into it: the logs do not depend on its other fields'
    )


def checkpoint_interval(count: int, every: int) -> int:
    """How many saves a store of ``count`` snapshots makes between two checkpoints.

    Every ``every`` saves, and never more often than every 5% of the log: a
    checkpoint rewrites one row per snapshot, so a fixed interval would make
    the average save cost grow with the store.
    """
    return max(every, count // 20)


def _close_quietly(opened: WriterLock | CheckedLog) -> None:
    # Releasing after a failure: the first error is the one to report.
    with contextlib.suppress(OSError):
        opened.close()


def _snapshot_from(record: LogRecord) -> NormalizedSnapshot:
    # The record's data was decoded for this call alone: its dicts are nobody else's.
    return stored_snapshot(record.seq, utc_from_iso(record.ts), record.data)
