"""snapstore._tables: conditions, flattening, and the rule that types each column.

What every backend's tables do is in the shipped suite
(``snapstore.testing.table_tests``); here the rule itself, to its edges.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from hypothesis import assume, given

from snapstore import InvalidInputError, IterationHistory
from snapstore._tables import Condition, conditions, flatten, json_text
from store_strategies import table_records

if TYPE_CHECKING:
    from collections.abc import Iterator

INT64 = range(-(2**63), 2**63)
FLOAT_EXACT = range(-(2**53), 2**53 + 1)  # the integers a float64 column takes


@pytest.fixture
def history() -> Iterator[IterationHistory]:
    with IterationHistory("memory://") as history:
        yield history


def table_of(history: IterationHistory, records: list[dict[str, Any]]) -> pa.Table:
    history.extend(records)
    return history.to_arrow()


# -- reading a condition -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.auc > 0.8", ("metrics.auc", ">", 0.8)),
        ("metrics.auc>0.8", ("metrics.auc", ">", 0.8)),
        ("  metrics.auc   >=   0.8  ", ("metrics.auc", ">=", 0.8)),
        ("metrics.n < -3e2", ("metrics.n", "<", -300.0)),
        ("metrics.n <= 3", ("metrics.n", "<=", 3)),
        ("config.model == gbm", ("config.model", "==", "gbm")),
        ("config.model = gbm", ("config.model", "=", "gbm")),
        ("config.model != gbm", ("config.model", "!=", "gbm")),
        ('config.model == "gbm"', ("config.model", "==", "gbm")),
        ('config.name == "two  words"', ("config.name", "==", "two  words")),
        ("config.name == two  words", ("config.name", "==", "two  words")),
        ('config.name == "with \\"quotes\\""', ("config.name", "==", 'with "quotes"')),
        ('config.id == "42"', ("config.id", "==", "42")),
        ("config.id == 42", ("config.id", "==", 42)),
        ("data.note != null", ("data.note", "!=", None)),
        ("metrics.ok == true", ("metrics.ok", "==", True)),
        ("metrics.ok == false", ("metrics.ok", "==", False)),
        ("metrics.x == NaN", ("metrics.x", "==", "NaN")),  # no JSON number: a word
        ("metrics.x == 1.0", ("metrics.x", "==", 1.0)),
        ("run_id == run-1:a", ("run_id", "==", "run-1:a")),
        ("data.ünï == ✓", ("data.ünï", "==", "✓")),
    ],
)
def test_a_condition_is_a_column_an_operator_and_a_json_literal_or_a_word(
    text: str, expected: tuple[str, str, object]
) -> None:
    condition = Condition.parse(text)
    got = (condition.column, condition.op, condition.value)
    assert json.dumps(got) == json.dumps(expected)  # 1 and 1.0 and True kept apart
    assert Condition.parse(str(condition)) == condition


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "metrics.auc",
        "metrics.auc >",
        "metrics.auc >   ",
        "> 0.8",
        "metrics.auc ! 0.8",
        "metrics auc > 0.8",
        "metrics.auc => 0.8",
        "metrics.auc =< 0.8",
        "metrics.auc >> 0.8",
        "metrics.auc <> 0.8",
        "metrics.auc === 0.8",
        "metrics.auc == !0.8",
        'config.model == "gbm',
        "config.model == [gbm",
        "metrics.auc == [0.8]",
        'config == {"model": "gbm"}',
        "config.model == {gbm",
    ],
)
def test_a_condition_that_cannot_be_read_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"condition|compares with one value"):
        Condition.parse(text)


@pytest.mark.parametrize("text", [None, 5, 0.8, b"metrics.auc > 0.8", ["metrics.auc > 0.8"]])
def test_a_condition_is_text(text: Any) -> None:
    with pytest.raises(InvalidInputError, match="a condition is text"):
        Condition.parse(text)


@pytest.mark.parametrize("where", [None, 5, 0.8, object()], ids=repr)
def test_where_is_one_text_or_an_iterable_of_texts(where: Any) -> None:
    with pytest.raises(InvalidInputError):
        conditions(where)


def test_where_of_one_text_or_several() -> None:
    assert conditions("a > 1") == [Condition("a", ">", 1)]
    assert conditions(["a > 1", "b == x"]) == [Condition("a", ">", 1), Condition("b", "==", "x")]
    assert conditions(iter(("a > 1",))) == [Condition("a", ">", 1)]
    assert conditions(()) == []
    with pytest.raises(InvalidInputError):
        conditions(["a > 1", 2])  # type: ignore[list-item]


# -- which rows a condition keeps ----------------------------------------------

MISSING = object()


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        # ints and floats are one kind; booleans are not numbers
        ("x == 1", 1, True),
        ("x == 1", 1.0, True),
        ("x = 1", 1.0, True),
        ("x == 1.0", 1, True),
        ("x == 1", True, False),
        ("x == true", 1, False),
        ("x == true", True, True),
        ("x != 1", True, True),
        ("x != 1", 1.0, False),
        ("x > 0", True, False),
        ("x >= 1", 2**64 - 1, True),
        ("x < 0.5", -(2**63), True),
        ("x == 1", "1", False),
        ('x == "1"', "1", True),
        ('x == "1"', 1, False),
        # NaN is no number any order holds for, and equals nothing
        ("x > 0.5", math.nan, False),
        ("x < 0.5", math.nan, False),
        ("x == 0.5", math.nan, False),
        ("x != 0.5", math.nan, True),
        ("x == NaN", math.nan, False),  # the word NaN is text
        ("x < 1", math.inf, False),
        ("x > 1", math.inf, True),
        # null
        ("x == null", None, True),
        ("x == null", 0, False),
        ("x == null", "", False),
        ("x != null", None, False),
        ("x != null", 0, True),
        ("x > null", None, False),
        ("x > null", 1, False),
        ("x < 1", None, False),
        ("x != 1", None, True),
        # a missing value matches nothing, whatever the operator
        ("x == null", MISSING, False),
        ("x != null", MISSING, False),
        ("x != 1", MISSING, False),
        ("x < 1", MISSING, False),
        # strings are ordered as strings, and never against numbers
        ("x < b", "a", True),
        ("x < b", "ab", True),
        ("x > b", "B", False),
        ("x < 10", "5", False),
        ("x < b", 1, False),
        ("x == two words", "two words", True),
        ("x == two words", "two  words", False),
        ('x == " padded "', " padded ", True),
        ("x == padded", " padded ", False),
        # lists and mappings equal no literal and are ordered against none
        ("x == 1", [1], False),
        ("x > 1", [2], False),
        ("x != 1", [1], True),
        ("x == null", {}, False),
    ],
)
def test_a_condition_holds_for_values_of_its_literals_kind_only(
    text: str,
    value: object,
    holds: bool,
) -> None:
    row = {} if value is MISSING else {"x": value}
    assert Condition.parse(text).holds(row) is holds


# -- flattening ----------------------------------------------------------------


def test_flatten_dots_nested_keys_and_keeps_empty_mappings_as_leaves() -> None:
    row: dict[str, Any] = {}
    flatten("config", {"a": {"b": {"c": 1}, "d": [{"e": 1}]}, "empty": {}, "": {"": 2}}, row)
    assert row == {"config.a.b.c": 1, "config.a.d": [{"e": 1}], "config.empty": {}, "config..": 2}


# -- the column rule -----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "arrow_type", "column"),
    [
        ([True, False], pa.bool_(), [True, False]),
        ([1, -2], pa.int64(), [1, -2]),
        ([2**63 - 1, -(2**63)], pa.int64(), [2**63 - 1, -(2**63)]),
        ([0.5, -0.0], pa.float64(), [0.5, -0.0]),
        ([1, 0.5], pa.float64(), [1.0, 0.5]),
        ([2**53, -(2**53), 0.5], pa.float64(), [2.0**53, -(2.0**53), 0.5]),
        (["a", ""], pa.string(), ["a", ""]),
        ([1, None], pa.int64(), [1, None]),
        ([None, None], pa.string(), [None, None]),
        # JSON text: what no one Arrow type holds
        ([[1, 2], []], pa.string(), ["[1,2]", "[]"]),
        ([{}], pa.string(), ["{}"]),
        ([2**63, 1], pa.string(), ["9223372036854775808", "1"]),
        ([2**64 - 1], pa.string(), ["18446744073709551615"]),
        ([True, 1], pa.string(), ["true", "1"]),
        ([1, "1"], pa.string(), ["1", '"1"']),
        ([0.5, "x", None], pa.string(), ["0.5", '"x"', None]),
        ([2**53 + 1, 0.5], pa.string(), ["9007199254740993", "0.5"]),
        ([-(2**53) - 1, 1.0], pa.string(), ["-9007199254740993", "1.0"]),
        ([[math.nan], "x"], pa.string(), ["[NaN]", '"x"']),
    ],
)
def test_a_column_takes_the_one_type_that_holds_all_its_values(
    history: IterationHistory, values: list[Any], arrow_type: pa.DataType, column: list[Any]
) -> None:
    table = table_of(history, [{"v": value} for value in values])
    assert table.schema.field("data.v").type == arrow_type
    assert json.dumps(table.column("data.v").to_pylist()) == json.dumps(column)


def test_a_field_no_record_has_a_value_for_is_a_string_column_of_nulls(
    history: IterationHistory,
) -> None:
    table = table_of(history, [{"v": None}, {}, {"w": 1}])
    assert table.schema.field("data.v").type == pa.string()
    assert table.column("data.v").to_pylist() == [None, None, None]


def test_nan_and_infinities_in_a_float_column_are_the_floats(history: IterationHistory) -> None:
    table = table_of(history, [{"v": math.nan}, {"v": -math.inf}, {"v": 2}])
    assert table.schema.field("data.v").type == pa.float64()
    nan, *rest = table.column("data.v").to_pylist()
    assert math.isnan(nan)
    assert rest == [-math.inf, 2.0]


def test_json_text_spells_nan_and_infinities_as_pythons_json_reads_them() -> None:
    text = json_text({"nan": math.nan, "inf": [math.inf, -math.inf]})
    assert text == '{"nan":NaN,"inf":[Infinity,-Infinity]}'
    read = json.loads(text)
    assert math.isnan(read["nan"])
    assert read["inf"] == [math.inf, -math.inf]


def _leaves(prefix: str, mapping: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The flattening, written out again: dotted names, empty mappings as leaves."""
    for name, value in mapping.items():
        if isinstance(value, dict) and value:
            yield from _leaves(f"{prefix}.{name}", value)
        else:
            yield f"{prefix}.{name}", value


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if value in INT64 else "json"
    if isinstance(value, float):
        return "float"
    return "string" if isinstance(value, str) else "json"


