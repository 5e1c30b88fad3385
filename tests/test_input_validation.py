"""Bad input gets InvalidInputError (a ValueError) and leaves the file unchanged."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from helpers import check_log
from snapstore import (
    InvalidInputError,
    IterationHistory,
    NormalizedSnapshot,
    NotFoundError,
    SnapshotStore,
    SnapstoreError,
)
from snapstore._names import MAX_KEY_LENGTH

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

NAN = float("nan")
INF = float("inf")

BAD_DATA: dict[str, object] = {
    "object": {"x": object()},
    "set": {"x": {1, 2}},
    "datetime": {"x": datetime.now(UTC)},
    "decimal": {"x": Decimal("1.5")},
    "bytes": {"x": b"raw"},
    "int-key": {1: "x"},
    "nested-int-key": {"a": {2: "x"}},
    "none-key": {None: 1},
    "int-over-64-bit": {"x": 2**64},
    "int-under-64-bit": {"x": -(2**63) - 1},
    "lone-surrogate": {"x": "\ud800"},
    "surrogate-in-list": {"x": ["ok", "a\udc80"]},
    "surrogate-dict-key": {"\ud800": 1},
    "nested-surrogate-dict-key": {"a": {"b": {"\udfff": 1}}},
    "list": [1, 2],
    "string": "text",
    "none": None,
    "int": 3,
    "list-of-pairs": [("a", 1)],
}

BAD_KEYS: dict[str, object] = {
    "empty": "",
    "int": 1,
    "bytes": b"k",
    "newline": "a\nb",
    "nul": "a\x00b",
    "tab": "\t",
    "delete": "a\x7f",
    "too-long": "k" * (MAX_KEY_LENGTH + 1),
    "lone-surrogate": "\ud800",
    "low-surrogate-inside": "a\udc80b",
}


@pytest.fixture
def filled(history_path: Path) -> Iterator[IterationHistory]:
    with IterationHistory(history_path, max_record_bytes=1000) as history:
        history.extend([{"i": 1}, {"i": 2}])
        history.append({"i": 3}, key="three")
        yield history


def assert_rejected(history: IterationHistory, call: Callable[[], object]) -> None:
    before = history.path.read_bytes()
    last_seq = history.last_seq
    with pytest.raises(InvalidInputError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, SnapstoreError)
    assert history.path.read_bytes() == before
    assert history.last_seq == last_seq
    # The handle is still usable.
    assert history.append({"after": True}).seq == last_seq + 1


@pytest.mark.parametrize("data", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_data_is_rejected_by_append(filled: IterationHistory, data: Any) -> None:
    assert_rejected(filled, lambda: filled.append(data))


@pytest.mark.parametrize("data", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_one_bad_item_rejects_the_whole_extend(filled: IterationHistory, data: Any) -> None:
    assert_rejected(filled, lambda: filled.extend([{"ok": 1}, data, {"ok": 2}]))


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_key_is_rejected(filled: IterationHistory, key: Any) -> None:
    assert_rejected(filled, lambda: filled.append({"x": 1}, key=key))


def test_longest_key_is_accepted(filled: IterationHistory) -> None:
    key = "k" * MAX_KEY_LENGTH
    assert filled.append({"x": 1}, key=key).key == key


def test_record_over_max_record_bytes_is_rejected(filled: IterationHistory) -> None:
    # {"s":"..."} is 8 bytes of framing around the string.
    filled.append({"s": "x" * (1000 - 8)})
    with pytest.raises(InvalidInputError, match="max_record_bytes"):
        filled.append({"s": "x" * (1000 - 7)})
    assert_rejected(filled, lambda: filled.append({"s": "x" * 10_000}))


def test_nan_in_a_payload_holding_null_is_kept_apart_from_null(filled: IterationHistory) -> None:
    # orjson writes NaN as null: a payload holding both must keep each.
    record = filled.append({"a": None, "b": [None, NAN]})
    (read,) = filled.load_recent(1)
    for data in (record.data, read.data):
        assert data["a"] is None
        assert data["b"][0] is None
        assert math.isnan(data["b"][1])


BAD_APPENDS: dict[str, tuple[dict[str, Any], str | None]] = {
    "surrogate-key": ({"x": 1}, "\ud800"),
    "surrogate-value": ({"x": "\ud800"}, None),
    "surrogate-dict-key": ({"\udc80": 1}, None),
}


@pytest.mark.parametrize(("data", "key"), BAD_APPENDS.values(), ids=BAD_APPENDS.keys())
def test_a_bad_record_fails_only_its_own_append_among_concurrent_appends(
    history_path: Path, data: dict[str, Any], key: str | None
) -> None:
    # Concurrent appends share a write (group commit): a record that cannot be
    # encoded must be refused before it joins one, or it fails its batch-mates.
    writers, per_writer = 8, 150
    innocent_failures: list[BaseException] = []
    refused: list[BaseException] = []
    start = threading.Barrier(writers + 1)

    def innocent(writer: int) -> None:
        start.wait()
        for i in range(per_writer):
            try:
                history.append({"writer": writer, "i": i}, key=f"{writer}-{i}")
            except Exception as exc:
                innocent_failures.append(exc)

    def culprit() -> None:
        start.wait()
        for _ in range(per_writer):
            try:
                history.append(data, key=key)
            except Exception as exc:
                refused.append(exc)

    with IterationHistory(history_path) as history:
        threads = [threading.Thread(target=innocent, args=(w,)) for w in range(writers)]
        threads.append(threading.Thread(target=culprit))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert innocent_failures == [], (
            f"{len(innocent_failures)} appends with valid records failed: {innocent_failures[0]!r}"
        )
        assert len(refused) == per_writer
        assert all(type(exc) is InvalidInputError for exc in refused), refused[:3]
        assert len(history) == writers * per_writer
    lines = check_log(history_path)
    assert {line["key"] for line in lines} == {
        f"{w}-{i}" for w in range(writers) for i in range(per_writer)
    }


def tree(root: Path) -> list[str]:
    """Every file and directory under ``root``, to prove a refused call created nothing."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def nul_path(tmp_path: Path) -> str:
    return f"{tmp_path}/a\x00b"


