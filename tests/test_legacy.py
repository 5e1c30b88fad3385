"""SnapshotStore.import_legacy: the older one-file layout, both of its key formats."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from snapstore import CorruptionError, InvalidInputError, SnapshotStore
from store_fixtures import STAGES, file_state

if TYPE_CHECKING:
    from pathlib import Path


def legacy_entry(run_id: str, stage: str, timestamp: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "stage": stage,
        "timestamp": timestamp,
        "metrics": {"auc": 0.7},
        "config": {"model": "gbm"},
        **extra,
    }


def write_legacy(directory: Path, document: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "snapshot_index.json").write_text(json.dumps(document, indent=2))
    # A legacy store also held other files; they are not read.
    (directory / "index.parquet").write_bytes(b"old parquet")
    return directory


def imported(source: Path, root: Path, **options: Any) -> list[tuple[str, str, int | None]]:
    with SnapshotStore.import_legacy(source, root, **options) as store:
        return [(s.run_id, s.stage, s.snapshot_seq) for s in store.snapshots()]


def test_the_run_id_keyed_format(tmp_path: Path) -> None:
    source = write_legacy(
        tmp_path / "old",
        {
            "run-1": legacy_entry("run-1", "TRAINING", "2024-01-01T10:00:00", snapshot_seq=1),
            "run-2": legacy_entry("run-2", "TRAINING", "2024-01-01T11:00:00", snapshot_seq=2),
        },
    )
    assert imported(source, tmp_path / "new") == [
        ("run-1", "TRAINING", 1),
        ("run-2", "TRAINING", 2),
    ]
    with SnapshotStore(tmp_path / "new") as store:
        snap = store.get("run-1", "TRAINING")
        assert snap is not None
        assert dict(snap.metrics) == {"auc": 0.7}
        assert dict(snap.config) == {"model": "gbm"}
        assert snap.data["legacy"] == {
            "index_key": "run-1",
            "timestamp": "2024-01-01T10:00:00",
            "snapshot_seq": 1,
        }
        assert store.find_previous_comparable(store.get_by_seq(2)) == snap


def test_the_run_id_and_stage_keyed_format_keeps_every_stage(tmp_path: Path) -> None:
    document = {
        f"run-{run}:{stage}": legacy_entry(
            f"run-{run}", stage, f"2024-01-0{run}T10:0{i}:00", snapshot_seq=run * 10 + i
        )
        for run in (1, 2)
        for i, stage in enumerate(STAGES)
    }
    source = write_legacy(tmp_path / "old", document)
    result = imported(source, tmp_path / "new")
    assert result == [
        (f"run-{run}", stage, n)
        for n, (run, stage) in enumerate(((r, s) for r in (1, 2) for s in STAGES), start=1)
    ]


def test_both_key_formats_in_one_file(tmp_path: Path) -> None:
    source = write_legacy(
        tmp_path / "old",
        {
            "run-1": legacy_entry("run-1", "TRAINING", "2024-01-01T10:00:00", snapshot_seq=1),
            "run-2:TARGET_RANKING": legacy_entry(
                "run-2", "TARGET_RANKING", "2024-01-02T10:00:00", snapshot_seq=2
            ),
            "run-2:TRAINING": legacy_entry(
                "run-2", "TRAINING", "2024-01-02T11:00:00", snapshot_seq=3
            ),
        },
    )
    assert imported(source, tmp_path / "new") == [
        ("run-1", "TRAINING", 1),
        ("run-2", "TARGET_RANKING", 2),
        ("run-2", "TRAINING", 3),
    ]


def test_snapshot_seqs_keep_their_relative_order_not_the_file_order(tmp_path: Path) -> None:
    source = write_legacy(
        tmp_path / "old",
        {
            # File order and timestamps disagree with the seqs: the seqs win.
            "c:TRAINING": legacy_entry("c", "TRAINING", "2024-01-01T00:00:00", snapshot_seq=70),
            "a:TRAINING": legacy_entry("a", "TRAINING", "2024-01-03T00:00:00", snapshot_seq=3),
            "b:TRAINING": legacy_entry("b", "TRAINING", "2024-01-02T00:00:00", snapshot_seq=12),
        },
    )
    assert imported(source, tmp_path / "new") == [
        ("a", "TRAINING", 1),
        ("b", "TRAINING", 2),
        ("c", "TRAINING", 3),
    ]


def test_entries_without_seq_are_ordered_by_timestamp_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_legacy(
        tmp_path / "old",
        {
            "late:TRAINING": legacy_entry("late", "TRAINING", "2024-03-01T00:00:00"),
            "seq:TRAINING": legacy_entry("seq", "TRAINING", "2023-01-01T00:00:00", snapshot_seq=5),
            "early:TRAINING": legacy_entry("early", "TRAINING", "2024-01-01T00:00:00"),
            "mid:TRAINING": legacy_entry("mid", "TRAINING", "2024-02-01T00:00:00"),
        },
    )
    with caplog.at_level(logging.WARNING, logger="snapstore"):
        result = imported(source, tmp_path / "new")
    # Seq-less snapshots predate sequence numbers: they come first.
    assert [run_id for run_id, _, _ in result] == ["early", "mid", "late", "seq"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "3 snapshots have no snapshot_seq" in warnings[0].getMessage()


def test_no_warning_when_every_entry_has_a_seq(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_legacy(
        tmp_path / "old", {"a": legacy_entry("a", "TRAINING", "2024-01-01", snapshot_seq=1)}
    )
    with caplog.at_level(logging.WARNING, logger="snapstore"):
        imported(source, tmp_path / "new")
    assert not caplog.records


def test_the_source_is_left_byte_for_byte_untouched(tmp_path: Path) -> None:
    source = write_legacy(
        tmp_path / "old",
        {"run-1": legacy_entry("run-1", "TRAINING", "2024-01-01", extra_field=[1, 2])},
    )
    before = file_state(source)
    imported(source, tmp_path / "new")
    assert file_state(source) == before


def test_unknown_fields_are_kept_in_data(tmp_path: Path) -> None:
    source = write_legacy(
        tmp_path / "old",
        {"r": legacy_entry("r", "TRAINING", "2024-01-01", notes="hi", comparison_key="grp")},
    )
    with SnapshotStore.import_legacy(source, tmp_path / "new") as store:
        snap = store.get("r", "TRAINING")
    assert snap is not None
    assert snap.data["notes"] == "hi"
    assert snap.comparison_key == "grp"


def test_importing_twice_writes_nothing_the_second_time(tmp_path: Path) -> None:
    source = write_legacy(
        tmp_path / "old",
        {f"r{i}": legacy_entry(f"r{i}", "TRAINING", f"2024-01-0{i + 1}") for i in range(3)},
    )
    imported(source, tmp_path / "new")
    before = file_state(tmp_path / "new")
    assert len(imported(source, tmp_path / "new")) == 3
    assert file_state(tmp_path / "new") == before


def test_import_options_reach_the_store(tmp_path: Path) -> None:
    source = write_legacy(tmp_path / "old", {"r": legacy_entry("r", "TRAINING", "2024-01-01")})
    with SnapshotStore.import_legacy(source, tmp_path / "new", durability="write") as store:
        assert store.durability == "write"


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ("not json at all", CorruptionError),
        ([1, 2], CorruptionError),
        ({"r": {"stage": "TRAINING"}}, CorruptionError),
        ({"r": "a string"}, CorruptionError),
        ({"r": legacy_entry("r", "TRAINING", "t", snapshot_seq="7")}, CorruptionError),
        ({"r": legacy_entry("r", "TRAINING", "t", metrics=[1])}, InvalidInputError),
    ],
    ids=repr,
)
def test_a_damaged_legacy_file_is_refused_before_anything_is_created(
    tmp_path: Path, document: object, error: type[Exception]
) -> None:
    source = tmp_path / "old"
    source.mkdir()
    text = document if isinstance(document, str) else json.dumps(document)
    (source / "snapshot_index.json").write_text(text)
    with pytest.raises(error):
        SnapshotStore.import_legacy(source, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_directory_without_a_legacy_index_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    with pytest.raises(InvalidInputError, match=r"snapshot_index\.json"):
        SnapshotStore.import_legacy(tmp_path / "old", tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "bad", [{"stage": "feature selection"}, {"stage": "b:c"}, {"run_id": ""}], ids=repr
)
def test_a_bad_name_anywhere_in_the_file_imports_nothing(
    tmp_path: Path, bad: dict[str, str]
) -> None:
    document = {
        f"r{i}": legacy_entry(f"r{i}", "TRAINING", f"2024-01-0{i + 1}", snapshot_seq=i)
        for i in range(1, 4)
    }
    document["r3"].update(bad)  # the last one saved
    source = write_legacy(tmp_path / "old", document)
    with pytest.raises(InvalidInputError):
        SnapshotStore.import_legacy(source, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_timestamps_are_ordered_as_instants_not_as_text(tmp_path: Path) -> None:
    source = write_legacy(
        tmp_path / "old",
        {
            # As text this sorts first; as an instant it is 17:30 UTC, the latest.
            "a:TRAINING": legacy_entry("a", "TRAINING", "2025-11-18T18:30:00+01:00"),
            "b:TRAINING": legacy_entry("b", "TRAINING", "2025-11-18T17:00:00Z"),
            # Naive timestamps are taken as UTC; epoch seconds are accepted too.
            "c:TRAINING": legacy_entry("c", "TRAINING", "2025-11-18T17:10:00"),
            "d:TRAINING": {**legacy_entry("d", "TRAINING", ""), "timestamp": 1763486400},
        },
    )
    runs = [run for run, _, _ in imported(source, tmp_path / "new")]
    # 1763486400 is 2025-11-18T17:20:00Z.
    assert runs == ["b", "c", "d", "a"]


def test_a_seqless_entry_without_a_usable_timestamp_is_refused_before_any_save(
    tmp_path: Path,
) -> None:
    source = write_legacy(
        tmp_path / "old",
        {
            "a:TRAINING": legacy_entry("a", "TRAINING", "2025-11-18T17:00:00Z"),
            "b:TRAINING": legacy_entry("b", "TRAINING", "yesterday"),
        },
    )
    with pytest.raises(CorruptionError, match="yesterday"):
        SnapshotStore.import_legacy(source, tmp_path / "new")
    assert not (tmp_path / "new" / "snapshots.jsonl").exists()
