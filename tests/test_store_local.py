"""SnapshotStore on the local directory backend: the conformance suite, then local specifics."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from snapstore import InvalidInputError, NormalizedSnapshot, SnapshotStore, SnapstoreError
from snapstore.backends.local.store import LocalStore
from snapstore.testing.conformance import SnapshotStoreTests, StoreTableTests
from store_fixtures import (
    STAGES,
    LocalStoreHarness,
    answers_of,
    copy_store,
    file_state,
    fill_store,
    pipeline,
    save_all,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


pytestmark = pytest.mark.usefixtures("index_file_at_every_step")


class TestLocalStore(SnapshotStoreTests):
    @pytest.fixture(params=["fsync", "write"])
    def harness(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[LocalStoreHarness]:
        harness = LocalStoreHarness(tmp_path / "store", request.param)
        yield harness
        harness.close_all()


class TestLocalStoreTables(StoreTableTests):
    # Tables only read: one durability is enough (the bulk case saves with "write").
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[LocalStoreHarness]:
        harness = LocalStoreHarness(tmp_path / "store")
        yield harness
        harness.close_all()


def test_checkpoint_changes_no_answer(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        saved = save_all(store, pipeline(runs=2))
        store.checkpoint()
        store.checkpoint()
        more = store.save_snapshot(NormalizedSnapshot("run-9", "TRAINING"))
        assert list(store.snapshots()) == [*saved, more]


@pytest.mark.parametrize("every", [0, -1, 1.5, True, "10"])
def test_a_bad_checkpoint_interval_is_refused_and_changes_nothing(
    tmp_path: Path, every: object
) -> None:
    fill_store(tmp_path / "s")
    before = file_state(tmp_path / "s")
    with pytest.raises(InvalidInputError, match="checkpoint_every"):
        SnapshotStore(tmp_path / "s", checkpoint_every=every)
    assert file_state(tmp_path / "s") == before


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    return fill_store(tmp_path / "filled")


def test_new_mtimes_on_every_file_change_no_answer(filled: Path) -> None:
    expected = answers_of(filled)
    # The past, the far future, and every file at one identical time.
    for stamp in (lambda i: 86_400 * (i + 1), lambda i: 4_000_000_000 - 1000 * i, lambda _: 10**9):
        for i, path in enumerate(sorted(filled.rglob("*"), reverse=True)):
            os.utime(path, (stamp(i), stamp(i)))
        assert answers_of(filled) == expected


def test_a_copy_of_the_store_gives_the_same_answers(filled: Path, tmp_path: Path) -> None:
    expected = answers_of(filled)
    assert answers_of(copy_store(filled, tmp_path / "new-mtimes")) == expected
    assert answers_of(copy_store(filled, tmp_path / "kept-mtimes", keep_mtimes=True)) == expected


def test_a_copy_continues_the_seq_of_its_original(filled: Path, tmp_path: Path) -> None:
    copy = copy_store(filled, tmp_path / "copy")
    with SnapshotStore(filled) as original, SnapshotStore(copy) as copied:
        assert copied.save_snapshot(NormalizedSnapshot("run-9", "TRAINING")).snapshot_seq == (
            len(original) + 1
        )


def test_snapshot_index_json_is_keyed_by_run_id_and_stage(filled: Path) -> None:
    document = json.loads((filled / "snapshot_index.json").read_text())
    with SnapshotStore(filled) as store:
        snaps = list(store.snapshots())
        expected = {f"{s.run_id}:{s.stage}": s.snapshot_seq for s in snaps}
    assert document["latest"] == expected
    assert len(expected) == 12  # 4 runs x 3 stages: no stage overwrote another


def test_index_parquet_has_one_row_per_snapshot(filled: Path) -> None:
    frame = pd.read_parquet(filled / "index.parquet")
    assert {"snapshot_seq", "run_id", "stage", "created_at", "comparison_key"} <= set(frame.columns)
    with SnapshotStore(filled) as store:
        snaps = list(store.snapshots())
    assert list(frame["snapshot_seq"]) == [s.snapshot_seq for s in snaps]
    assert list(frame["run_id"]) == [s.run_id for s in snaps]
    assert list(frame["stage"]) == [s.stage for s in snaps]
    assert list(frame["comparison_key"]) == [s.comparison_key for s in snaps]
    assert [t.to_pydatetime() for t in frame["created_at"]] == [s.created_at for s in snaps]


def test_the_commit_log_is_plain_jsonl_one_snapshot_a_line(filled: Path) -> None:
    lines = (filled / "snapshots.jsonl").read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == list(range(1, len(lines) + 1))
    assert {r["data"]["stage"] for r in records} == set(STAGES)


def test_histories_live_under_the_history_folder(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        history = store.history("run-1.TRAINING")
        assert history.path == tmp_path / "s" / "history" / "run-1.TRAINING.jsonl"
        history.append({"loss": 1.0})
    assert [p.name for p in (tmp_path / "s" / "history").glob("*.jsonl")] == [
        "run-1.TRAINING.jsonl"
    ]


@pytest.mark.parametrize(
    "foreign",
    [
        {"notes.txt": b"mine"},
        {"snapshot_index.json": b'{"run-1": {"run_id": "run-1", "stage": "TRAINING"}}'},
        {"snapshots.jsonl": b""},
        {"sub/file": b"x"},
    ],
    ids=repr,
)
def test_a_directory_with_foreign_files_and_no_marker_is_refused(
    tmp_path: Path, foreign: dict[str, bytes]
) -> None:
    root = tmp_path / "foreign"
    for name, data in foreign.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    before = file_state(root)
    with pytest.raises(SnapstoreError, match="not a snapstore store") as raised:
        SnapshotStore(root)
    assert isinstance(raised.value, FileExistsError)
    assert "import_legacy" in str(raised.value)
    assert file_state(root) == before
    assert sorted(p.name for p in root.iterdir()) == sorted({n.split("/")[0] for n in foreign})


def test_an_empty_directory_becomes_a_store(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    with SnapshotStore(root) as store:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
    assert json.loads((root / "SNAPSTORE").read_text())["format"] == 1


@pytest.mark.parametrize(
    "marker", [b"", b"not json", b'{"format": 99}', b'{"format": true}', b"[1]"], ids=repr
)
def test_a_marker_of_another_format_is_refused(tmp_path: Path, marker: bytes) -> None:
    root = tmp_path / "s"
    SnapshotStore(root).close()
    (root / "SNAPSTORE").write_bytes(marker)
    before = file_state(root)
    with pytest.raises(SnapstoreError, match="format"):
        SnapshotStore(root)
    assert file_state(root) == before


def test_a_log_replaced_by_one_of_the_same_size_is_read_from_the_new_file(
    tmp_path: Path,
) -> None:
    # What repair does to a reader: the log is renamed over with a rewritten
    # one. Same size here, so only the file's identity tells them apart.
    def snap(loss: float) -> NormalizedSnapshot:
        return NormalizedSnapshot("run-1", "train", metrics={"loss": loss})

    with SnapshotStore(tmp_path / "other") as other:
        other.save_snapshot(snap(0.75))
    with SnapshotStore(tmp_path / "store") as store:
        store.save_snapshot(snap(0.25))
        log = tmp_path / "store" / "snapshots.jsonl"
        replacement = tmp_path / "other" / "snapshots.jsonl"
        assert replacement.stat().st_size == log.stat().st_size
        replacement.replace(log)
        found = store.get("run-1", "train")
        assert found is not None
        assert dict(found.metrics) == {"loss": 0.75}


# -- one store, one lock, whatever path reaches it -------------------------------------


@pytest.mark.parametrize("log", ["snapshots.jsonl", "baselines.jsonl"])
def test_a_store_log_with_a_second_hard_link_is_refused(tmp_path: Path, log: str) -> None:
    # A second store directory sharing the log through a hard link would lock
    # its own .lock: two writers, one file.
    root = tmp_path / "store"
    with SnapshotStore(root) as store:
        store.save_snapshot(NormalizedSnapshot("r", "TRAINING", metrics={"m": 1.0}))
    (tmp_path / "other").mkdir()
    os.link(root / log, tmp_path / "other" / log)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(InvalidInputError, match="2 hard links") as raised:
        SnapshotStore(root)
    assert str(root / log) in str(raised.value)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_a_handle_opened_through_a_link_stays_with_its_store_when_the_link_moves(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        with SnapshotStore(root) as store:
            store.save_snapshot(NormalizedSnapshot(root.name, "TRAINING", metrics={"m": 1.0}))
    link = tmp_path / "current"
    link.symlink_to(first)
    with SnapshotStore(link) as store:
        link.unlink()
        link.symlink_to(second)
        # The handle holds the first store's lock: its saves go to that store.
        saved = store.save_snapshot(NormalizedSnapshot("later", "TRAINING", metrics={"m": 2.0}))
        assert saved.snapshot_seq == 2
    for root, run_ids in ((first, ["first", "later"]), (second, ["second"])):
        with SnapshotStore(root) as store:
            assert [s.run_id for s in store.snapshots()] == run_ids
            assert store.verify().ok


def _uses_index_file(store: SnapshotStore) -> bool:
    backend = store._backend
    assert isinstance(backend, LocalStore)
    return backend._index.uses_file


def test_a_read_only_handle_reads_the_index_file_beside_writers_that_come_and_go(
    tmp_path: Path,
) -> None:
    root = tmp_path / "s"
    with SnapshotStore(root) as writer:
        first = save_all(writer, pipeline(runs=3))
    before = file_state(root)
    with SnapshotStore(root, read_only=True) as reader:
        # No writer has the file open: read as it is, with nothing created.
        assert _uses_index_file(reader)
        assert reader.get(first[0].run_id, first[0].stage) == first[0]
        assert file_state(root) == before
        assert not (root / "index.sqlite-shm").exists()
        # A writer comes, saves (its snapshots reach the file at close) and goes.
        with SnapshotStore(root) as writer:
            rerun = writer.save_snapshot(
                replace(first[0], metrics={"rerun": 1}, snapshot_seq=None, created_at=None)
            )
            assert reader.get(rerun.run_id, rerun.stage) == rerun
        assert reader.get(rerun.run_id, rerun.stage) == rerun
        assert [v.snapshot_seq for v in reader.versions(rerun.run_id, rerun.stage)] == [
            first[0].snapshot_seq,
            rerun.snapshot_seq,
        ]
        assert len(reader) == len(first) + 1
        assert _uses_index_file(reader)
