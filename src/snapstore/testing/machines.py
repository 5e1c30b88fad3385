"""Stateful Hypothesis machines: a store and a history against models of their semantics.

Shared rules, per-backend subclasses: a backend's test subclasses a machine,
opens its handles, and runs the subclass's ``TestCase``. Needs Hypothesis
and pytest (the ``testing`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from snapstore import (
    HistoryRecord,
    IterationHistory,
    KeyConflictError,
    NormalizedSnapshot,
    NotFoundError,
    SnapshotStore,
)
from snapstore._names import MAX_KEY_LENGTH
from snapstore.snapshot import config_fingerprint
from snapstore.testing.support import json_text

if TYPE_CHECKING:
    from collections.abc import Sequence

# -- JSON that round-trips exactly ------------------------------------------------

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Text without lone surrogates (they are not encodable as UTF-8).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)

json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=16,
)

json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(texts, json_values, max_size=6)

# Keys are printable: control characters are refused.
record_keys = st.text(
    st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=MAX_KEY_LENGTH
)
keys = st.none() | st.sampled_from(["a", "b", "c/1", "ünï"])


def _same_json(a: object, b: object) -> bool:
    """Equality that also tells 1 from 1.0 and from True, and sees key order."""
    return orjson.dumps(a) == orjson.dumps(b)


# -- snapshot stores -----------------------------------------------------------------

RUN_IDS = ("r1", "r2", "r:3")  # a colon in a run id must not confuse keys
STAGES = ("A", "B")
# Two configs that differ in key order only (one group), and 1 vs 1.0 (two groups).
CONFIGS: tuple[dict[str, Any], ...] = ({"lr": 1, "d": 2}, {"d": 2, "lr": 1}, {"lr": 1.0, "d": 2})
METRICS = (0, 1, 1.0, True, [1], "1")  # equal in Python, different in JSON

run_ids = st.sampled_from(RUN_IDS)
stages = st.sampled_from(STAGES)
configs = st.sampled_from(CONFIGS)
metrics = st.sampled_from(METRICS)


@dataclass(frozen=True)
class ModelSnap:
    run_id: str
    stage: str
    config: dict[str, Any]
    metric: Any

    @property
    def key(self) -> tuple[str, str]:
        return self.run_id, self.stage

    @property
    def group(self) -> tuple[str, bytes]:
        return self.stage, json_text(self.config)

    def content(self) -> bytes:
        return json_text([self.run_id, self.stage, self.config, {"m": self.metric}])

    def draft(self) -> NormalizedSnapshot:
        return NormalizedSnapshot(
            self.run_id, self.stage, metrics={"m": self.metric}, config=self.config
        )


class SnapshotStoreMachine(RuleBasedStateMachine):
    """A store against a model that knows nothing of how a backend stores anything.

    The model is a list of saved snapshots (position = seq - 1) and a dict of
    pins. Between any two steps, every answer the store gives must be the
    model's, also across reopening and saves made through another handle.
    A backend's test subclasses it, says how to open a handle
    (``open_store``) and to clean up (``teardown``), may add rules of its own,
    and runs ``TestCase``.
    """

    saved = Bundle("saved")

    def __init__(self) -> None:
        super().__init__()
        self.store = self.open_store()
        self.model: list[ModelSnap] = []
        self.pins: dict[tuple[str, bytes], int] = {}

    def open_store(self) -> SnapshotStore:
        """A new handle on the one store this machine drives."""
        raise NotImplementedError

    # -- the model -------------------------------------------------------------

    def expect_save(self, snap: ModelSnap) -> int:
        versions = self.versions_of(snap.key)
        if versions and self.model[versions[-1] - 1].content() == snap.content():
            return versions[-1]
        self.model.append(snap)
        return len(self.model)

    def versions_of(self, key: tuple[str, str]) -> list[int]:
        return [seq for seq, snap in enumerate(self.model, 1) if snap.key == key]

    def previous(self, snap: ModelSnap, below: int) -> int | None:
        seqs = [
            seq
            for seq, other in enumerate(self.model[: below - 1], 1)
            if other.group == snap.group and other.run_id != snap.run_id
        ]
        return seqs[-1] if seqs else None

    def check_seq(self, got: NormalizedSnapshot | None, expected: int | None) -> None:
        assert (None if got is None else got.snapshot_seq) == expected
        if got is not None and expected is not None:
            want = self.model[expected - 1]
            assert (
                json_text([got.run_id, got.stage, dict(got.config), dict(got.metrics)])
                == want.content()
            )

    # -- writing ---------------------------------------------------------------

    @rule(target=saved, run_id=run_ids, stage=stages, config=configs, metric=metrics)
    def save(self, run_id: str, stage: str, config: dict[str, Any], metric: Any) -> int:
        snap = ModelSnap(run_id, stage, config, metric)
        expected = self.expect_save(snap)
        self.check_seq(self.store.save_snapshot(snap.draft()), expected)
        return expected

    @rule(seq=saved)
    def save_again(self, seq: int) -> None:
        snap = self.model[seq - 1]
        self.check_seq(self.store.save_snapshot(snap.draft()), self.expect_save(snap))

    @rule(run_id=run_ids, stage=stages, config=configs, metric=metrics)
    def save_through_another_handle(
        self, run_id: str, stage: str, config: dict[str, Any], metric: Any
    ) -> None:
        snap = ModelSnap(run_id, stage, config, metric)
        expected = self.expect_save(snap)
        with self.open_store() as other:
            self.check_seq(other.save_snapshot(snap.draft()), expected)
        self.store.refresh()

    @rule(run_id=run_ids, stage=stages, config=configs, metric=metrics)
    def get_or_establish_baseline(
        self, run_id: str, stage: str, config: dict[str, Any], metric: Any
    ) -> None:
        snap = ModelSnap(run_id, stage, config, metric)
        # Only a snapshot that becomes the baseline is saved.
        pinned = self.pins.get(snap.group) or self.pins.setdefault(
            snap.group, self.expect_save(snap)
        )
        self.check_seq(self.store.get_or_establish_baseline(snap.draft()), pinned)

    @rule(seq=saved)
    def set_baseline(self, seq: int) -> None:
        self.store.set_baseline(self.store.get_by_seq(seq))
        self.pins[self.model[seq - 1].group] = seq

    # -- reading ---------------------------------------------------------------

    @rule(seq=saved)
    def find_previous_comparable(self, seq: int) -> None:
        snap = self.model[seq - 1]
        found = self.store.find_previous_comparable(self.store.get_by_seq(seq))
        self.check_seq(found, self.previous(snap, seq))

    @rule(run_id=run_ids, stage=stages, config=configs)
    def find_previous_comparable_unsaved(
        self, run_id: str, stage: str, config: dict[str, Any]
    ) -> None:
        snap = ModelSnap(run_id, stage, config, None)
        found = self.store.find_previous_comparable(snap.draft())
        self.check_seq(found, self.previous(snap, len(self.model) + 1))

    @rule(stage=stages, config=configs)
    def baseline(self, stage: str, config: dict[str, Any]) -> None:
        found = self.store.baseline(stage, config_fingerprint(config))
        self.check_seq(found, self.pins.get((stage, json_text(config))))

    # -- lifecycle -------------------------------------------------------------

    @rule()
    def checkpoint(self) -> None:
        self.store.checkpoint()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self.open_store()

    # -- every answer, after every step ----------------------------------------

    @invariant()
    def answers_match_the_model(self) -> None:
        assert len(self.store) == len(self.model)
        snaps = list(self.store.snapshots())
        assert [s.snapshot_seq for s in snaps] == list(range(1, len(self.model) + 1))
        for snap in snaps:
            self.check_seq(snap, snap.snapshot_seq)
        for run_id in RUN_IDS:
            for stage in STAGES:
                versions = self.versions_of((run_id, stage))
                assert [v.snapshot_seq for v in self.store.versions(run_id, stage)] == versions
                self.check_seq(self.store.get(run_id, stage), versions[-1] if versions else None)

    def teardown(self) -> None:
        self.store.close()


# -- histories ---------------------------------------------------------------------


class HistoryMachine(RuleBasedStateMachine):
    """A history against a list of (key, data), with a second handle writing too.

    Subclassed as ``SnapshotStoreMachine`` is: ``open_history`` opens a new
    handle on the one history the machine drives.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history = self.open_history()
        self.other = self.open_history()
        self.model: list[tuple[str | None, dict[str, Any]]] = []

    def open_history(self) -> IterationHistory:
        """A new handle on the one history this machine drives."""
        raise NotImplementedError

    def teardown(self) -> None:
        self.history.close()
        self.other.close()

    def expect(self, record: HistoryRecord, seq: int) -> None:
        key, data = self.model[seq - 1]
        assert record.seq == seq
        assert record.key == key
        assert _same_json(record.data, data)

    def take(self, key: str | None, data: dict[str, Any]) -> int | None:
        """The seq the model gives an append of (key, data); None: a key conflict."""
        stored = [k for k, _ in self.model]
        if key is not None and key in stored:
            seq = stored.index(key) + 1
            return seq if _same_json(self.model[seq - 1][1], data) else None
        self.model.append((key, data))
        return len(self.model)

    def append_through(
        self, history: IterationHistory, data: dict[str, Any], key: str | None
    ) -> None:
        seq = self.take(key, data)
        if seq is None:
            with pytest.raises(KeyConflictError):
                history.append(data, key=key)
        else:
            self.expect(history.append(data, key=key), seq)

    @rule(data=json_objects, key=keys)
    def append(self, data: dict[str, Any], key: str | None) -> None:
        self.append_through(self.history, data, key)

    @rule(data=st.data())
    def retry_a_keyed_append(self, data: st.DataObject) -> None:
        keyed = [(k, d) for k, d in self.model if k is not None]
        if keyed:
            key, stored = data.draw(st.sampled_from(keyed))
            self.append_through(self.other, stored, key)

    @rule(items=st.lists(json_objects, max_size=4))
    def extend(self, items: Sequence[dict[str, Any]]) -> None:
        records = self.history.extend(items)
        assert len(records) == len(items)
        for record, data in zip(records, items, strict=True):
            seq = self.take(None, data)
            assert seq is not None
            self.expect(record, seq)

    @rule(data=json_objects, key=keys)
    def append_through_other_handle(self, data: dict[str, Any], key: str | None) -> None:
        self.append_through(self.other, data, key)

    @rule()
    def refresh(self) -> None:
        self.history.refresh()
        assert self.history.last_seq == len(self.model)

    @rule()
    def reopen(self) -> None:
        self.history.close()
        self.history = self.open_history()
        assert self.history.last_seq == len(self.model)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        seq = data.draw(st.integers(1, len(self.model)))
        self.expect(self.history.get(seq), seq)

    @rule(seq=st.integers(-2, 0) | st.integers(10_000, 10**9))
    def get_missing(self, seq: int) -> None:
        with pytest.raises(NotFoundError):
            self.history.get(seq)

    @rule(n=st.integers(0, 10))
    def load_recent(self, n: int) -> None:
        recent = self.history.load_recent(n)
        first = max(len(self.model) - n, 0) + 1
        assert [r.seq for r in recent] == list(range(first, len(self.model) + 1))
        for record in recent:
            self.expect(record, record.seq)

    @invariant()
    def matches_the_model(self) -> None:
        records = list(self.history)
        assert len(records) == len(self.model)
        for seq, record in enumerate(records, 1):
            self.expect(record, seq)
        assert len(self.history) == len(self.model)