REFUSED_OPENS: dict[str, Callable[[Path], object]] = {
    "store-nul": lambda d: SnapshotStore(nul_path(d)),
    "store-nul-pathlib": lambda d: SnapshotStore(d / "a\x00b"),
    "store-nul-in-a-parent": lambda d: SnapshotStore(d / "a\x00" / "store"),
    "store-surrogate": lambda d: SnapshotStore(d / "a\ud800b"),
    "store-int-path": lambda _: SnapshotStore(5),  # type: ignore[arg-type]
    "store-none-path": lambda _: SnapshotStore(None),  # type: ignore[arg-type]
    "store-bytes-path": lambda d: SnapshotStore(bytes(d / "s")),  # type: ignore[arg-type]
    "history-nul": lambda d: IterationHistory(nul_path(d) + ".jsonl"),
    "history-nul-pathlib": lambda d: IterationHistory(d / "a\x00b.jsonl"),
    "history-surrogate": lambda d: IterationHistory(d / "a\ud800b.jsonl"),
    "history-int-path": lambda _: IterationHistory(5),  # type: ignore[arg-type]
    "quarantine-dir-nul": lambda d: IterationHistory(d / "h.jsonl", quarantine_dir=d / "q\x00"),
    "quarantine-dir-int": lambda d: IterationHistory(d / "h.jsonl", quarantine_dir=5),
    "legacy-source-nul": lambda d: SnapshotStore.import_legacy(nul_path(d), d / "new"),
    "legacy-target-nul": lambda d: SnapshotStore.import_legacy(d / "legacy", nul_path(d)),
    "checkpoint-every-str": lambda d: SnapshotStore(d / "s", checkpoint_every="x"),
    "checkpoint-every-float": lambda d: SnapshotStore(d / "s", checkpoint_every=1.5),
    "checkpoint-every-true": lambda d: SnapshotStore(d / "s", checkpoint_every=True),
    "checkpoint-every-none": lambda d: SnapshotStore(d / "s", checkpoint_every=None),
    "checkpoint-every-zero": lambda d: SnapshotStore(d / "s", checkpoint_every=0),
    "store-lock-timeout-true": lambda d: SnapshotStore(d / "s", lock_timeout=True),
    "store-lock-timeout-str": lambda d: SnapshotStore(d / "s", lock_timeout="1"),  # type: ignore[arg-type]
    "store-max-record-bytes-true": lambda d: SnapshotStore(d / "s", max_record_bytes=True),
    "store-max-record-bytes-float": lambda d: SnapshotStore(d / "s", max_record_bytes=1e6),  # type: ignore[arg-type]
    "store-strict-str": lambda d: SnapshotStore(d / "s", strict="no"),
    "store-durability": lambda d: SnapshotStore(d / "s", durability="sync"),  # type: ignore[arg-type]
    "history-lock-timeout-true": lambda d: IterationHistory(d / "h.jsonl", lock_timeout=True),
    "history-lock-timeout-nan": lambda d: IterationHistory(d / "h.jsonl", lock_timeout=NAN),
    "history-max-record-bytes-true": lambda d: IterationHistory(
        d / "h.jsonl", max_record_bytes=True
    ),
    "history-strict-str": lambda d: IterationHistory(d / "h.jsonl", strict="no"),
    "history-tolerant-str": lambda d: IterationHistory(d / "h.jsonl", tolerant="no"),
    "history-not-jsonl": lambda d: IterationHistory(d / "sub" / "h.txt"),
}


