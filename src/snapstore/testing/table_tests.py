"""The cases every backend must pass for tables, store facts and diffs (see ``conformance``).

What a reader of a store asks beyond single snapshots: ``to_arrow`` and
``to_pandas`` (columns, types, selection, conditions), ``baselines()``,
``history_names()``, ``info()``, ``diff_previous`` and ``diff_baseline``; and
a history's ``to_arrow``. The column rule is in docs/api.md, "Tables".
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pyarrow as pa
import pytest

from snapstore import ClosedError, InvalidInputError, IterationHistory, SnapshotStore
from snapstore.snapshot import config_fingerprint
from snapstore.testing.store_tests import OTHER_CONFIG, snap
from snapstore.testing.support import (
    STAGES,
    HistoryHarness,
    HistorySuite,
    StoreHarness,
    StoreSuite,
    pipeline,
    save_all,
)

UTC_TIME = pa.timestamp("us", tz="UTC")
SNAPSHOT_COLUMNS = [
    ("snapshot_seq", pa.int64()),
    ("run_id", pa.string()),
    ("stage", pa.string()),
    ("comparison_key", pa.string()),
    ("created_at", UTC_TIME),
    ("baseline", pa.bool_()),
]
HISTORY_COLUMNS = [("seq", pa.int64()), ("ts", UTC_TIME), ("key", pa.string())]
# Enough rows that a reader that samples, pages or caps would show it.
MANY = 2500

# Two snapshots whose fields between them take every path of the column rule.
MIXED_METRICS: list[dict[str, Any]] = [
    {
        "count": 3,
        "auc": 0.9,
        "int_then_float": 1,
        "ok": True,
        "model": "gbm",
        "params": {"lr": 0.1, "depth": 6},
        "layers": [64, 32],
        "num_then_text": 1,
        "bool_then_int": True,
        "only_first": 7,
        "nothing": None,
    },
    {
        "count": 4,
        "auc": 1,
        "int_then_float": 2.5,
        "ok": False,
        "model": "rf",
        "params": {"lr": 0.05, "depth": 8},
        "layers": [128],
        "num_then_text": "one",
        "bool_then_int": 1,
        "nothing": None,
    },
]
# column -> (Arrow type, values as to_pylist gives them; JSON text columns decoded)
MIXED_COLUMNS: dict[str, tuple[pa.DataType, list[Any]]] = {
    "metrics.auc": (pa.float64(), [0.9, 1.0]),
    "metrics.bool_then_int": (pa.string(), [True, 1]),
    "metrics.count": (pa.int64(), [3, 4]),
    "metrics.int_then_float": (pa.float64(), [1.0, 2.5]),
    "metrics.layers": (pa.string(), [[64, 32], [128]]),
    "metrics.model": (pa.string(), ["gbm", "rf"]),
    "metrics.nothing": (pa.string(), [None, None]),
    "metrics.num_then_text": (pa.string(), [1, "one"]),
    "metrics.ok": (pa.bool_(), [True, False]),
    "metrics.only_first": (pa.int64(), [7, None]),
    "metrics.params.depth": (pa.int64(), [6, 8]),
    "metrics.params.lr": (pa.float64(), [0.1, 0.05]),
}
JSON_COLUMNS = {
    "metrics.bool_then_int",
    "metrics.layers",
    "metrics.num_then_text",
}


def column(table: pa.Table, name: str) -> list[Any]:
    return list(table.column(name).to_pylist())


def schema_of(table: pa.Table) -> list[tuple[str, pa.DataType]]:
    return [(field.name, field.type) for field in table.schema]


def decoded(values: list[Any]) -> list[Any]:
    """A JSON text column's values as the values they spell (nulls stay None)."""
    return [None if text is None else json.loads(text) for text in values]


def exact(values: list[Any]) -> list[str]:
    """Values as JSON text, so that ``1``, ``1.0`` and ``True`` stay apart in comparisons."""
    return [json.dumps(value) for value in values]


