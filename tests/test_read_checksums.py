"""Every read of a record checks the line's checksum, wherever the reader learned its place.

A reader finds a record through an index: the one built while the log was
replayed, or one loaded from a checkpoint. Either way the line it then reads
may have changed on disk since (a bad sector, a stray write), and a changed
byte that leaves valid JSON is caught by the checksum alone. Each test flips
one byte of a stored value, keeping the line valid JSON of the same length,
and every read path must refuse the record with CorruptionError rather than
return the altered value.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from snapstore import CorruptionError, IterationHistory, NormalizedSnapshot, SnapshotStore

if TYPE_CHECKING:
    from pathlib import Path

MARK = "abcdefgh"  # the stored value a flip alters: "abcdefgh" becomes "abcdffgh"


def flip_inside_value(path: Path, occurrence: int) -> None:
    """Change one letter of the ``occurrence``-th MARK in ``path``, in place.

    In place (same inode, same size): an open handle sees no replaced or
    grown file, so nothing but the checksum tells it the line changed.
    """
    data = path.read_bytes()
    at = -1
    for _ in range(occurrence + 1):
        at = data.index(MARK.encode(), at + 1)
    at += 4  # inside the value: not the checksum, not a newline, not a quote
    with path.open("r+b") as file:
        file.seek(at)
        file.write(bytes([data[at] + 1]))


# -- SnapshotStore ----------------------------------------------------------------

SNAPS = [
    NormalizedSnapshot("run-1", "TRAINING", metrics={"auc": 0.7}, data={"note": MARK}),
    NormalizedSnapshot("run-2", "TRAINING", metrics={"auc": 0.8}, data={"note": "other"}),
    NormalizedSnapshot("run-3", "SCORING", metrics={"auc": 0.9}, data={"note": "later"}),
]
DAMAGED = SNAPS[0]  # seq 1, never the last line: a checkpoint's own line stays intact
GROUP_KEY = DAMAGED.with_comparison_key().comparison_key or ""

StoreRead = Callable[[SnapshotStore], Any]
STORE_READS: dict[str, StoreRead] = {
    "get": lambda store: store.get(DAMAGED.run_id, DAMAGED.stage),
    "get_by_seq": lambda store: store.get_by_seq(1),
    "versions": lambda store: store.versions(DAMAGED.run_id, DAMAGED.stage),
    "snapshots": lambda store: list(store.snapshots()),
    "snapshots_of_run": lambda store: list(store.snapshots(run_id=DAMAGED.run_id)),
    "snapshots_of_stage": lambda store: list(store.snapshots(stage=DAMAGED.stage)),
    "find_previous_comparable": lambda store: store.find_previous_comparable(SNAPS[1]),
    "baseline": lambda store: store.baseline(DAMAGED.stage, GROUP_KEY),
    # A retry of the latest version reads that version to compare contents.
    "save_same_content": lambda store: store.save_snapshot(DAMAGED),
    "to_arrow": lambda store: store.to_arrow(),
}


def fill(root: Path) -> None:
    with SnapshotStore(root) as store:
        saved = [store.save_snapshot(snap) for snap in SNAPS]
        store.set_baseline(saved[0])
    assert (root / "snapshots.jsonl").read_bytes().count(MARK.encode()) == 1


@pytest.mark.parametrize("read", STORE_READS)
def test_a_store_read_through_the_index_built_by_replay_checks_the_line(
    tmp_path: Path, read: str
) -> None:
    root = tmp_path / "s"
    fill(root)
    with SnapshotStore(root) as store:
        STORE_READS[read](store)  # the intact record reads back
        flip_inside_value(root / "snapshots.jsonl", 0)
        with pytest.raises(CorruptionError):
            STORE_READS[read](store)


@pytest.mark.usefixtures("index_file_at_every_step")
@pytest.mark.parametrize("read", STORE_READS)
def test_a_store_read_through_its_index_file_checks_the_line(tmp_path: Path, read: str) -> None:
    root = tmp_path / "s"
    fill(root)
    assert (root / "index.sqlite").exists()
    flip_inside_value(root / "snapshots.jsonl", 0)
    # Replaying this log reads every line and refuses to open: an open that
    # succeeds took the places from the index file and has not read the line.
    bare = tmp_path / "bare"
    shutil.copytree(root, bare)
    (bare / "index.sqlite").unlink()
    with pytest.raises(CorruptionError):
        SnapshotStore(bare)
    with SnapshotStore(root) as store:
        assert len(store) == len(SNAPS)
        with pytest.raises(CorruptionError):
            STORE_READS[read](store)


# -- IterationHistory --------------------------------------------------------------

HistoryRead = Callable[[IterationHistory], Any]
HISTORY_READS: dict[str, HistoryRead] = {
    "get": lambda history: history.get(2),
    "load_recent": lambda history: history.load_recent(3),
    "iterate": list,
    # A retry under a stored key reads the stored record to return it.
    "append_same_key": lambda history: history.append({"i": 2, "note": MARK}, key="k-2"),
}


@pytest.mark.parametrize("read", HISTORY_READS)
def test_a_history_read_checks_the_line(history_path: Path, read: str) -> None:
    with IterationHistory(history_path) as history:
        history.append({"i": 1, "note": "first"}, key="k-1")
        history.append({"i": 2, "note": MARK}, key="k-2")
        history.extend([{"i": 3}, {"i": 4}])
        HISTORY_READS[read](history)  # the intact record reads back
        flip_inside_value(history_path, 0)
        with pytest.raises(CorruptionError):
            HISTORY_READS[read](history)
    # A new handle replays the log, reads the line and refuses it too.
    with pytest.raises(CorruptionError):
        IterationHistory(history_path)
