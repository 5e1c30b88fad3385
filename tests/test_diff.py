"""snapstore.diff: what changed between two snapshots, value by value and key by key.

``diff_previous`` and ``diff_baseline`` on every backend are in the shipped
suite (``snapstore.testing.table_tests``); here the comparison itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import orjson
import pytest

from snapstore import (
    FieldChange,
    InvalidInputError,
    MappingDiff,
    MetricChange,
    NormalizedSnapshot,
    SnapshotDiff,
    SnapshotStore,
    diff_snapshots,
)


def snap(run_id: str = "run-1", **fields: Any) -> NormalizedSnapshot:
    return NormalizedSnapshot(run_id, "TRAINING", **fields)


def metric(diff: SnapshotDiff, name: str) -> MetricChange:
    (found,) = (change for change in diff.metrics if change.name == name)
    return found


def same(a: object, b: object) -> bool:
    """Equal with types (1 is not 1.0 nor True), as JSON tells them apart."""
    return json.dumps(a) == json.dumps(b)


# -- metrics -------------------------------------------------------------------


def test_every_metric_of_either_snapshot_by_name_with_its_deltas() -> None:
    diff = diff_snapshots(
        snap(metrics={"auc": 0.8, "loss": 0.5, "only_before": 1, "val": {"auc": 0.7}}),
        snap("run-2", metrics={"auc": 0.9, "loss": 0.5, "only_after": 2, "val": {"auc": 0.6}}),
    )
    assert [m.name for m in diff.metrics] == ["auc", "loss", "only_after", "only_before", "val.auc"]
    auc = metric(diff, "auc")
    assert (auc.before, auc.after, auc.changed) == (0.8, 0.9, True)
    assert auc.absolute == pytest.approx(0.1)
    assert auc.relative == pytest.approx(0.125)
    loss = metric(diff, "loss")
    assert (loss.absolute, loss.relative, loss.changed) == (0.0, 0.0, False)
    assert metric(diff, "only_before") == MetricChange("only_before", 1, None, None, None)
    assert metric(diff, "only_after") == MetricChange("only_after", None, 2, None, None)
    assert metric(diff, "only_after").changed
    assert metric(diff, "val.auc").absolute == pytest.approx(-0.1)
    assert [m.name for m in diff.changed_metrics] == ["auc", "only_after", "only_before", "val.auc"]


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (1, 1.0, False),  # one number
        (1.0, 1, False),
        (0, -0.0, False),
        (2**64 - 1, 2**64 - 1, False),
        (math.nan, math.nan, False),  # stored and read back unchanged
        (math.inf, math.inf, False),
        (True, 1, True),  # a boolean is no number
        (False, 0, True),
        (True, True, False),
        (1, "1", True),
        (math.nan, 1.0, True),
        (math.inf, -math.inf, True),
        (None, None, False),
        (None, 0, True),
        ([1, 2], [1, 2], False),
        ([1, 2], [1.0, 2.0], True),  # inside a list, as stored
        ([math.nan], [math.nan], False),
        ({}, {}, False),
        ({}, [], True),
        ("a", "b", True),
    ],
    ids=repr,
)
def test_a_metric_changed_unless_its_values_are_the_same_as_stored(
    before: object,
    after: object,
    changed: bool,
) -> None:
    diff = diff_snapshots(snap(metrics={"m": before}), snap(metrics={"m": after}))
    assert metric(diff, "m").changed is changed
    assert [m.name for m in diff.changed_metrics] == (["m"] if changed else [])


@pytest.mark.parametrize(
    ("before", "after", "absolute", "relative"),
    [
        (2, 3, 1, 0.5),
        (-2, -1, 1, 0.5),  # relative to |before|
        (4, 2.0, -2.0, -0.5),
        (1, 1.0, 0.0, 0.0),
        (0, 5, 5, None),  # no ratio to nothing
        (-0.0, 5, 5.0, None),
        (0, 0, 0, None),
        (2**64 - 1, 2**63, -(2**63) + 1, -0.5),
        # a difference beyond what JSON writers hold (int64, uint64) is a float
        (2**64 - 1, -(2**63), float(-(2**64 - 1) - 2**63), -1.5),
        (-(2**63), 2**64 - 1, float(2**64 - 1 + 2**63), 3.0),
        (math.nan, 1, None, None),
        (1, math.nan, None, None),
        (math.inf, math.inf, None, None),
        (1, math.inf, None, None),
        (True, False, None, None),
        (1, True, None, None),
        ("1", 2, None, None),
        (None, 2, None, None),
        ([1], [2], None, None),
    ],
    ids=repr,
)
def test_deltas_only_between_two_numbers_with_a_finite_difference(
    before: object, after: object, absolute: float | None, relative: float | None
) -> None:
    change = metric(diff_snapshots(snap(metrics={"m": before}), snap(metrics={"m": after})), "m")
    assert same(change.absolute, absolute)
    if relative is None:
        assert change.relative is None
    else:
        assert change.relative == pytest.approx(relative)


# -- config and data -----------------------------------------------------------


def test_config_keys_added_removed_and_changed_by_dotted_name() -> None:
    before = {
        "opt": {"lr": 0.1, "name": "adam", "betas": {"b1": 0.9}},
        "depth": 6,
        "tags": ["a"],
        "was_mapping": {"x": 1},
        "same": {"deep": {"er": [1, {"k": None}]}},
    }
    after = {
        "opt": {"lr": 0.05, "momentum": 0.9, "betas": {"b1": 0.9, "b2": 0.99}},
        "depth": 6.0,
        "tags": ["a", "b"],
        "was_mapping": 1,
        "same": {"deep": {"er": [1, {"k": None}]}},
        "new": {},
    }
    diff = diff_snapshots(snap(config=before), snap(config=after))
    assert diff.config.added == {
        "new": {},
        "opt.betas.b2": 0.99,
        "opt.momentum": 0.9,
        "was_mapping": 1,
    }
    assert list(diff.config.added) == sorted(diff.config.added)
    assert diff.config.removed == {"opt.name": "adam", "was_mapping.x": 1}
    assert diff.config.changed == (
        FieldChange("opt.lr", 0.1, 0.05),
        FieldChange("tags", ["a"], ["a", "b"]),
    )
    assert diff.config
    assert not diff.data
    assert diff.data == MappingDiff({}, {}, ())


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (1, 1.0, False),
        (True, 1, True),
        (0, False, True),
        (math.nan, math.nan, False),
        ([math.nan, 1], [math.nan, 1], False),
        ("1", 1, True),
        (None, None, False),
        (None, "", True),
        ({}, {}, False),
        ({}, [], True),
    ],
    ids=repr,
)
def test_a_data_value_changed_unless_it_is_the_same_as_stored(
    before: object,
    after: object,
    changed: bool,
) -> None:
    diff = diff_snapshots(snap(data={"v": before}), snap(data={"v": after}))
    assert bool(diff.data) is changed
    assert (diff.data.added, diff.data.removed) == ({}, {})
    if changed:
        (change,) = diff.data.changed
        assert change.name == "v"
        assert same(change.before, before) or math.isnan(before)  # type: ignore[arg-type]
        assert same(change.after, after) or math.isnan(after)  # type: ignore[arg-type]


def test_a_snapshot_compared_with_itself_changes_nothing() -> None:
    one = snap(
        metrics={"auc": 0.8, "nan": math.nan, "n": {"x": [1, 2]}},
        config={"a": {"b": [math.inf]}},
        data={"rows": 3},
    )
    diff = diff_snapshots(one, one)
    assert diff.changed_metrics == ()
    assert not diff.config
    assert not diff.data
    assert (diff.before, diff.after) == (one, one)


def test_snapshots_of_other_runs_stages_and_groups_compare() -> None:
    a = NormalizedSnapshot("run-1", "TRAINING", metrics={"auc": 0.5}, config={"m": 1})
    b = NormalizedSnapshot("run-2", "SCORING", metrics={"auc": 0.6}, comparison_key="other")
    diff = diff_snapshots(a, b)
    assert metric(diff, "auc").changed
    assert diff.config.removed == {"m": 1}


# -- to_dict -------------------------------------------------------------------


def test_to_dict_is_json_with_every_field() -> None:
    with SnapshotStore("memory://") as store:
        before = store.save_snapshot(
            snap(metrics={"auc": 0.8, "nan": math.nan, "big": 2**64 - 1}, config={"lr": 0.1})
        )
        after = store.save_snapshot(
            snap(
                "run-2",
                metrics={"auc": 0.9, "nan": math.nan, "big": 1, "ok": True},
                config={"lr": 0.2, "opt": {"name": "sgd"}},
                data={"rows": [1, 2]},
            )
        )
    result = diff_snapshots(before, after).to_dict()
    decoded = orjson.loads(orjson.dumps(result))
    assert decoded["before"] == {
        "snapshot_seq": 1,
        "run_id": "run-1",
        "stage": "TRAINING",
        "comparison_key": before.comparison_key,
    }
    assert decoded["after"]["snapshot_seq"] == 2
    assert decoded["after"]["comparison_key"] == after.comparison_key
    assert [m["name"] for m in decoded["metrics"]] == ["auc", "big", "nan", "ok"]
    auc, big, nan, ok = decoded["metrics"]
    assert auc["before"] == 0.8
    assert auc["after"] == 0.9
    assert auc["absolute"] == pytest.approx(0.1)
    assert auc["relative"] == pytest.approx(0.125)
    assert big == {
        "name": "big",
        "before": 2**64 - 1,
        "after": 1,
        "absolute": float(2 - 2**64),
        "relative": pytest.approx(-1.0),
    }
    assert nan == {"name": "nan", "before": None, "after": None, "absolute": None, "relative": None}
    assert ok == {"name": "ok", "before": None, "after": True, "absolute": None, "relative": None}
    assert decoded["config"] == {
        "added": {"opt.name": "sgd"},
        "removed": {},
        "changed": [{"name": "lr", "before": 0.1, "after": 0.2}],
    }
    assert decoded["data"] == {"added": {"rows": [1, 2]}, "removed": {}, "changed": []}
    json.dumps(result)  # the standard library's json takes it too


def test_to_dict_of_unsaved_snapshots_has_no_seq() -> None:
    result = diff_snapshots(snap(), snap("run-2")).to_dict()
    assert result["before"]["snapshot_seq"] is None
    assert result["after"]["run_id"] == "run-2"
    orjson.dumps(result)


# -- arguments and objects -----------------------------------------------------


@pytest.mark.parametrize("bad", [None, "run-1:TRAINING", {"run_id": "run-1"}, 1], ids=repr)
def test_anything_else_than_snapshots_is_an_invalid_input_error(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="before must be a NormalizedSnapshot"):
        diff_snapshots(bad, snap())
    with pytest.raises(InvalidInputError, match="after must be a NormalizedSnapshot"):
        diff_snapshots(snap(), bad)


def test_a_diff_is_frozen() -> None:
    diff = diff_snapshots(snap(metrics={"m": 1}), snap(metrics={"m": 2}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        diff.metrics = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        diff.metrics[0].after = 3  # type: ignore[misc]


def test_the_diff_names_are_snapstores_own() -> None:
    import snapstore  # noqa: PLC0415 - the package and the module behind its lazy names
    import snapstore.diff  # noqa: PLC0415

    for name in snapstore.diff.__all__:
        assert getattr(snapstore, name) is getattr(snapstore.diff, name)
        assert name in dir(snapstore)
        assert name in snapstore.__all__