@pytest.mark.parametrize("call", REFUSED_OPENS.values(), ids=REFUSED_OPENS.keys())
def test_a_refused_open_raises_invalid_input_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: Callable[[Path], object]
) -> None:
    # Relative paths (the int, None and bytes cases) would land in the cwd.
    monkeypatch.chdir(tmp_path)
    # An older layout to import, so that the import reaches the store's path.
    legacy = tmp_path / "legacy" / "snapshot_index.json"
    legacy.parent.mkdir()
    legacy.write_text('{"run-1:TRAIN": {"run_id": "run-1", "stage": "TRAIN", "snapshot_seq": 1}}')
    before = tree(tmp_path)
    with pytest.raises(InvalidInputError):
        call(tmp_path)
    assert tree(tmp_path) == before


def test_a_history_name_with_nul_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        before = tree(tmp_path)
        with pytest.raises(InvalidInputError):
            store.history("a\x00b")
        with pytest.raises(InvalidInputError):
            store.history("a\ud800b")
        assert tree(tmp_path) == before


BAD_SEQS: dict[str, object] = {
    "str": "1",
    "float": 1.0,
    "true": True,
    "false": False,
    "none": None,
}


@pytest.mark.parametrize("seq", BAD_SEQS.values(), ids=BAD_SEQS.keys())
def test_get_with_a_seq_that_is_not_an_int_is_refused(filled: IterationHistory, seq: Any) -> None:
    assert_rejected(filled, lambda: filled.get(seq))


@pytest.mark.parametrize("seq", BAD_SEQS.values(), ids=BAD_SEQS.keys())
def test_get_by_seq_with_a_seq_that_is_not_an_int_is_refused(tmp_path: Path, seq: Any) -> None:
    with SnapshotStore(tmp_path / "s") as store, pytest.raises(InvalidInputError):
        store.get_by_seq(seq)


BAD_COUNTS: dict[str, object] = {
    "str": "3",
    "float": 1.5,
    "true": True,
    "none": None,
    "negative": -1,
}


@pytest.mark.parametrize("n", BAD_COUNTS.values(), ids=BAD_COUNTS.keys())
def test_load_recent_with_a_count_that_is_not_a_natural_number_is_refused(
    filled: IterationHistory, n: Any
) -> None:
    assert_rejected(filled, lambda: filled.load_recent(n))


@pytest.mark.parametrize("items", [5, None, 1.5], ids=["int", "none", "float"])
def test_extend_with_something_that_is_not_iterable_is_refused(
    filled: IterationHistory, items: Any
) -> None:
    assert_rejected(filled, lambda: filled.extend(items))


def test_valid_seqs_and_counts_still_work(filled: IterationHistory) -> None:
    assert filled.get(2).data == {"i": 2}
    assert [r.seq for r in filled.load_recent(2)] == [2, 3]
    assert filled.load_recent(0) == []
    with pytest.raises(NotFoundError):
        filled.get(99)


BAD_SNAPSHOT_FIELDS: dict[str, dict[str, Any]] = {
    "seq-str": {"snapshot_seq": "1"},
    "seq-float": {"snapshot_seq": 1.0},
    "seq-true": {"snapshot_seq": True},
    "created-at-str": {"created_at": "2026-01-01T00:00:00+00:00"},
    "created-at-number": {"created_at": 1_700_000_000},
}


@pytest.mark.parametrize("fields", BAD_SNAPSHOT_FIELDS.values(), ids=BAD_SNAPSHOT_FIELDS.keys())
def test_a_snapshot_field_of_the_wrong_type_is_refused(fields: Any) -> None:
    # Refused when made, not later by a store that compares the seq with its
    # own (TypeError) or pins a bool as a seq.
    with pytest.raises(InvalidInputError):
        NormalizedSnapshot("run", "stage", **fields)


BAD_SNAPSHOT_DICTS: dict[str, object] = {
    "int": 5,
    "list": ["run_id", "stage"],
    "bad-created-at": {"run_id": "r", "stage": "s", "created_at": "not a time"},
    "bad-seq": {"run_id": "r", "stage": "s", "snapshot_seq": "1"},
}


@pytest.mark.parametrize("value", BAD_SNAPSHOT_DICTS.values(), ids=BAD_SNAPSHOT_DICTS.keys())
def test_from_dict_of_a_bad_value_is_refused(value: Any) -> None:
    with pytest.raises(InvalidInputError):
        NormalizedSnapshot.from_dict(value)


def test_repair_with_a_dry_run_that_is_not_a_bool_is_refused(tmp_path: Path) -> None:
    # dry_run="no" would be true: a repair asked not to be dry would do nothing.
    with SnapshotStore(tmp_path / "s") as store:
        history = store.history("h")
        history.append({"i": 1})
        before = tree(tmp_path)
        for handle in (store, history):
            with pytest.raises(InvalidInputError):
                handle.repair(dry_run="no")  # type: ignore[arg-type]
        assert tree(tmp_path) == before