class StoreTableTests(StoreSuite):
    """Every case a snapshot backend must pass for tables, facts and diffs.

    Subclass and provide the ``harness`` fixture, as for ``SnapshotStoreTests``.
    """

    # -- columns and types -------------------------------------------------------

    def test_an_empty_store_has_the_fixed_columns_only(self, store: SnapshotStore) -> None:
        table = store.to_arrow()
        assert table.num_rows == 0
        assert schema_of(table) == SNAPSHOT_COLUMNS
        frame = store.to_pandas()
        assert len(frame) == 0
        assert list(frame.columns) == [name for name, _type in SNAPSHOT_COLUMNS]

    def test_one_row_per_snapshot_in_seq_order_with_its_identity(
        self, store: SnapshotStore
    ) -> None:
        saved = save_all(store, pipeline(runs=2))
        table = store.to_arrow()
        assert schema_of(table)[: len(SNAPSHOT_COLUMNS)] == SNAPSHOT_COLUMNS
        assert table.num_rows == len(saved)
        assert column(table, "snapshot_seq") == [s.snapshot_seq for s in saved]
        assert column(table, "run_id") == [s.run_id for s in saved]
        assert column(table, "stage") == [s.stage for s in saved]
        assert column(table, "comparison_key") == [s.comparison_key for s in saved]
        assert column(table, "created_at") == [s.created_at for s in saved]
        assert column(table, "baseline") == [False] * len(saved)
        assert column(table, "metrics.auc") == [s.metrics["auc"] for s in saved]
        assert column(table, "config.depth") == [s.config["depth"] for s in saved]
        assert column(table, "data.rows") == [s.data["rows"] for s in saved]
        frame = store.to_pandas()
        assert list(frame.columns) == table.column_names
        assert list(frame["snapshot_seq"]) == [s.snapshot_seq for s in saved]
        assert list(frame["metrics.auc"]) == [s.metrics["auc"] for s in saved]

    def test_columns_are_the_fixed_ones_then_metrics_config_data_each_by_name(
        self, store: SnapshotStore
    ) -> None:
        store.save_snapshot(
            snap(metrics={"b": 1, "a": 2}, config={"z": 1, "a": {"y": 1, "x": 2}}, data={"c": 1})
        )
        store.save_snapshot(snap("run-2", metrics={"0": 1}, data={"b": 2}))
        assert store.to_arrow().column_names == [
            *(name for name, _type in SNAPSHOT_COLUMNS),
            "metrics.0",
            "metrics.a",
            "metrics.b",
            "config.a.x",
            "config.a.y",
            "config.depth",
            "config.lr",
            "config.model",
            "config.z",
            "data.b",
            "data.c",
        ]

    def test_each_column_has_the_one_type_that_holds_all_its_values(
        self, store: SnapshotStore
    ) -> None:
        for i, metrics in enumerate(MIXED_METRICS):
            store.save_snapshot(snap(f"run-{i}", metrics=metrics))
        table = store.to_arrow()
        metric_columns = {name for name in table.column_names if name.startswith("metrics.")}
        assert metric_columns == set(MIXED_COLUMNS)
        for name, (arrow_type, expected) in MIXED_COLUMNS.items():
            assert table.schema.field(name).type == arrow_type, name
            values = column(table, name)
            if name in JSON_COLUMNS:
                assert all(isinstance(text, str) for text in values), name
                values = decoded(values)
            assert exact(values) == exact(expected), name

    def test_nested_mappings_are_dotted_and_an_empty_one_is_json_text(
        self, store: SnapshotStore
    ) -> None:
        config = {"optimizer": {"name": "adam", "betas": {"b1": 0.9, "b2": 0.999}}, "empty": {}}
        store.save_snapshot(snap(config=config, data={"deep": {"a": {"b": {"c": [1]}}}}))
        table = store.to_arrow()
        assert column(table, "config.optimizer.name") == ["adam"]
        assert column(table, "config.optimizer.betas.b1") == [0.9]
        assert column(table, "config.optimizer.betas.b2") == [0.999]
        assert table.schema.field("config.empty").type == pa.string()
        assert decoded(column(table, "config.empty")) == [{}]
        assert decoded(column(table, "data.deep.a.b.c")) == [[1]]
        assert "config.optimizer" not in table.column_names

    def test_a_field_some_snapshots_lack_is_null_there(self, store: SnapshotStore) -> None:
        store.save_snapshot(snap("run-1", metrics={"auc": 0.8, "f1": 0.5}))
        store.save_snapshot(snap("run-2", metrics={"auc": 0.9}))
        store.save_snapshot(snap("run-3", metrics={"auc": 0.7, "f1": None}))
        table = store.to_arrow()
        assert table.schema.field("metrics.f1").type == pa.float64()
        assert column(table, "metrics.f1") == [0.5, None, None]

    def test_integers_beyond_int64_make_a_json_text_column(self, store: SnapshotStore) -> None:
        store.save_snapshot(snap("run-1", data={"big": 2**63, "edge": 2**63 - 1}))
        store.save_snapshot(snap("run-2", data={"big": 1, "edge": -(2**63)}))
        table = store.to_arrow()
        assert table.schema.field("data.big").type == pa.string()
        assert decoded(column(table, "data.big")) == [2**63, 1]
        assert table.schema.field("data.edge").type == pa.int64()
        assert column(table, "data.edge") == [2**63 - 1, -(2**63)]

    def test_nan_and_the_infinities_stay_floats(self, store: SnapshotStore) -> None:
        for i, loss in enumerate([math.nan, math.inf, -math.inf, 1]):
            store.save_snapshot(snap(f"run-{i}", metrics={"loss": loss}))
        table = store.to_arrow()
        assert table.schema.field("metrics.loss").type == pa.float64()
        nan, *others = column(table, "metrics.loss")
        assert math.isnan(nan)
        assert others == [math.inf, -math.inf, 1.0]

    def test_integers_a_float_cannot_hold_exactly_make_a_float_column_json_text(
        self, store: SnapshotStore
    ) -> None:
        store.save_snapshot(snap("run-1", metrics={"n": 2**53 + 1, "m": 2**53}))
        store.save_snapshot(snap("run-2", metrics={"n": 0.5, "m": 0.5}))
        table = store.to_arrow()
        assert table.schema.field("metrics.n").type == pa.string()
        assert exact(decoded(column(table, "metrics.n"))) == exact([2**53 + 1, 0.5])
        assert table.schema.field("metrics.m").type == pa.float64()
        assert column(table, "metrics.m") == [2.0**53, 0.5]

    def test_the_baseline_column_marks_the_pinned_snapshots(self, store: SnapshotStore) -> None:
        first = store.get_or_establish_baseline(snap("run-1"))
        second = store.save_snapshot(snap("run-2"))
        other_group = store.get_or_establish_baseline(snap("run-3", config=OTHER_CONFIG))
        assert column(store.to_arrow(), "baseline") == [True, False, True]
        store.set_baseline(second)
        assert column(store.to_arrow(), "baseline") == [False, True, True]
        pinned = store.to_arrow(where="baseline == true")
        assert column(pinned, "snapshot_seq") == [second.snapshot_seq, other_group.snapshot_seq]
        assert first.snapshot_seq not in column(pinned, "snapshot_seq")

    # -- selecting rows ----------------------------------------------------------

    def test_stage_run_and_comparison_key_select_rows(self, store: SnapshotStore) -> None:
        saved = save_all(store, pipeline(runs=12))
        saved.append(store.save_snapshot(snap("other", config=OTHER_CONFIG)))

        def seqs(**selection: Any) -> list[int | None]:
            return column(store.to_arrow(**selection), "snapshot_seq")

        def expected(keep: Any) -> list[int | None]:
            return [s.snapshot_seq for s in saved if keep(s)]

        assert seqs() == expected(lambda _: True)
        assert seqs(stage="TRAINING") == expected(lambda s: s.stage == "TRAINING")
        assert seqs(run="run-1") == expected(lambda s: s.run_id == "run-1")
        assert seqs(run="run-1*") == expected(lambda s: s.run_id.startswith("run-1"))
        assert seqs(run="run-[23]") == expected(lambda s: s.run_id in {"run-2", "run-3"})
        assert seqs(run="run-?") == expected(
            lambda s: s.run_id[:4] == "run-" and len(s.run_id) == 5
        )
        assert seqs(run="*") == expected(lambda _: True)
        key = config_fingerprint({"model": "gbm", "depth": 0})  # as pipeline() makes
        by_key = expected(lambda s: s.comparison_key == key)
        assert by_key
        assert seqs(comparison_key=key) == by_key
        assert seqs(run="run-1*", stage="TRAINING", comparison_key=key) == expected(
            lambda s: (
                s.run_id.startswith("run-1") and s.stage == "TRAINING" and s.comparison_key == key
            )
        )

    def test_a_selection_that_matches_nothing_is_an_empty_table_with_fixed_columns(
        self, store: SnapshotStore
    ) -> None:
        save_all(store, pipeline(runs=2))
        selections: list[dict[str, Any]] = [
            {"stage": "NO_SUCH_STAGE"},
            {"run": "run-9"},
            {"run": "nothing*"},
            {"comparison_key": "no-such-key"},
        ]
        for selection in selections:
            table = store.to_arrow(**selection)
            assert table.num_rows == 0, selection
            assert schema_of(table) == SNAPSHOT_COLUMNS, selection

    def test_an_exact_run_name_is_not_a_prefix(self, store: SnapshotStore) -> None:
        store.save_snapshot(snap("run-1"))
        store.save_snapshot(snap("run-10"))
        store.save_snapshot(snap("xrun-1"))
        assert column(store.to_arrow(run="run-1"), "run_id") == ["run-1"]

    def test_latest_only_keeps_the_latest_version_of_each_run_and_stage(
        self, store: SnapshotStore
    ) -> None:
        a1 = store.save_snapshot(snap("run-1", metrics={"v": 1}))
        b1 = store.save_snapshot(snap("run-2", metrics={"v": 1}))
        a_fs = store.save_snapshot(snap("run-1", "FEATURE_SELECTION", metrics={"v": 1}))
        a2 = store.save_snapshot(snap("run-1", metrics={"v": 2}))
        a3 = store.save_snapshot(snap("run-1", metrics={"v": 3}))
        table = store.to_arrow(latest_only=True)
        assert column(table, "snapshot_seq") == [
            b1.snapshot_seq,
            a_fs.snapshot_seq,
            a3.snapshot_seq,
        ]
        assert column(store.to_arrow(latest_only=False), "snapshot_seq") == [
            s.snapshot_seq for s in (a1, b1, a_fs, a2, a3)
        ]
        assert column(
            store.to_arrow(run="run-1", stage="TRAINING", latest_only=True), "metrics.v"
        ) == [3]

    def test_latest_only_never_gives_a_superseded_version(self, store: SnapshotStore) -> None:
        old = store.save_snapshot(snap("run-1", metrics={"auc": 0.9}))
        store.save_snapshot(snap("run-2"))
        new = store.save_snapshot(snap("run-1", config=OTHER_CONFIG, metrics={"auc": 0.5}))
        # run-1's latest TRAINING version is in another group now: the group
        # holds no latest version of run-1, and its old one is not passed off as one.
        table = store.to_arrow(comparison_key=old.comparison_key, latest_only=True)
        assert column(table, "run_id") == ["run-2"]
        table = store.to_arrow(comparison_key=new.comparison_key, latest_only=True)
        assert column(table, "snapshot_seq") == [new.snapshot_seq]
        # Likewise a condition is asked of the latest versions only.
        assert store.to_arrow(latest_only=True, where="metrics.auc > 0.8").num_rows == 0
        assert store.to_arrow(where="metrics.auc > 0.8").num_rows == 1

    def test_where_keeps_the_rows_that_meet_every_condition(self, store: SnapshotStore) -> None:
        saved = save_all(store, pipeline(runs=6))

        def seqs(where: Any) -> list[int | None]:
            return column(store.to_arrow(where=where), "snapshot_seq")

        def expected(keep: Any) -> list[int | None]:
            return [s.snapshot_seq for s in saved if keep(s)]

        assert seqs("metrics.auc > 0.74") == expected(lambda s: s.metrics["auc"] > 0.74)
        assert seqs(["metrics.auc > 0.72", "config.depth == 0"]) == expected(
            lambda s: s.metrics["auc"] > 0.72 and s.config["depth"] == 0
        )
        assert seqs(("stage = TRAINING", "data.rows <= 30")) == expected(
            lambda s: s.stage == "TRAINING" and s.data["rows"] <= 30
        )
        assert seqs("snapshot_seq >= 10") == list(range(10, len(saved) + 1))
        assert seqs("run_id == run-2") == expected(lambda s: s.run_id == "run-2")
        assert seqs("run_id != run-2") == expected(lambda s: s.run_id != "run-2")
        assert seqs("config.model == gbm") == expected(lambda _: True)
        assert seqs('config.model == "gbm"') == expected(lambda _: True)
        assert seqs("config.model > gbm") == []
        assert seqs("metrics.auc > 2") == []
        assert seqs([]) == expected(lambda _: True)

    def test_a_condition_on_a_field_some_rows_lack_keeps_those_that_meet_it(
        self, store: SnapshotStore
    ) -> None:
        store.save_snapshot(snap("run-1", metrics={"auc": 0.9}))
        store.save_snapshot(snap("run-2", metrics={"loss": 0.1}))
        store.save_snapshot(snap("run-3", metrics={"auc": 0.7, "loss": None}))
        assert column(store.to_arrow(where="metrics.auc > 0.5"), "run_id") == ["run-1", "run-3"]
        assert column(store.to_arrow(where="metrics.loss != null"), "run_id") == ["run-2"]
        assert column(store.to_arrow(where="metrics.loss == null"), "run_id") == ["run-3"]

    def test_a_condition_compares_numbers_as_numbers_and_nothing_else(
        self, store: SnapshotStore
    ) -> None:
        for i, value in enumerate([1, 1.0, True, "1", 2, [1]]):
            store.save_snapshot(snap(f"run-{i}", metrics={"m": value}))

        def runs(where: str) -> list[str]:
            return column(store.to_arrow(where=where), "run_id")

        assert runs("metrics.m == 1") == ["run-0", "run-1"]
        assert runs("metrics.m = 1.0") == ["run-0", "run-1"]
        assert runs("metrics.m >= 1") == ["run-0", "run-1", "run-4"]
        assert runs("metrics.m == true") == ["run-2"]
        assert runs('metrics.m == "1"') == ["run-3"]
        assert runs("metrics.m > 0") == ["run-0", "run-1", "run-4"]  # True is no number here

    def test_a_misspelt_column_is_an_error_that_names_it(self, store: SnapshotStore) -> None:
        save_all(store, pipeline(runs=2))
        for where, misspelt in (
            ("metrics.acu > 0.8", "metrics.acu"),
            (["metrics.auc > 0.1", "metrcs.auc > 0.8"], "metrcs.auc"),
        ):
            with pytest.raises(InvalidInputError, match=re.escape(f"'{misspelt}'")) as raised:
                store.to_arrow(where=where)
            assert "metrics.auc" in str(raised.value)  # it lists the columns there are
        with pytest.raises(InvalidInputError, match=r"'config\.optimizer'"):
            store.to_arrow(where="config.optimizer == adam")

    def test_a_column_only_filtered_out_rows_have_is_no_misspelling(
        self, store: SnapshotStore
    ) -> None:
        store.save_snapshot(snap("run-1", "FEATURE_SELECTION", metrics={"kept": 10}))
        store.save_snapshot(snap("run-1", metrics={"auc": 0.9}))
        table = store.to_arrow(where=["metrics.kept > 5", "stage == TRAINING"])
        assert table.num_rows == 0

    @pytest.mark.parametrize(
        "where",
        [
            "metrics.auc",
            "metrics.auc >",
            "> 0.8",
            "metrics.auc ! 0.8",
            "metrics.auc => 0.8",
            "metrics.auc =< 0.8",
            "metrics.auc >> 0.8",
            "metrics.auc <> 0.8",
            'config.model == "gbm',
            "metrics.auc == [0.8]",
            'config == {"model": "gbm"}',
            "",
            ["metrics.auc > 0.1", "nonsense"],
            [0.8],
            5,
            None,
        ],
        ids=repr,
    )
    def test_a_condition_that_cannot_be_read_is_an_invalid_input_error(
        self, store: SnapshotStore, where: Any
    ) -> None:
        save_all(store, pipeline(runs=1))
        with pytest.raises(InvalidInputError):
            store.to_arrow(where=where)

    @pytest.mark.parametrize(
        "selection",
        [
            {"stage": "b:c"},
            {"stage": 7},
            {"run": ""},
            {"run": 7},
            {"comparison_key": ""},
            {"comparison_key": 7},
            {"latest_only": "yes"},
            {"latest_only": 1},
        ],
        ids=repr,
    )
    def test_a_bad_selection_is_an_invalid_input_error(
        self, store: SnapshotStore, selection: dict[str, Any]
    ) -> None:
        save_all(store, pipeline(runs=1))
        with pytest.raises(InvalidInputError):
            store.to_arrow(**selection)
        with pytest.raises(InvalidInputError):
            store.to_pandas(**selection)

    def test_every_snapshot_is_in_the_table_none_is_sampled(self, harness: StoreHarness) -> None:
        store = harness.open(durability="write")  # the rows matter here, not their syncs
        for i in range(MANY):
            store.save_snapshot(snap(f"run-{i}", STAGES[i % 3], metrics={"i": i}))
        table = store.to_arrow()
        assert table.num_rows == MANY
        assert column(table, "snapshot_seq") == list(range(1, MANY + 1))
        assert column(table, "metrics.i") == list(range(MANY))
        assert store.to_arrow(where="metrics.i >= 2000").num_rows == MANY - 2000
        assert store.to_arrow(stage=STAGES[0], latest_only=True).num_rows == (MANY + 2) // 3
        assert len(store.to_pandas()) == MANY

    def test_to_arrow_sees_another_handles_saves_and_pins(
        self, store: SnapshotStore, other: SnapshotStore
    ) -> None:
        assert store.to_arrow().num_rows == 0
        saved = other.save_snapshot(snap("run-1"))
        other.set_baseline(saved)
        table = store.to_arrow()
        assert column(table, "snapshot_seq") == [saved.snapshot_seq]
        assert column(table, "baseline") == [True]

    def test_a_reopened_store_gives_the_same_table(self, harness: StoreHarness) -> None:
        store = harness.open()
        saved = save_all(store, pipeline(runs=4))
        store.get_or_establish_baseline(saved[2])
        store.history("h").append({"loss": 0.5})
        before = store.to_arrow()
        store.close()
        again = harness.open(read_only=True).to_arrow()
        assert again.equals(before)
        assert again.schema.equals(before.schema)

    def test_to_pandas_takes_the_same_selection(self, store: SnapshotStore) -> None:
        save_all(store, pipeline(runs=4))
        store.save_snapshot(snap("run-2", metrics={"auc": 0.99}))
        selection: dict[str, Any] = {
            "stage": "TRAINING",
            "run": "run-[234]",
            "latest_only": True,
            "where": "metrics.auc > 0.72",
        }
        frame = store.to_pandas(**selection)
        table = store.to_arrow(**selection)
        assert list(frame.columns) == table.column_names
        assert list(frame["snapshot_seq"]) == column(table, "snapshot_seq")
        assert list(frame["run_id"]) == ["run-3", "run-4", "run-2"]

    # -- baselines() -------------------------------------------------------------

    def test_baselines_of_a_store_without_pins_is_empty(self, store: SnapshotStore) -> None:
        assert store.baselines() == []
        save_all(store, pipeline(runs=2))
        assert store.baselines() == []

    def test_baselines_holds_one_pin_per_group_by_stage_then_comparison_key(
        self, store: SnapshotStore
    ) -> None:
        pinned = [
            store.get_or_establish_baseline(snap("run-1", "TRAINING", comparison_key="b")),
            store.get_or_establish_baseline(snap("run-2", "FEATURE_SELECTION", comparison_key="z")),
            store.get_or_establish_baseline(snap("run-3", "TRAINING", comparison_key="a")),
            store.get_or_establish_baseline(snap("run-4", "FEATURE_SELECTION", comparison_key="c")),
            store.get_or_establish_baseline(snap("run-5", "AAA", comparison_key="z")),
        ]
        store.save_snapshot(snap("run-6", "TRAINING", comparison_key="a"))  # not pinned
        assert store.get_or_establish_baseline(snap("run-7", comparison_key="a")) == pinned[2]
        got = store.baselines()
        assert got == sorted(pinned, key=lambda s: (s.stage, s.comparison_key or ""))
        assert [(s.stage, s.comparison_key) for s in got] == [
            ("AAA", "z"),
            ("FEATURE_SELECTION", "c"),
            ("FEATURE_SELECTION", "z"),
            ("TRAINING", "a"),
            ("TRAINING", "b"),
        ]

    def test_baselines_shows_a_repinned_group_with_its_new_pin(
        self, store: SnapshotStore, other: SnapshotStore
    ) -> None:
        first = store.get_or_establish_baseline(snap("run-1"))
        elsewhere = store.get_or_establish_baseline(snap("run-2", config=OTHER_CONFIG))
        newer = store.save_snapshot(snap("run-3"))
        store.set_baseline(newer)
        expected = sorted([newer, elsewhere], key=lambda s: s.comparison_key or "")
        assert store.baselines() == expected
        assert other.baselines() == expected  # and another handle sees it
        assert first not in store.baselines()
        other.set_baseline(first)
        assert store.baselines() == sorted([first, elsewhere], key=lambda s: s.comparison_key or "")

    # -- history_names() -----------------------------------------------------------

    def test_history_names_of_an_empty_store_is_empty(self, store: SnapshotStore) -> None:
        assert store.history_names() == []

    def test_history_names_lists_the_written_histories_sorted(self, harness: StoreHarness) -> None:
        store = harness.open()
        store.history("run-2.TRAINING").append({"loss": 0.5})
        store.history("A").extend([{"loss": 1.0}, {"loss": 0.9}])
        store.history("run-1.TRAINING").append({"loss": 0.4}, key="i0")
        store.history("opened-only")  # opened, never written: no history yet
        expected = ["A", "run-1.TRAINING", "run-2.TRAINING"]
        assert store.history_names() == expected
        assert harness.open().history_names() == expected
        store.close()
        assert harness.open().history_names() == expected
        assert len(harness.open()) == 0  # histories are no snapshots

    # -- info() --------------------------------------------------------------------

    def test_info_of_an_empty_store(self, store: SnapshotStore) -> None:
        info = store.info()
        assert info.snapshots == 0
        assert info.seq_range is None
        assert info.baselines == 0
        assert info.histories == {}
        assert isinstance(info.location, str)
        assert info.location
        self._check_details(info.details)

    def test_info_counts_snapshots_pins_and_history_records(
        self, store: SnapshotStore, other: SnapshotStore
    ) -> None:
        saved = save_all(store, pipeline(runs=3))
        store.get_or_establish_baseline(saved[0])
        store.get_or_establish_baseline(saved[1])
        store.set_baseline(saved[6])  # a re-pin of saved[0]'s group: still two
        store.history("b").extend([{"i": i} for i in range(3)])
        other.history("a").append({"i": 0})
        other.save_snapshot(snap("run-9"))
        info = store.info()
        assert info.snapshots == len(saved) + 1
        assert info.seq_range == (1, len(saved) + 1)
        assert info.baselines == 2
        assert info.histories == {"a": 1, "b": 3}
        assert list(info.histories) == ["a", "b"]
        self._check_details(info.details)

    def _check_details(self, details: object) -> None:
        assert isinstance(details, dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in details.items())

    # -- diffs ---------------------------------------------------------------------

    def test_diff_previous_is_none_without_a_previous_comparable_run(
        self, store: SnapshotStore
    ) -> None:
        first = store.save_snapshot(snap("run-1"))
        assert store.diff_previous(first) is None
        again = store.save_snapshot(snap("run-1", metrics={"v": 2}))  # the same run
        assert store.diff_previous(again) is None
        elsewhere = store.save_snapshot(snap("run-2", config=OTHER_CONFIG))  # another group
        assert store.diff_previous(elsewhere) is None

    def test_diff_previous_compares_with_the_previous_comparable_run(
        self, store: SnapshotStore
    ) -> None:
        r1 = store.save_snapshot(snap("run-1", metrics={"auc": 0.5}, data={"rows": 10}))
        r2 = store.save_snapshot(snap("run-2", metrics={"auc": 0.75}, data={"rows": 12}))
        r3 = store.save_snapshot(snap("run-3", metrics={"auc": 0.6, "f1": 0.4}))
        diff = store.diff_previous(r3)
        assert diff is not None
        assert (diff.before, diff.after) == (r2, r3)
        by_name = {metric.name: metric for metric in diff.metrics}
        assert set(by_name) == {"auc", "f1"}
        assert by_name["auc"].absolute == pytest.approx(-0.15)
        assert by_name["auc"].relative == pytest.approx(-0.2)
        assert (by_name["f1"].before, by_name["f1"].after) == (None, 0.4)
        assert diff.data.removed == {"rows": 12}
        assert not diff.config
        older = store.diff_previous(r2)
        assert older is not None
        assert (older.before, older.after) == (r1, r2)
        unsaved = store.diff_previous(snap("run-4"))
        assert unsaved is not None
        assert unsaved.before == r3

    def test_diff_baseline_is_none_without_a_pin(self, store: SnapshotStore) -> None:
        saved = store.save_snapshot(snap("run-1"))
        assert store.diff_baseline(saved) is None
        assert store.diff_baseline(snap("run-2")) is None
        store.get_or_establish_baseline(snap("run-3", config=OTHER_CONFIG))  # another group
        assert store.diff_baseline(saved) is None

    def test_diff_baseline_compares_with_the_groups_pin(self, store: SnapshotStore) -> None:
        pinned = store.get_or_establish_baseline(snap("run-1", metrics={"auc": 0.8}))
        later = store.save_snapshot(snap("run-2", metrics={"auc": 0.9}))
        diff = store.diff_baseline(later)
        assert diff is not None
        assert (diff.before, diff.after) == (pinned, later)
        assert [m.name for m in diff.changed_metrics] == ["auc"]
        itself = store.diff_baseline(pinned)
        assert itself is not None
        assert itself.changed_metrics == ()
        store.set_baseline(later)
        repinned = store.diff_baseline(pinned)
        assert repinned is not None
        assert (repinned.before, repinned.after) == (later, pinned)

    @pytest.mark.parametrize("not_a_snapshot", [None, "run-1:TRAINING", 1])
    def test_a_diff_of_something_else_than_a_snapshot_is_refused(
        self, store: SnapshotStore, not_a_snapshot: Any
    ) -> None:
        store.save_snapshot(snap())
        with pytest.raises(InvalidInputError):
            store.diff_previous(not_a_snapshot)
        with pytest.raises(InvalidInputError):
            store.diff_baseline(not_a_snapshot)

    # -- lifecycle -----------------------------------------------------------------

    def test_a_closed_store_refuses_every_new_call(self, harness: StoreHarness) -> None:
        store = harness.open()
        saved = store.save_snapshot(snap())
        store.close()
        for call in (
            store.to_arrow,
            lambda: store.to_arrow(where="metrics.auc > 0"),
            store.to_pandas,
            store.baselines,
            store.history_names,
            store.info,
            lambda: store.diff_previous(saved),
            lambda: store.diff_baseline(saved),
        ):
            with pytest.raises(ClosedError):
                call()


