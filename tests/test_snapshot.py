"""NormalizedSnapshot: a frozen record, its dict form and its comparison key."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapstore import InvalidInputError, NormalizedSnapshot
from snapstore.snapshot import config_fingerprint
from store_fixtures import json_text, same_content
from store_strategies import comparison_keys, json_objects, run_ids, stages

if TYPE_CHECKING:
    import random

snapshots = st.builds(
    NormalizedSnapshot,
    run_id=run_ids,
    stage=stages,
    metrics=json_objects,
    config=json_objects,
    data=json_objects,
    comparison_key=st.none() | comparison_keys,
    created_at=st.none()
    | st.datetimes(timezones=st.just(UTC))
    | st.datetimes(timezones=st.just(timezone(timedelta(hours=-5)))),
    snapshot_seq=st.none() | st.integers(min_value=1, max_value=2**62),
)


@given(snapshots)
def test_to_dict_is_json_and_from_dict_inverts_it(snap: NormalizedSnapshot) -> None:
    document = json.loads(json.dumps(snap.to_dict()))
    back = NormalizedSnapshot.from_dict(document)
    assert same_content(back, snap)
    assert back.created_at == snap.created_at
    assert back == snap


@given(json_objects, st.randoms(use_true_random=False))
def test_the_comparison_key_ignores_key_order(config: dict[str, Any], rng: random.Random) -> None:
    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    assert config_fingerprint(shuffled(config)) == config_fingerprint(config)


@given(json_objects, json_objects)
def test_the_comparison_key_tells_different_configs_apart(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    assert (config_fingerprint(a) == config_fingerprint(b)) == (json_text(a) == json_text(b))


def test_a_snapshot_is_frozen_and_its_mappings_read_only() -> None:
    metrics = {"auc": 0.9}
    snap = NormalizedSnapshot("run-1", "TRAINING", metrics=metrics)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.run_id = "run-2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.metrics["auc"] = 0.1  # type: ignore[index]
    metrics["auc"] = 0.1  # the caller's dict is copied, not shared
    assert snap.metrics["auc"] == 0.9


def test_defaults() -> None:
    snap = NormalizedSnapshot("run-1", "TRAINING")
    assert (dict(snap.metrics), dict(snap.config), dict(snap.data)) == ({}, {}, {})
    assert (snap.comparison_key, snap.created_at, snap.snapshot_seq) == (None, None, None)
    assert not snap.saved
    assert dataclasses.replace(snap, snapshot_seq=3).saved


def test_with_comparison_key_derives_the_key_from_config_or_keeps_a_given_one() -> None:
    derived = NormalizedSnapshot("r", "S", config={"b": 1, "a": 2}).with_comparison_key()
    assert derived.comparison_key == config_fingerprint({"a": 2, "b": 1})
    assert derived.comparison_key.startswith("cfg-")
    given_key = NormalizedSnapshot("r", "S", config={"b": 1}, comparison_key="mine")
    assert given_key.with_comparison_key().comparison_key == "mine"


def test_deriving_the_key_keeps_every_other_field() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    snap = NormalizedSnapshot(
        "r", "S", {"m": 1}, {"c": 2}, {"d": 3}, None, created_at=moment, snapshot_seq=7
    )
    derived = snap.with_comparison_key()
    assert derived == dataclasses.replace(snap, comparison_key=config_fingerprint({"c": 2}))


@pytest.mark.parametrize(
    "fields",
    [{"run_id": ""}, {"stage": "a:b"}, {"comparison_key": ""}, {"config": {"x": object()}}],
    ids=repr,
)
def test_with_comparison_key_checks_the_names_and_config(fields: dict[str, Any]) -> None:
    snap = NormalizedSnapshot(**{"run_id": "r", "stage": "S", **fields})
    with pytest.raises(InvalidInputError):
        snap.with_comparison_key()


@pytest.mark.parametrize("field", ["metrics", "config", "data"])
@pytest.mark.parametrize("value", [[1], "text", 3, None])
def test_a_mapping_field_must_be_a_mapping(field: str, value: Any) -> None:
    with pytest.raises(InvalidInputError, match=field):
        NormalizedSnapshot("r", "S", **{field: value})


def test_from_dict_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(InvalidInputError, match="unknown"):
        NormalizedSnapshot.from_dict({"run_id": "r", "stage": "S", "phase": "x"})
    with pytest.raises(InvalidInputError, match="stage"):
        NormalizedSnapshot.from_dict({"run_id": "r"})


def test_from_dict_reads_an_iso_timestamp() -> None:
    snap = NormalizedSnapshot.from_dict(
        {"run_id": "r", "stage": "S", "created_at": "2024-05-01T12:00:00+00:00"}
    )
    assert snap.created_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
