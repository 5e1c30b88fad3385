"""Values as ML code produces them: one rule per kind, read back as documented.

numpy is a test dependency here (pyarrow's own); snapstore never imports it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import math
import pathlib
import shutil
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import pytest

from helpers import same_json
from snapstore import (
    InvalidInputError,
    IterationHistory,
    KeyConflictError,
    NormalizedSnapshot,
    SnapshotStore,
)

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
    "pandas float scalar": (pd.Series([0.75]).iloc[0], 0.75),
    "pandas int scalar": (pd.Series([4], dtype="int32").iloc[0], 4),
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
    "pandas timestamp": (
        pd.Timestamp("2026-01-02"),
        "pandas.Timestamp is not storable: store value.isoformat()",
    ),
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


NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _same_floats(read: object, written: object) -> bool:
    """Equal, NaN included (NaN is never == NaN), and of the same type."""
    if isinstance(written, float):
        return type(read) is float and (
            (math.isnan(read) and math.isnan(written)) or read == written
        )
    if isinstance(written, dict):
        return (
            isinstance(read, dict)
            and read.keys() == written.keys()
            and all(_same_floats(read[k], written[k]) for k in written)
        )
    if isinstance(written, list):
        return (
            isinstance(read, list)
            and len(read) == len(written)
            and all(map(_same_floats, read, written))
        )
    return same_json(read, written)


def test_nan_and_infinities_are_read_back_as_those_floats(tmp_path: Path) -> None:
    written = {
        "loss": math.nan,
        "bounds": [-math.inf, 0.0, math.inf],
        "nested": {"numpy": np.float32("nan"), "array": np.array([1.5, np.inf])},
        "none": None,
    }
    expected = {
        "loss": math.nan,
        "bounds": [-math.inf, 0.0, math.inf],
        "nested": {"numpy": math.nan, "array": [1.5, math.inf]},
        "none": None,
    }
    with IterationHistory(tmp_path / "h.jsonl") as history:
        first = history.append(written, key="k")
        assert history.append(written, key="k") == first  # a retry, not a conflict
        with pytest.raises(KeyConflictError):
            history.append({**written, "loss": None}, key="k")  # NaN is not null
    with IterationHistory(tmp_path / "h.jsonl") as history:
        (record,) = history
        assert history.verify().ok
    assert _same_floats(record.data, expected)
    with SnapshotStore(tmp_path / "s") as store:
        saved = store.save_snapshot(
            NormalizedSnapshot(
                "r", "eval", metrics={"loss": math.nan}, config={"clip": math.inf}, data=written
            )
        )
        # Re-saving the stored snapshot is a retry, though its NaN is not == to itself.
        assert store.save_snapshot(saved).snapshot_seq == saved.snapshot_seq
        assert len(store) == 1
        null_config = store.save_snapshot(NormalizedSnapshot("q", "eval", config={"clip": None}))
        assert null_config.comparison_key != saved.comparison_key
    with SnapshotStore(tmp_path / "s") as store:
        snap = store.get("r", "eval")
        assert store.verify().ok
    assert snap is not None
    assert _same_floats(dict(snap.metrics), {"loss": math.nan})
    assert _same_floats(dict(snap.config), {"clip": math.inf})
    assert _same_floats(dict(snap.data), expected)


@pytest.fixture
def non_finite_log(tmp_path: Path) -> Path:
    path = tmp_path / "h.jsonl"
    with IterationHistory(path) as history:
        history.append({"loss": 0.5})
        for value in NON_FINITE.values():
            history.append({"loss": value})
    return path


def test_pandas_reads_nan_and_infinities_as_floats(non_finite_log: Path) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.read_json(non_finite_log, lines=True)
    losses = [record["loss"] for record in frame["data"]]
    assert losses[0] == 0.5
    assert losses[1] is None or math.isnan(losses[1])  # pandas' missing value
    assert losses[2:] == [math.inf, -math.inf]


def test_duckdb_reads_nan_and_infinities_as_doubles(non_finite_log: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        f"SELECT data.loss FROM read_json('{non_finite_log}') ORDER BY seq"
    ).fetchall()
    losses = [row[0] for row in rows]
    assert losses[0] == 0.5
    assert math.isnan(losses[1])
    assert losses[2:] == [math.inf, -math.inf]


def test_jq_reads_nan_as_null_and_infinities_as_the_largest_doubles(non_finite_log: Path) -> None:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    done = subprocess.run(
        ["jq", "-c", ".data.loss", str(non_finite_log)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == [
        "0.5",
        "null",
        "1.7976931348623157e+308",
        "-1.7976931348623157e+308",
    ]