class HistoryTableTests(HistorySuite):
    """Every case a history backend must pass for ``to_arrow`` and ``to_pandas``.

    Subclass and provide the ``harness`` fixture, as for ``HistoryTests``.
    """

    def test_an_empty_history_has_the_fixed_columns_only(self, history: IterationHistory) -> None:
        table = history.to_arrow()
        assert table.num_rows == 0
        assert schema_of(table) == HISTORY_COLUMNS
        assert list(history.to_pandas().columns) == [name for name, _type in HISTORY_COLUMNS]

    def test_one_row_per_record_with_seq_time_key_and_typed_fields(
        self, history: IterationHistory
    ) -> None:
        records = [
            history.append({"epoch": 1, "loss": 0.5, "opt": {"lr": 0.1}, "tags": ["a"]}, key="e1"),
            history.append({"epoch": 2, "loss": 1, "opt": {"lr": 0.05}, "note": "warm"}),
            history.append({"epoch": 3, "loss": 0.25, "opt": {"lr": True}, "tags": []}, key="e3"),
        ]
        table = history.to_arrow()
        assert table.column_names == [
            *(name for name, _type in HISTORY_COLUMNS),
            "data.epoch",
            "data.loss",
            "data.note",
            "data.opt.lr",
            "data.tags",
        ]
        assert schema_of(table)[:3] == HISTORY_COLUMNS
        assert column(table, "seq") == [r.seq for r in records]
        assert column(table, "ts") == [r.ts for r in records]
        assert column(table, "key") == ["e1", None, "e3"]
        assert table.schema.field("data.epoch").type == pa.int64()
        assert column(table, "data.epoch") == [1, 2, 3]
        assert table.schema.field("data.loss").type == pa.float64()
        assert column(table, "data.loss") == [0.5, 1.0, 0.25]
        assert table.schema.field("data.note").type == pa.string()
        assert column(table, "data.note") == [None, "warm", None]
        assert table.schema.field("data.opt.lr").type == pa.string()  # floats and a bool
        assert exact(decoded(column(table, "data.opt.lr"))) == exact([0.1, 0.05, True])
        assert table.schema.field("data.tags").type == pa.string()
        assert decoded(column(table, "data.tags")) == [["a"], None, []]

    def test_where_keeps_the_records_that_meet_every_condition(
        self, history: IterationHistory
    ) -> None:
        history.extend(
            {"i": i, "loss": 1 / (i + 1), "phase": "warm" if i < 3 else "main"} for i in range(10)
        )
        history.append({"i": 10, "phase": "main"}, key="last")

        def seqs(where: Any) -> list[int]:
            return column(history.to_arrow(where=where), "seq")

        assert seqs("data.loss < 0.2") == [6, 7, 8, 9, 10]
        assert seqs(["data.loss < 0.2", "data.i <= 6"]) == [6, 7]
        assert seqs("data.phase == warm") == [1, 2, 3]
        assert seqs("seq > 9") == [10, 11]
        assert seqs("key == last") == [11]
        assert seqs("key != null") == [11]
        assert seqs("data.loss > 0.5") == [1]
        frame = history.to_pandas(where="data.phase = main")
        assert list(frame["seq"]) == list(range(4, 12))

    def test_a_misspelt_column_is_an_error_that_names_it(self, history: IterationHistory) -> None:
        history.extend([{"loss": 0.5}, {"loss": 0.4}])
        with pytest.raises(InvalidInputError, match=r"'data\.los'") as raised:
            history.to_arrow(where="data.los < 0.3")
        assert "data.loss" in str(raised.value)
        with pytest.raises(InvalidInputError, match="'loss'"):
            history.to_pandas(where="loss < 0.3")

    @pytest.mark.parametrize(
        "where", ["data.loss", "data.loss =< 1", "< 1", 'data.loss == "x', 7, None], ids=repr
    )
    def test_a_condition_that_cannot_be_read_is_an_invalid_input_error(
        self, history: IterationHistory, where: Any
    ) -> None:
        history.append({"loss": 0.5})
        with pytest.raises(InvalidInputError):
            history.to_arrow(where=where)

    def test_every_record_is_in_the_table_none_is_sampled(self, harness: HistoryHarness) -> None:
        history = harness.open(durability="write")
        history.extend({"i": i} for i in range(MANY))
        table = history.to_arrow()
        assert table.num_rows == MANY
        assert column(table, "seq") == list(range(1, MANY + 1))
        assert column(table, "data.i") == list(range(MANY))
        assert history.to_arrow(where="data.i < 100").num_rows == 100
        assert len(history.to_pandas()) == MANY

    def test_to_arrow_sees_another_handles_appends(
        self, history: IterationHistory, other: IterationHistory
    ) -> None:
        history.append({"i": 0})
        other.extend([{"i": 1}, {"i": 2}])
        assert column(history.to_arrow(), "data.i") == [0, 1, 2]
        assert column(history.to_arrow(), "seq") == [r.seq for r in other]

    def test_a_closed_history_refuses_a_table(self, harness: HistoryHarness) -> None:
        history = harness.open()
        history.append({"i": 0})
        history.close()
        for call in (history.to_arrow, history.to_pandas):
            with pytest.raises(ClosedError):
                call()
