"""Durable before visible: a handle takes in other writers' lines only once they are durable.

A writer killed between its write and its data sync leaves complete lines in
the page cache that a power cut would remove. Another handle must not count,
return, pin or acknowledge them (as a retry) before they are on stable
storage: it trusts the synced mark its writers publish, or syncs the file
itself. The crash-state proof of the same breaks is in tests/crash.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import pytest

from snapstore import (
    DurabilityError,
    IterationHistory,
    NormalizedSnapshot,
    SnapshotStore,
)
from snapstore._log.lock import WriterLock
from snapstore._log.seam import FileSystem, installed
from snapstore._log.synced import SyncedMark
from snapstore.testing import FaultInjector

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SNAP = NormalizedSnapshot("run-1", "train", metrics={"auc": 0.8}, config={"lr": 0.1})


def died_in_sync(write: object) -> None:
    """Run a write whose data sync never happens, as for a writer killed inside it."""
    assert callable(write)
    with pytest.raises(DurabilityError):
        write()


def dying_writer() -> FaultInjector:
    """A file system on which every data sync fails: the writer's lines stay unsynced."""
    return FaultInjector(1, only={"sync"}, error=errno.EIO, persistent=True)


def syncs_of(fs: FaultInjector) -> int:
    return fs.calls.count("sync")


# -- the mark --------------------------------------------------------------------


@pytest.fixture
def lock(tmp_path: Path) -> Iterator[WriterLock]:
    opened = WriterLock(tmp_path / ".lock", FileSystem(), 1.0)
    yield opened
    opened.close()


def test_a_mark_covers_what_was_published_for_that_file_only(lock: WriterLock) -> None:
    mark = SyncedMark(FileSystem(), lock)
    assert not mark.covers((1, 2), 0)  # never published
    with lock:
        mark.publish((1, 2), 100)
    assert mark.covers((1, 2), 100)
    assert mark.covers((1, 2), 40)
    assert not mark.covers((1, 2), 101)
    assert not mark.covers((1, 3), 10)  # another inode: a replaced log
    with lock:
        mark.publish((1, 2), 30)  # lowered before a truncation
    assert not mark.covers((1, 2), 31)


def test_marks_of_two_logs_sharing_a_lock_file_are_independent(lock: WriterLock) -> None:
    first, second = SyncedMark(FileSystem(), lock, 0), SyncedMark(FileSystem(), lock, 1)
    with lock:
        first.publish((1, 2), 100)
        second.publish((1, 3), 7)
    assert first.covers((1, 2), 100)
    assert second.covers((1, 3), 7)
    assert not second.covers((1, 3), 8)


@pytest.mark.parametrize("damage", ["flipped", "cut", "zeros"])
def test_a_damaged_mark_covers_nothing(lock: WriterLock, damage: str) -> None:
    # After a power loss the unsynced lock file may hold anything: a mark that
    # does not check out claims nothing, which costs a sync, never a record.
    mark = SyncedMark(FileSystem(), lock)
    with lock:
        mark.publish((1, 2), 100)
    content = bytearray(lock.path.read_bytes())
    if damage == "flipped":
        content[17] ^= 0x01
    elif damage == "cut":
        del content[20:]
    else:
        content[:] = bytes(len(content))
    lock.path.write_bytes(bytes(content))
    assert not mark.covers((1, 2), 1)


# -- taking in lines another writer never synced ----------------------------------


def test_a_reader_syncs_lines_whose_writer_died_before_its_sync(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    counting = FaultInjector()
    with installed(counting), IterationHistory(path) as reader:
        assert len(reader) == 0
        with installed(dying_writer()):
            writer = IterationHistory(path)
        died_in_sync(lambda: writer.append({"loss": 0.5}))
        writer.close()
        counting.arm(None)
        # The line is complete in the page cache: before it counts, it is synced.
        assert len(reader) == 1
        assert syncs_of(counting) == 1
        counting.arm(None)
        assert reader.get(1).data == {"loss": 0.5}
        assert syncs_of(counting) == 0  # taken in already: nothing new to sync


def test_lines_a_writer_synced_are_taken_in_without_a_sync(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    counting = FaultInjector()
    with installed(counting), IterationHistory(path) as reader:
        with installed(FileSystem()), IterationHistory(path) as writer:
            writer.append({"loss": 0.5})
            writer.extend([{"loss": 0.4}, {"loss": 0.3}])
        counting.arm(None)
        assert [r.seq for r in reader.load_recent(3)] == [1, 2, 3]
        assert syncs_of(counting) == 0


def test_a_keyed_retry_is_acknowledged_only_once_the_first_attempt_is_durable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.jsonl"
    with installed(dying_writer()):
        first = IterationHistory(path)
    died_in_sync(lambda: first.append({"step": 1}, key="step-1"))
    first.close()
    counting = FaultInjector()
    with installed(counting), IterationHistory(path) as retry:  # counted from the open on
        record = retry.append({"step": 1}, key="step-1")
        assert record.seq == 1
        assert syncs_of(counting) >= 1
    assert path.read_bytes().count(b"\n") == 1  # found, not written twice


def test_a_retried_save_is_acknowledged_only_once_the_first_attempt_is_durable(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    SnapshotStore(root).close()
    counting = FaultInjector()
    with installed(counting), SnapshotStore(root) as retry:
        with installed(dying_writer()):
            first = SnapshotStore(root)
        died_in_sync(lambda: first.save_snapshot(SNAP))
        first.close()
        counting.arm(None)
        saved = retry.save_snapshot(SNAP)  # identical content: the first attempt's record
        assert saved.snapshot_seq == 1
        assert syncs_of(counting) == 1  # its sync, not a write of our own
        assert "write" not in counting.calls


def test_a_baseline_is_pinned_to_a_snapshot_only_once_it_is_durable(tmp_path: Path) -> None:
    root = tmp_path / "store"
    SnapshotStore(root).close()
    counting = FaultInjector()
    with installed(counting), SnapshotStore(root) as pinner:
        with installed(dying_writer()):
            first = SnapshotStore(root)
        died_in_sync(lambda: first.save_snapshot(SNAP))
        first.close()
        counting.arm(None)
        found = pinner.get("run-1", "train")
        assert found is not None
        assert syncs_of(counting) == 1  # synced before it was returned
        baseline = pinner.get_or_establish_baseline(found)
        assert baseline.snapshot_seq == 1
