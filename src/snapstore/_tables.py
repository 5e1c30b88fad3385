"""Records as tables: one typed column per field, nested keys dotted, rows chosen by conditions.

What ``SnapshotStore.to_arrow`` and ``IterationHistory.to_arrow`` build, for
every backend: the table of snapshots (``snapshot_table``) and of a history's
records (``history_table``). A record's mappings are flattened (``metrics.auc``,
``config.optimizer.lr``); each column gets the one type that holds all its
values, by this rule (docs/api.md, "Tables"):

- only booleans: ``bool``; only integers: ``int64``; only floats, or floats
  and integers a float holds exactly (up to 2**53 either way): ``float64``;
  only strings: ``string``;
- anything else (lists, empty mappings, integers beyond int64, floats with
  an integer beyond 2**53, or a mix such as numbers and strings): ``string``
  holding each value as JSON text;
- a record without the field: null.

Conditions (``"metrics.auc > 0.8"``) compare one column with a JSON literal
(a bare word is a string, but not one that starts like an operator or like
JSON: ``"a => 1"`` is an error, not ``a = "> 1"``); a record whose value is
missing, or of a type the literal cannot be ordered against, does not match.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import InvalidInputError
from snapstore._extras import import_extra
from snapstore._values import dumps
from snapstore.snapshot import MAPPINGS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    import pandas as pd
    import pyarrow as pa

    from snapstore._records import HistoryRecord
    from snapstore.snapshot import NormalizedSnapshot

Row = dict[str, Any]

_INT64 = range(-(2**63), 2**63)
# The integers a float64 column takes: beyond these a float would round them.
_FLOAT_EXACT = range(-(2**53), 2**53 + 1)
# What a bare word may not start with: the rest of a mistyped operator
# ("a => 1" would read as a = "> 1"), or JSON that did not parse.
_NOT_A_WORD = tuple('<>=!"[{')
_CONDITION = re.compile(
    r"\s*(?P<column>[^\s<>=!]+)\s*(?P<op>==|!=|<=|>=|<|>|=)\s*(?P<value>.*?)\s*"
)
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def snapshot_table(
    snapshots: Iterable[NormalizedSnapshot], baselines: set[int], where: str | Iterable[str]
) -> pa.Table:
    """One row per snapshot: its identity, whether it is pinned (``baselines``), its fields."""
    import pyarrow as pa  # noqa: PLC0415 - heavy; only tables need it

    table = TableBuilder(
        [
            ("snapshot_seq", pa.int64()),
            ("run_id", pa.string()),
            ("stage", pa.string()),
            ("comparison_key", pa.string()),
            ("created_at", pa.timestamp("us", tz="UTC")),
            ("baseline", pa.bool_()),
        ],
        MAPPINGS,
        where,
    )
    for snap in snapshots:
        row = {
            "snapshot_seq": snap.snapshot_seq,
            "run_id": snap.run_id,
            "stage": snap.stage,
            "comparison_key": snap.comparison_key,
            "created_at": snap.created_at,
            "baseline": snap.snapshot_seq in baselines,
        }
        for name in MAPPINGS:
            flatten(name, getattr(snap, name), row)
        table.add(row)
    return table.table()


def history_table(records: Iterable[HistoryRecord], where: str | Iterable[str]) -> pa.Table:
    """One row per record: its seq, commit time and key, and its data's fields."""
    import pyarrow as pa  # noqa: PLC0415 - heavy; only tables need it

    table = TableBuilder(
        [("seq", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("key", pa.string())],
        ("data",),
        where,
    )
    for record in records:
        row = {"seq": record.seq, "ts": record.ts, "key": record.key}
        flatten("data", record.data, row)
        table.add(row)
    return table.table()


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as a DataFrame; without pandas, a ModuleNotFoundError naming the extra."""
    import_extra("pandas", "pandas", "to_pandas()")
    return table.to_pandas()


def flatten(prefix: str, mapping: Mapping[str, Any], row: Row) -> None:
    """Add each leaf of ``mapping`` to ``row`` under its dotted name below ``prefix``."""
    for name, value in mapping.items():
        column = f"{prefix}.{name}"
        if isinstance(value, dict) and value:
            flatten(column, value, row)
        else:
            row[column] = value


@dataclass(frozen=True, slots=True)
class Condition:
    """``column op value``: which rows a table keeps."""

    column: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> Condition:
        """``"metrics.auc > 0.8"``, ``"config.model == gbm"``, ``"data.note != null"``."""
        if not isinstance(text, str):
            raise InvalidInputError(
                f"a condition is text such as 'metrics.auc > 0.8', not {text!r}"
            )
        match = _CONDITION.fullmatch(text)
        if match is None or not match["value"]:
            raise InvalidInputError(
                f"cannot read the condition {text!r}: write COLUMN OP VALUE, with OP one of "
                "== != < <= > >=, e.g. 'metrics.auc > 0.8' or 'config.model == gbm'"
            )
        literal = match["value"]
        try:
            value = orjson.loads(literal)
        except orjson.JSONDecodeError:
            if literal.startswith(_NOT_A_WORD):
                raise InvalidInputError(
                    f"cannot read the condition {text!r}: {literal!r} is neither a JSON value "
                    "nor a word; OP is one of == != < <= > >=, and text that starts with "
                    'one of < > = ! " [ { is written as a JSON string'
                ) from None
            value = literal  # a bare word: the string it spells
        if isinstance(value, dict | list):
            raise InvalidInputError(f"{text!r}: a condition compares with one value, not {literal}")
        return cls(match["column"], match["op"], value)

    def holds(self, row: Row) -> bool:
        if self.column not in row:
            return False
        found, wanted = row[self.column], self.value
        if self.op in ("=", "==", "!="):
            same = _kind(found) == _kind(wanted) and found == wanted
            return same if self.op != "!=" else not same
        if _kind(found) != _kind(wanted) or found is None:
            return False  # no order between a number and a string, or with null
        return _OPERATORS[self.op](found, wanted)

    def __str__(self) -> str:
        return f"{self.column} {self.op} {orjson.dumps(self.value).decode()}"


def conditions(where: str | Iterable[str]) -> list[Condition]:
    """Each condition of ``where`` (one text, or several that must all hold)."""
    if isinstance(where, str):
        return [Condition.parse(where)]
    try:
        texts = iter(where)
    except TypeError:
        raise InvalidInputError(
            f"where is a condition such as 'metrics.auc > 0.8', or a list of them, not {where!r}"
        ) from None
    return [Condition.parse(text) for text in texts]


def _kind(value: object) -> str:
    # Booleans are not numbers here (True > 0.5 is no question a user asks),
    # and integers and floats are one kind (1 == 1.0).
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


class TableBuilder:
    """Rows in, a typed Arrow table out; rows failing a condition are left out.

    ``fixed``: the columns every row has, first and in this order, with their
    types. The flattened ones follow, ordered by their prefix's place in
    ``prefixes`` and then by name.
    """

    def __init__(
        self,
        fixed: list[tuple[str, pa.DataType]],
        prefixes: tuple[str, ...],
        where: str | Iterable[str] = (),
    ) -> None:
        self._fixed = fixed
        self._prefixes = prefixes
        self._conditions = conditions(where)
        # Kept by column, not by row: a million rows of a dozen cells held as
        # dicts take about ten times the memory of a dozen lists.
        self._columns: dict[str, list[Any]] = {name: [] for name, _type in fixed}
        self._count = 0
        self._seen: set[str] = set()

    def add(self, row: Row) -> None:
        if self._conditions:
            self._seen.update(row)
            if not all(condition.holds(row) for condition in self._conditions):
                return
        count, columns = self._count, self._columns
        for name, value in row.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * count  # a field the rows before lack
            column.append(value)
        self._count = count = count + 1
        if len(row) < len(columns):
            for column in columns.values():
                if len(column) < count:
                    column.append(None)  # a field this row lacks

    def table(self) -> pa.Table:
        import pyarrow as pa  # noqa: PLC0415 - heavy; only tables need it

        self._check_columns()
        fixed = [name for name, _type in self._fixed]
        flattened = sorted(self._columns.keys() - set(fixed), key=self._place)
        arrays = [pa.array(self._columns[name], kind) for name, kind in self._fixed]
        arrays.extend(_typed(self._columns[name]) for name in flattened)
        return pa.Table.from_arrays(arrays, names=fixed + flattened)

    def _place(self, name: str) -> tuple[int, str]:
        prefix = name.split(".", 1)[0]
        order = self._prefixes.index(prefix) if prefix in self._prefixes else len(self._prefixes)
        return order, name

    def _check_columns(self) -> None:
        # A misspelt column would match nothing and pass for an empty answer.
        if not self._seen:
            return  # no rows at all: nothing to name a column of
        fixed = [name for name, _type in self._fixed]
        for condition in self._conditions:
            if condition.column not in self._seen and condition.column not in fixed:
                known = fixed + sorted(self._seen - set(fixed), key=self._place)
                raise InvalidInputError(
                    f"no record has the column {condition.column!r} (in the condition "
                    f"'{condition}'); there are {', '.join(known[:12])}"
                    + (", ..." if len(known) > 12 else "")
                )


def _typed(values: list[Any]) -> pa.Array:
    """``values`` as one Arrow array, typed by the rule in this module's docstring."""
    import pyarrow as pa  # noqa: PLC0415 - heavy; only tables need it

    # Judged by the set of exact types, not value by value: a million cells
    # are one pass in C. A subclass (an IntEnum, say) falls to JSON text.
    kinds = {type(value) for value in values} - {type(None)}
    if kinds and kinds <= {int, float}:
        integers = [value for value in values if type(value) is int]
        # Integers a float64 (beside floats) or an int64 cannot hold exactly
        # make the column JSON text, which keeps every digit.
        exact = _FLOAT_EXACT if float in kinds else _INT64
        if not integers or (min(integers) in exact and max(integers) in exact):
            return pa.array(values, pa.float64() if float in kinds else pa.int64())
        kinds = {object}
    if not kinds:
        return pa.nulls(len(values), pa.string())
    if len(kinds) == 1 and (kind := kinds.pop()) in (bool, str):
        return pa.array(values, pa.bool_() if kind is bool else pa.string())
    return pa.array([None if value is None else json_text(value) for value in values], pa.string())


def json_text(value: object) -> str:
    """``value`` as the JSON text a mixed column holds."""
    return dumps(value, 0).decode()
