"""Checkpoints are caches: whatever state they are in, a store answers as its log says.

Each test damages the derived files of a store in one way and compares every
answer with the same store opened with no checkpoint at all (a full replay).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pytest

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore._log import seam
from snapstore._log.checked import CheckedLog, LogPosition
from snapstore._log.lock import WriterLock
from snapstore._log.record import encode_line
from snapstore._records import Entry
from store_fixtures import (
    DERIVED_FILES,
    answers_of,
    copy_store,
    file_state,
    fill_store,
    remove_checkpoint,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PARQUET, JSON = DERIVED_FILES
INDEX = "index.sqlite"
# Each derived file alone, the checkpoint's pair, and all three.
WHICH = [(PARQUET,), (JSON,), (INDEX,), (PARQUET, JSON), (INDEX, PARQUET, JSON)]


pytestmark = pytest.mark.usefixtures("index_file_at_every_step")


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    return fill_store(tmp_path / "filled")


@pytest.fixture
def replayed(filled: Path, tmp_path: Path) -> dict[str, Any]:
    """The answers of ``filled`` rebuilt from its logs alone."""
    bare = copy_store(filled, tmp_path / "bare")
    remove_checkpoint(bare)
    return answers_of(bare)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot a checkpoint\n" * 40)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "deleted": lambda path: path.unlink(),
    "garbage": _garbage,
    "truncated": _truncate,
    "empty": _empty,
    "flipped": _flip_last_byte,
}


def _check_answers_and_continues(root: Path, expected: dict[str, Any]) -> None:
    assert answers_of(root) == expected
    with SnapshotStore(root) as store:
        saved = store.save_snapshot(NormalizedSnapshot("run-new", "TRAINING"))
        assert saved.snapshot_seq == expected["len"] + 1
    # The next open reads the index file close() brought up to date, and agrees too.
    assert (root / INDEX).exists()
    with SnapshotStore(root) as store:
        assert store.get("run-new", "TRAINING") == saved
        assert len(store) == saved.snapshot_seq


def test_a_closed_store_has_a_checkpoint_that_agrees_with_its_log(
    filled: Path, replayed: dict[str, Any]
) -> None:
    assert {p.name for p in filled.iterdir()} >= set(DERIVED_FILES)
    assert answers_of(filled) == replayed


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("which", WHICH, ids="+".join)
def test_a_damaged_derived_file_changes_no_answer(
    filled: Path, replayed: dict[str, Any], damage: str, which: tuple[str, ...]
) -> None:
    for name in which:
        DAMAGE[damage](filled / name)
    if damage == "flipped" and INDEX in which:
        # SQLite keeps no checksums: a changed byte that leaves the file
        # readable is for verify to find, and for repair to rebuild.
        with SnapshotStore(filled) as store:
            assert INDEX in {finding.path.name for finding in store.verify().findings}
            store.repair()
    _check_answers_and_continues(filled, replayed)


@pytest.mark.parametrize("which", WHICH, ids="+".join)
def test_the_derived_files_of_another_store_of_the_same_shape_are_ignored(
    filled: Path, replayed: dict[str, Any], tmp_path: Path, which: tuple[str, ...]
) -> None:
    # Same operations, same name lengths: every log line has the same length
    # and seq as in ``filled``; only the content differs.
    twin = fill_store(tmp_path / "twin", run_prefix="twn")
    assert (twin / "snapshots.jsonl").stat().st_size == (filled / "snapshots.jsonl").stat().st_size
    for name in which:
        shutil.copy(twin / name, filled / name)
    _check_answers_and_continues(filled, replayed)


def test_the_checkpoint_of_another_store_is_ignored(
    filled: Path, replayed: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    with SnapshotStore(other) as store:
        store.save_snapshot(NormalizedSnapshot("x", "y"))
    with SnapshotStore(other) as store:
        store.checkpoint()
    for name in (*DERIVED_FILES, INDEX):
        shutil.copy(other / name, filled / name)
    _check_answers_and_continues(filled, replayed)


def test_a_stale_checkpoint_is_completed_from_the_log(tmp_path: Path) -> None:
    root = fill_store(tmp_path / "s")
    with SnapshotStore(root) as store:
        store.checkpoint()
        stale = {name: (root / name).read_bytes() for name in (*DERIVED_FILES, INDEX)}
        for i in range(5):
            store.save_snapshot(NormalizedSnapshot(f"run-{i}", "TRAINING", metrics={"late": i}))
        store.get_or_establish_baseline(NormalizedSnapshot("run-late", "LATE"))
    for name, data in stale.items():
        (root / name).write_bytes(data)  # as if the index had lost its latest transactions
    bare = copy_store(root, tmp_path / "bare")
    remove_checkpoint(bare)
    _check_answers_and_continues(root, answers_of(bare))


def test_a_checkpoint_ahead_of_its_log_is_ignored(tmp_path: Path) -> None:
    # A log restored from an older backup next to a newer checkpoint.
    root = fill_store(tmp_path / "s")
    older = copy_store(root, tmp_path / "older")
    with SnapshotStore(root) as store:
        for i in range(5):
            store.save_snapshot(NormalizedSnapshot(f"run-{i}", "TRAINING", metrics={"late": i}))
    with SnapshotStore(root) as store:
        store.checkpoint()
    for name in (*DERIVED_FILES, INDEX):
        shutil.copy(root / name, older / name)
    bare = copy_store(older, tmp_path / "bare")
    remove_checkpoint(bare)
    _check_answers_and_continues(older, answers_of(bare))


def test_saves_write_a_checkpoint_every_n(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with SnapshotStore(root, checkpoint_every=3) as store:
        for i in range(2):
            store.save_snapshot(NormalizedSnapshot(f"run-{i}", "TRAINING"))
        assert not (root / PARQUET).exists()
        store.save_snapshot(NormalizedSnapshot("run-2", "TRAINING"))
        assert (root / PARQUET).exists()
        assert (root / JSON).exists()
        bare = copy_store(root, tmp_path / "bare")
        remove_checkpoint(bare)
        assert answers_of(bare) == answers_of(root)


def test_opening_and_closing_without_saving_writes_nothing(filled: Path) -> None:
    before = file_state(filled)
    with SnapshotStore(filled) as store:
        assert len(store) > 0
    assert file_state(filled) == before


def test_an_empty_store_checkpoints_and_reopens(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with SnapshotStore(root) as store:
        store.checkpoint()
    with SnapshotStore(root) as store:
        assert len(store) == 0
        assert store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING")).snapshot_seq == 1


def test_a_log_that_does_not_continue_the_checkpoint_resets_its_owner(tmp_path: Path) -> None:
    # load_checkpoint and the log's open are two steps: a log rewritten in
    # between (by repair in another process) must not be replayed on top of
    # an index built from the checkpoint.
    path = tmp_path / "log.jsonl"
    path.write_bytes(encode_line(1, "2024-01-01T00:00:00.000000+00:00", Entry(b"{}", None)))
    events: list[object] = []
    fs = seam.current()
    lock = WriterLock(tmp_path / "log.lock", fs, 1.0)
    log = CheckedLog(
        path,
        fs=fs,
        lock=lock,
        quarantine_dir=tmp_path / "quarantine",
        durability="write",
        on_record=lambda record: events.append(record.seq),
        on_reset=lambda: events.append("reset"),
        start=LogPosition(end=10**6, seq=7, length=100),
    )
    log.close()
    lock.close()
    assert events == ["reset", 1]


def test_opening_replays_only_the_log_after_the_checkpoint(filled: Path) -> None:
    # Damage a line the checkpoint covers: opening must not read it (that is
    # verify's job), which shows the checkpoint, not a replay, was used.
    log = filled / "snapshots.jsonl"
    data = bytearray(log.read_bytes())
    data[10] ^= 0x01
    log.write_bytes(bytes(data))
    with SnapshotStore(filled) as store:
        assert len(store) > 0
        assert not store.verify().ok