def _expected_type(values: list[Any]) -> pa.DataType | None:
    """The rule of docs/api.md, "Tables"; None for a column of JSON text."""
    kinds = {_kind(value) for value in values if value is not None}
    if kinds == {"int", "float"}:
        exact = all(value in FLOAT_EXACT for value in values if _kind(value) == "int")
        return pa.float64() if exact else None
    if len(kinds) > 1 or kinds == {"json"}:
        return None
    named = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "string": pa.string()}
    return named[kinds.pop()] if kinds else pa.string()


def _same(got: Any, stored: Any) -> bool:
    """Equal, with the type (True is not 1, 1 is not 1.0), and NaN equal to NaN."""
    if isinstance(stored, float) and math.isnan(stored):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(stored, dict):
        return (
            isinstance(got, dict)
            and got.keys() == stored.keys()
            and all(_same(got[key], stored[key]) for key in stored)
        )
    if isinstance(stored, list):
        return (
            isinstance(got, list)
            and len(got) == len(stored)
            and all(_same(a, b) for a, b in zip(got, stored, strict=True))
        )
    return type(got) is type(stored) and got == stored


@given(table_records)
def test_every_column_follows_the_rule_and_every_value_comes_back(
    records: list[dict[str, Any]],
) -> None:
    flat = [list(_leaves("data", record)) for record in records]
    # Keys that hold dots can name one leaf twice ({"a.x": 1, "a": {"x": 2}}).
    assume(all(len({name for name, _ in leaves}) == len(leaves) for leaves in flat))
    with IterationHistory("memory://") as history:
        history.extend(records)
        stored = [dict(_leaves("data", record.data)) for record in history]
        table = history.to_arrow()
    names = {name for leaves in stored for name in leaves}
    assert set(table.column_names) == {"seq", "ts", "key", *names}
    for name in names:
        values = [leaves.get(name) for leaves in stored]
        expected = _expected_type(values)
        got = table.column(name).to_pylist()
        assert table.schema.field(name).type == (expected or pa.string()), name
        for value, cell in zip(values, got, strict=True):
            if value is None:
                assert cell is None, name
            elif expected is None:  # JSON text
                assert _same(json.loads(cell), value), (name, cell, value)
            elif expected == pa.float64():
                assert _same(cell, float(value)), (name, cell, value)
            else:
                assert _same(cell, value), (name, cell, value)


# -- to_pandas without pandas --------------------------------------------------

_WITHOUT_PANDAS = """
import sys
from importlib.abc import MetaPathFinder

class NoPandas(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoPandas())
from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore

with SnapshotStore("memory://") as store, IterationHistory("memory://") as history:
    store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING", metrics={"auc": 0.9}))
    history.append({"loss": 0.5})
    assert store.to_arrow().num_rows == 1  # Arrow alone needs no pandas
    for to_pandas in (store.to_pandas, history.to_pandas):
        try:
            to_pandas()
        except ModuleNotFoundError as missing:
            assert missing.name == "pandas", missing.name
            print(missing)
        else:
            raise SystemExit("to_pandas worked without pandas")
"""


def test_to_pandas_without_pandas_says_which_extra_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PANDAS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    messages = done.stdout.splitlines()
    assert len(messages) == 2
    for message in messages:
        assert "pip install 'snapstore[pandas]'" in message
        assert "to_pandas()" in message
