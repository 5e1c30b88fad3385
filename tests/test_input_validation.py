"""Bad input gets InvalidInputError (a ValueError) and leaves the file unchanged."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from helpers import check_log
from snapstore import InvalidInputError, IterationHistory, SnapstoreError
from snapstore._record import MAX_KEY_LENGTH

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
    "nan": {"x": NAN},
    "infinity": {"x": INF},
    "minus-infinity": {"x": -INF},
    "nan-nested-in-list": {"a": [1, [2, {"b": NAN}]]},
    "infinity-nested-in-dict": {"a": {"b": {"c": INF}}, "n": None},
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


def test_nan_in_a_payload_holding_null_is_rejected(filled: IterationHistory) -> None:
    # NaN is detected separately from other nulls in the same payload.
    filled.append({"a": None, "b": [None, 1.5]})
    assert_rejected(filled, lambda: filled.append({"a": None, "b": [None, NAN]}))


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
