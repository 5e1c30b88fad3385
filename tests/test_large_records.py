"""Records longer than the 1 MiB read chunk: every read path, a reopen, and a torn tail.

A log is read in 1 MiB chunks and a line longer than a chunk makes the reader
read more at once; a store's log over 1 MiB is opened through its checkpoint
instead of replayed. Records of about 1.5 MiB and 5 MiB cross both lines.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from helpers import check_log, log_lines, quarantined
from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore._tables import flatten

if TYPE_CHECKING:
    from pathlib import Path

MIB = 1 << 20
SIZES = {"1.5MiB": MIB * 3 // 2, "5MiB": 5 * MIB}


def payload(size: int, tag: int) -> dict[str, Any]:
    """About ``size`` bytes of JSON, different for every ``tag`` (so no two lines are equal)."""
    unit = f"{tag:04d}-abcdefghijklmnopqrstuvwxyz|"
    return {"tag": tag, "blob": unit * (size // len(unit)), "numbers": list(range(tag, tag + 50))}


# -- IterationHistory ----------------------------------------------------------------

HistoryRead = Callable[[IterationHistory], list[Any]]
HISTORY_READS: dict[str, HistoryRead] = {
    "get": lambda history: [history.get(seq).data for seq in (1, 2, 3)],
    "load_recent": lambda history: [record.data for record in history.load_recent(3)],
    "iterate": lambda history: [record.data for record in history],
    # A retry under a stored key returns the stored record, read from the log
    # (and compared with what the retry sends).
    "keyed_retry": lambda history: [history.append(history.get(1).data, key="big").data],
}


def expected_history(size: int, read: str) -> list[dict[str, Any]]:
    records = [payload(size, 1), {"small": True}, payload(size, 3)]
    return [records[0]] if read == "keyed_retry" else records


def write_history(path: Path, size: int) -> None:
    with IterationHistory(path) as history:
        assert history.append(payload(size, 1), key="big").seq == 1
        history.extend([{"small": True}, payload(size, 3)])


@pytest.mark.parametrize("read", HISTORY_READS)
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_large_history_record_reads_back_before_and_after_a_reopen(
    history_path: Path, size: int, read: str
) -> None:
    with IterationHistory(history_path) as history:
        history.append(payload(size, 1), key="big")
        history.extend([{"small": True}, payload(size, 3)])
        assert HISTORY_READS[read](history) == expected_history(size, read)
    assert [len(line) > size for line in log_lines(history_path)] == [True, False, True]
    check_log(history_path)
    with IterationHistory(history_path) as reopened:  # replays lines longer than a chunk
        assert len(reopened) == 3
        assert HISTORY_READS[read](reopened) == expected_history(size, read)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("cut", ["short", "mid_line"])
def test_a_torn_tail_after_a_large_record_is_recovered(
    history_path: Path, size: int, cut: str
) -> None:
    write_history(history_path, size)
    kept = log_lines(history_path)
    # A crashed append of another large record: a few bytes of it, or most of it
    # (itself longer than a read chunk), after a large line.
    with IterationHistory(history_path.with_name("donor.jsonl")) as donor:
        donor.extend([{}, {}, {}])
        donor.append(payload(size, 4))
    line = log_lines(history_path.with_name("donor.jsonl"))[-1]
    torn = line[:20] if cut == "short" else line[: len(line) * 2 // 3]
    with history_path.open("ab") as file:
        file.write(torn)

    with IterationHistory(history_path) as reader:  # readers ignore the tail
        assert [record.seq for record in reader] == [1, 2, 3]
        assert reader.get(3).data == payload(size, 3)
    assert history_path.read_bytes() == b"".join(kept) + torn

    with IterationHistory(history_path) as writer:  # the next writer moves it aside
        assert writer.append(payload(size, 5)).seq == 4
        assert writer.get(3).data == payload(size, 3)
        assert writer.get(4).data == payload(size, 5)
    assert log_lines(history_path)[:3] == kept
    assert len(check_log(history_path)) == 4
    assert quarantined(history_path) == [torn]


# -- SnapshotStore ---------------------------------------------------------------------


def snaps(size: int) -> list[NormalizedSnapshot]:
    return [
        NormalizedSnapshot("run-1", "TRAINING", metrics={"auc": 0.7}, data=payload(size, 1)),
        NormalizedSnapshot("run-2", "TRAINING", metrics={"auc": 0.8}, data={"small": True}),
        NormalizedSnapshot("run-3", "TRAINING", metrics={"auc": 0.9}, data=payload(size, 3)),
    ]


def holds_data_of(row: dict[str, Any], snap: NormalizedSnapshot) -> bool:
    """Whether the table row's data.* cells are the snapshot's data, leaf by leaf.

    A list is a cell of JSON text (the tables' typing rule); a leaf the
    snapshot lacks is null.
    """
    expected: dict[str, Any] = {}
    flatten("data", snap.data, expected)
    cells = {name: value for name, value in row.items() if name.startswith("data.")}
    return set(expected) <= set(cells) and all(
        (orjson.loads(cell) if isinstance(expected.get(name), list) else cell) == expected.get(name)
        for name, cell in cells.items()
    )


StoreRead = Callable[[SnapshotStore, int], list[Any]]
# Each read path, and which of snaps() (by index) it must return, in order.
STORE_READS: dict[str, tuple[StoreRead, list[int]]] = {
    "get": (lambda store, _: [store.get(f"run-{i}", "TRAINING") for i in (1, 2, 3)], [0, 1, 2]),
    "get_by_seq": (lambda store, _: [store.get_by_seq(seq) for seq in (1, 2, 3)], [0, 1, 2]),
    "versions": (
        lambda store, _: [v for i in (1, 2, 3) for v in store.versions(f"run-{i}", "TRAINING")],
        [0, 1, 2],
    ),
    "snapshots": (lambda store, _: list(store.snapshots()), [0, 1, 2]),
    "snapshots_of_stage": (lambda store, _: list(store.snapshots(stage="TRAINING")), [0, 1, 2]),
    "snapshots_of_run": (
        lambda store, _: [s for i in (1, 2, 3) for s in store.snapshots(run_id=f"run-{i}")],
        [0, 1, 2],
    ),
    # Same stage and config, other runs: each one's predecessor is the one saved before.
    "previous_comparable": (
        lambda store, _: [store.find_previous_comparable(store.get_by_seq(s)) for s in (2, 3)],
        [0, 1],
    ),
    "baseline": (
        lambda store, _: [
            store.get_or_establish_baseline(store.get_by_seq(1)),
            store.baseline("TRAINING", store.get_by_seq(1).comparison_key or ""),
        ],
        [0, 0],
    ),
    # Saving content identical to the latest version is a retry: the stored one returns.
    "retry": (lambda store, size: [store.save_snapshot(s) for s in snaps(size)], [0, 1, 2]),
    # A row's data.* cells are the snapshot's data, leaf by leaf.
    "to_arrow": (
        lambda store, _: [
            snap
            for seq, row in enumerate(store.to_arrow().to_pylist(), start=1)
            for snap in [store.get_by_seq(seq)]
            if holds_data_of(row, snap)
        ],
        [0, 1, 2],
    ),
}


def check_store_read(store: SnapshotStore, size: int, read: str) -> None:
    function, indices = STORE_READS[read]
    found = function(store, size)
    expected = [snaps(size)[i] for i in indices]
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert got is not None
        assert (got.run_id, dict(got.metrics), dict(got.data)) == (
            want.run_id,
            dict(want.metrics),
            dict(want.data),
        )
    # Nothing was written by a read, and a retry added no record.
    assert [s.snapshot_seq for s in store.snapshots()] == [1, 2, 3]


@pytest.mark.parametrize("read", STORE_READS)
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_large_snapshot_reads_back_before_and_after_a_reopen(
    tmp_path: Path, size: int, read: str
) -> None:
    root = tmp_path / "s"
    with SnapshotStore(root) as store:
        for snap in snaps(size):
            store.save_snapshot(snap)
        check_store_read(store, size, read)
    # Over a megabyte: reopened, the index file is caught up in bulk.
    assert (root / "snapshots.jsonl").stat().st_size > MIB
    assert (root / "index.sqlite").exists()
    with SnapshotStore(root) as reopened:
        check_store_read(reopened, size, read)
    # And with the index file rebuilt from the log alone.
    bare = tmp_path / "bare"
    shutil.copytree(root, bare)
    (bare / "index.sqlite").unlink()
    with SnapshotStore(bare) as replayed:
        check_store_read(replayed, size, read)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_a_torn_snapshot_after_a_large_one_is_recovered(tmp_path: Path, size: int) -> None:
    root = tmp_path / "s"
    with SnapshotStore(root) as store:
        for snap in snaps(size):
            store.save_snapshot(snap)
    log = root / "snapshots.jsonl"
    kept = log_lines(log)
    donor = tmp_path / "donor"
    with SnapshotStore(donor) as other:
        other.save_snapshot(NormalizedSnapshot("run-4", "TRAINING", data=payload(size, 4)))
    torn = (donor / "snapshots.jsonl").read_bytes()[: size // 2]
    with log.open("ab") as file:
        file.write(torn)

    with SnapshotStore(root) as store:
        assert len(store) == 3
        assert dict(store.get_by_seq(3).data) == payload(size, 3)
        saved = store.save_snapshot(NormalizedSnapshot("run-5", "TRAINING", data=payload(size, 5)))
        assert saved.snapshot_seq == 4
        assert dict(store.get_by_seq(4).data) == payload(size, 5)
    assert log_lines(log)[:3] == kept
    assert len(check_log(log)) == 4
    (moved,) = (root / "quarantine").glob("*.bin")
    assert moved.read_bytes() == torn
    with SnapshotStore(root) as reopened:
        assert [s.snapshot_seq for s in reopened.snapshots()] == [1, 2, 3, 4]
        assert dict(reopened.get("run-1", "TRAINING").data) == payload(size, 1)  # type: ignore[union-attr]
