"""Bad input gets InvalidInputError (a ValueError) and leaves the file unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

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
