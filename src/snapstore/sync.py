"""Copying one store into another, exactly once: snapshots, baseline pins and histories.

``SnapshotStore.sync_from(source)`` (and ``snapstore sync SRC DST``) copies
what the destination lacks, in three steps:

1. **Snapshots**, in the source's seq order. The destination gives each copy
   its own seq and time and stores the copy's origin (the source store's
   identity and seq) in the same commit, so a copy and the fact that it was
   made can never be apart. A copy whose origin is stored already is not
   made again: a sync interrupted at any point and run again copies nothing
   twice and loses nothing.
2. **Baseline pins**: each group the source has pinned is pinned in the
   destination to the copy of the source's baseline, if the destination has
   no baseline for that group. A destination pin on anything else is kept,
   and reported as a conflict: whoever pinned it there (a person, an earlier
   sync of a baseline the source has moved since) decides, by pinning again.
3. **Histories**: every record is appended to the history of that name,
   under its own key, or, if it has none, under the key
   ``"<source identity>:<seq>"``. A key stored already is not written again
   (exactly once, as for any keyed append); one stored with other data is
   reported as a conflict and left as it is.

Snapshots and records committed to the source while a sync runs are copied
by this sync or the next. A store cannot be synced into itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from snapstore._errors import InvalidInputError
from snapstore._progress import TaskProgress
from snapstore._records import Entry, Origin
from snapstore._values import encode_data, same_content
from snapstore.snapshot import encode_payload

if TYPE_CHECKING:
    from snapstore.backends.base import HistoryBackend, SnapshotBackend
    from snapstore.snapshot import NormalizedSnapshot

# How many history records one append of a sync carries: one commit each.
BATCH_RECORDS = 1_000


@dataclass(frozen=True, slots=True)
class BaselineConflict:
    """A group pinned to different snapshots: the destination's pin was kept."""

    stage: str
    comparison_key: str
    source_seq: int
    """The source's baseline (its seq in the source)."""
    destination_seq: int
    """The destination's baseline, kept (its seq in the destination)."""


@dataclass(frozen=True, slots=True)
class RecordConflict:
    """A history record whose key the destination holds with other data: left as it was."""

    history: str
    key: str
    source_seq: int


@dataclass(slots=True)
class SyncReport:
    """What one sync copied, found copied already, and could not copy."""

    source: str
    destination: str
    snapshots_copied: int = 0
    snapshots_present: int = 0
    baselines_pinned: int = 0
    baselines_present: int = 0
    records_copied: int = 0
    records_present: int = 0
    baseline_conflicts: list[BaselineConflict] = field(default_factory=list)
    record_conflicts: list[RecordConflict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything the source holds is in the destination as the source has it."""
        return not self.baseline_conflicts and not self.record_conflicts


def sync_stores(
    source: SnapshotBackend, destination: SnapshotBackend, *, max_record_bytes: int
) -> SyncReport:
    """Copy into ``destination`` what it lacks of ``source`` (see the module's text)."""
    if source.identity == destination.identity:
        raise InvalidInputError(
            f"{source.location} and {destination.location} are one store: nothing to sync"
        )
    report = SyncReport(source.location, destination.location)
    copier = _SnapshotCopier(source, destination, max_record_bytes, report)
    with TaskProgress("copying snapshots", source.count()) as progress:
        for done, snap in enumerate(source.snapshots(None, None), start=1):
            if snap.snapshot_seq in copier.copies:
                report.snapshots_present += 1
            else:
                copier.copy(snap)
            progress.advance_to(done)
    for pinned in source.baselines():
        _sync_pin(pinned, copier, report)
    names = source.history_names()
    with TaskProgress("copying histories", len(names)) as progress:
        for done, name in enumerate(names, start=1):
            _sync_history(source, destination, name, max_record_bytes, report)
            progress.advance_to(done)
    return report


class _SnapshotCopier:
    """Copies snapshots of the source that the destination lacks, remembering both seqs."""

    def __init__(
        self,
        source: SnapshotBackend,
        destination: SnapshotBackend,
        max_record_bytes: int,
        report: SyncReport,
    ) -> None:
        self.source = source
        self.destination = destination
        self.copies = destination.copies(source.identity)  # source seq -> destination seq
        self._max_record_bytes = max_record_bytes
        self._report = report

    def copy(self, snap: NormalizedSnapshot) -> int:
        """The destination's seq of the copy of ``snap``, made now if there is none."""
        seq = snap.snapshot_seq
        assert seq is not None
        copied = self.copies.get(seq)
        if copied is not None:
            return copied
        unsaved = dataclasses.replace(snap, snapshot_seq=None, created_at=None)
        payload = encode_payload(unsaved, self._max_record_bytes)
        saved = self.destination.save(unsaved, payload, Origin(self.source.identity, seq))
        assert saved.snapshot_seq is not None
        self.copies[seq] = saved.snapshot_seq
        self._report.snapshots_copied += 1
        return saved.snapshot_seq


def _sync_pin(pinned: NormalizedSnapshot, copier: _SnapshotCopier, report: SyncReport) -> None:
    destination = copier.destination
    copy = copier.copy(pinned)  # a snapshot saved after the snapshot step began, perhaps
    assert pinned.comparison_key is not None
    current = destination.baseline(pinned.stage, pinned.comparison_key)
    if current is None:
        copy_snap = destination.get_by_seq(copy)
        assert copy_snap is not None
        current = destination.establish_baseline(copy_snap, None)
        if current.snapshot_seq == copy:
            report.baselines_pinned += 1
            return
    if current.snapshot_seq == copy:
        report.baselines_present += 1
        return
    assert current.snapshot_seq is not None
    assert pinned.snapshot_seq is not None
    report.baseline_conflicts.append(
        BaselineConflict(
            pinned.stage, pinned.comparison_key, pinned.snapshot_seq, current.snapshot_seq
        )
    )


def _sync_history(
    source: SnapshotBackend,
    destination: SnapshotBackend,
    name: str,
    max_record_bytes: int,
    report: SyncReport,
) -> None:
    reader = source.open_history(name)
    writer = destination.open_history(name)
    try:
        batch: list[tuple[int, Entry]] = []
        for record in reader.records():
            key = record.key if record.key is not None else Origin(source.identity, record.seq).key
            entry = Entry(encode_data(record.data, max_record_bytes), key)
            batch.append((record.seq, entry))
            if len(batch) == BATCH_RECORDS:
                _append_copies(writer, name, batch, report)
                batch = []
        if batch:
            _append_copies(writer, name, batch, report)
    finally:
        reader.close()
        writer.close()


def _append_copies(
    writer: HistoryBackend, name: str, batch: list[tuple[int, Entry]], report: SyncReport
) -> None:
    before = writer.last_seq
    stored = writer.append([entry for _, entry in batch])
    for (source_seq, entry), record in zip(batch, stored, strict=True):
        if not same_content(record.data, entry.data_json):
            assert entry.key is not None  # an entry without a key is always written
            report.record_conflicts.append(RecordConflict(name, entry.key, source_seq))
        elif record.seq > before:
            report.records_copied += 1
        else:
            report.records_present += 1
