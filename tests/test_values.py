"""Values as ML code produces them: one rule per kind, read back as documented.

numpy is a test dependency here (pyarrow's own); snapstore never imports it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import pathlib
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pytest

from helpers import same_json
from snapstore import InvalidInputError, IterationHistory, NormalizedSnapshot, SnapshotStore

if TYPE_CHECKING:
    from pathlib import Path


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


# A value, and what a reader gets back (compared with same_json: 1 is not 1.0).
STORED: dict[str, tuple[Any, Any]] = {
    "numpy float64": (np.float64(0.25), 0.25),
    "numpy float32": (np.float32(0.5), 0.5),
    "numpy float16": (np.float16(1.5), 1.5),
    "numpy int8": (np.int8(-3), -3),
    "numpy int64": (np.int64(2**40), 2**40),
    "numpy uint8": (np.uint8(255), 255),
    "numpy uint64": (np.uint64(7), 7),
    "numpy bool": (np.bool_(True), True),
    "numpy int array": (np.arange(3), [0, 1, 2]),
    "numpy float matrix": (np.array([[1.5, 2.0], [3.0, 4.5]]), [[1.5, 2.0], [3.0, 4.5]]),
    "numpy bool array": (np.array([True, False]), [True, False]),
    "numpy mean of a list": (np.mean([0.5, 1.5]), 1.0),
    "tuple": ((1, "a"), [1, "a"]),
    "uuid": (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    "enum": (Color.RED, "red"),
    "int enum": (Level.HIGH, 3),
}

# A value, and the words its refusal must contain (its type and the way out).
REFUSED: dict[str, tuple[Any, str]] = {
    "datetime": (dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "datetime.datetime is"),
    "date": (dt.date(2026, 1, 2), "datetime.date is not storable: store value.isoformat"),
    "time": (dt.time(1, 2), "datetime.time is not storable"),
    "decimal": (decimal.Decimal("0.1"), "decimal.Decimal is not storable: store float(value)"),
    "path": (pathlib.PurePosixPath("a"), "pathlib.PurePosixPath is not storable"),
    "set": ({1, 2}, "set is not storable: store a list"),
    "frozenset": (frozenset({1}), "frozenset is not storable"),
    "bytes": (b"x", "bytes is not storable: store text"),
    "object array": (np.array([object()]), "numpy.ndarray of dtype object is not storable"),
    "text array": (np.array(["a"]), "numpy.ndarray of dtype <U1 is not storable"),
    "numpy datetime": (np.datetime64("2026-01-02"), "numpy.datetime64 is not storable"),
    "numpy complex": (np.complex128(1j), "numpy.complex128 is not storable"),
    "object": (object(), "object is not storable"),
}


@pytest.mark.parametrize(("value", "expected"), STORED.values(), ids=STORED.keys())
def test_a_value_is_stored_as_its_json_form_in_records_and_snapshots(
    tmp_path: Path, value: Any, expected: Any
) -> None:
    with IterationHistory(tmp_path / "h.jsonl") as history:
        history.append({"v": value, "nested": [{"v": value}]})
    with IterationHistory(tmp_path / "h.jsonl") as history:
        (record,) = history
    assert same_json(record.data, {"v": expected, "nested": [{"v": expected}]})
    with SnapshotStore(tmp_path / "s") as store:
        store.save_snapshot(
            NormalizedSnapshot("r", "eval", metrics={"v": value}, config={"v": value})
        )
    with SnapshotStore(tmp_path / "s") as store:
        snap = store.get("r", "eval")
    assert snap is not None
    assert same_json(dict(snap.metrics), {"v": expected})
    assert same_json(dict(snap.config), {"v": expected})


@pytest.mark.parametrize(("value", "words"), REFUSED.values(), ids=REFUSED.keys())
def test_a_value_without_a_rule_is_refused_naming_its_place_and_type(
    tmp_path: Path, value: Any, words: str
) -> None:
    with IterationHistory(tmp_path / "h.jsonl") as history:
        with pytest.raises(InvalidInputError, match=r'^record\["a"\]\[1\]\["b"\]: ') as info:
            history.append({"a": [0, {"b": value}]})
        assert words in str(info.value)
        assert len(history) == 0
    with SnapshotStore(tmp_path / "s") as store:
        with pytest.raises(InvalidInputError, match=r'^metrics\["loss"\]: ') as info:
            store.save_snapshot(NormalizedSnapshot("r", "eval", metrics={"loss": value}))
        assert words in str(info.value)
        assert len(store) == 0


def test_a_key_that_is_not_text_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r'^config\["layers"\]: a key of type int'):
        NormalizedSnapshot("r", "eval", config={"layers": {1: "x"}}).with_comparison_key()


def test_numpy_values_group_with_the_plain_values_they_equal(tmp_path: Path) -> None:
    # Comparison groups follow the JSON stored: np.int64(10) is 10, and
    # np.float64(0.1) is 0.1; 10 and 10.0 (and True and 1) stay apart, as in
    # every store written before.
    with SnapshotStore(tmp_path / "s") as store:
        plain = store.save_snapshot(NormalizedSnapshot("a", "eval", config={"epochs": 10}))
        numpy = store.save_snapshot(
            NormalizedSnapshot("b", "eval", config={"epochs": np.int64(10)})
        )
        as_float = store.save_snapshot(NormalizedSnapshot("c", "eval", config={"epochs": 10.0}))
        as_bool = store.save_snapshot(NormalizedSnapshot("d", "eval", config={"epochs": True}))
        one = store.save_snapshot(NormalizedSnapshot("e", "eval", config={"epochs": 1}))
    assert plain.comparison_key == numpy.comparison_key
    assert as_float.comparison_key != plain.comparison_key
    assert as_bool.comparison_key != one.comparison_key


def test_snapstore_does_not_import_numpy_to_store_records(tmp_path: Path) -> None:
    script = f"""
import sys
from snapstore import IterationHistory
with IterationHistory({str(tmp_path / "h.jsonl")!r}) as history:
    history.append({{"loss": 0.5}})
    list(history)
print("numpy" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


def test_groups_of_stores_written_before_keep_their_keys() -> None:
    # The comparison key of a plain config is the one earlier versions wrote
    # (a hash of orjson's sorted-key JSON), so existing groups stay whole.
    config = {"lr": 0.1, "epochs": 10, "layers": [64, 32], "opt": {"name": "adam", "wd": 0.0}}
    written_before = (
        "cfg-" + hashlib.sha256(orjson.dumps(config, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    )
    snap = NormalizedSnapshot("r", "eval", config=config).with_comparison_key()
    assert snap.comparison_key == written_before
