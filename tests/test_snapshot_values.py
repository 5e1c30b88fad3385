"""A NormalizedSnapshot is a plain value: pickled, copied, dumped, compared, hashed."""

from __future__ import annotations

import copy
import dataclasses
import json
import multiprocessing
import pickle
from typing import TYPE_CHECKING

import pytest

from snapstore import NormalizedSnapshot, SnapshotStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _snap(run_id: str = "run-1") -> NormalizedSnapshot:
    return NormalizedSnapshot(
        run_id,
        "eval",
        metrics={"auc": 0.9, "per_class": [0.8, 1.0]},
        config={"lr": 0.1, "layers": {"n": 3}},
        data={"note": "x"},
    )


def _saved_snapshot(root: str) -> NormalizedSnapshot:
    """Saved and read back in a pool worker; the snapshot returns through pickle."""
    with SnapshotStore(root) as store:
        return store.save_snapshot(_snap("from-worker"))


def test_pickle_copy_and_asdict_give_equal_snapshots(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        saved = store.save_snapshot(_snap())
    for unsaved_or_saved in (_snap(), saved):
        assert pickle.loads(pickle.dumps(unsaved_or_saved)) == unsaved_or_saved
        assert copy.deepcopy(unsaved_or_saved) == unsaved_or_saved
        assert copy.copy(unsaved_or_saved) == unsaved_or_saved
        as_dict = dataclasses.asdict(unsaved_or_saved)
        assert as_dict["metrics"] == {"auc": 0.9, "per_class": [0.8, 1.0]}
        assert json.loads(json.dumps(as_dict["config"])) == {"lr": 0.1, "layers": {"n": 3}}
    assert json.loads(json.dumps(saved.metrics)) == dict(saved.metrics)


def test_a_process_pool_returns_snapshots(tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    SnapshotStore(root).close()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        (returned,) = pool.map(_saved_snapshot, [root])
    with SnapshotStore(root) as store:
        assert store.get("from-worker", "eval") == returned


def test_one_snapshots_metrics_go_into_anothers_data(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        first = store.save_snapshot(_snap())
        second = store.save_snapshot(
            NormalizedSnapshot("run-2", "eval", data={"previous": first.metrics})
        )
        assert store.get("run-2", "eval") == second
        assert second.data["previous"] == {"auc": 0.9, "per_class": [0.8, 1.0]}


def test_equality_is_by_every_field_and_equal_snapshots_hash_alike() -> None:
    assert _snap() == _snap()
    assert hash(_snap()) == hash(_snap())
    assert _snap() != _snap("run-2")
    assert _snap() != dataclasses.replace(_snap(), metrics={"auc": 0.91})
    assert len({_snap(), _snap(), _snap("run-2")}) == 2


MUTATIONS: dict[str, Callable[[dict[str, object]], object]] = {
    "set": lambda m: m.__setitem__("auc", 1.0),
    "delete": lambda m: m.__delitem__("auc"),
    "update": lambda m: m.update(auc=1.0),
    "setdefault": lambda m: m.setdefault("new", 1),
    "pop": lambda m: m.pop("auc"),
    "popitem": lambda m: m.popitem(),
    "clear": lambda m: m.clear(),
}


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_a_snapshots_mappings_refuse_changes(mutate: Callable[[dict[str, object]], object]) -> None:
    snap = _snap()
    with pytest.raises(TypeError, match="read-only"):
        mutate(snap.metrics)  # type: ignore[arg-type]
    assert snap == _snap()


def test_a_snapshot_does_not_follow_the_dict_it_was_made_from() -> None:
    metrics = {"auc": 0.9}
    snap = NormalizedSnapshot("run-1", "eval", metrics=metrics)
    metrics["auc"] = 0.1
    assert snap.metrics["auc"] == 0.9
