"""SnapshotStore against an in-memory model, driven by a Hypothesis state machine.

The model is a list of saved snapshots (position = seq - 1) and a dict of pins;
it knows nothing of logs, indices or checkpoints. Between any two steps, every
answer the store gives must be the model's, also across reopening, lost or
stale checkpoints, and saves made through another handle.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore.backends.local import store as local_store
from snapstore.snapshot import config_fingerprint
from store_fixtures import DERIVED_FILES, json_text, remove_checkpoint, scratch_dir

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


def _machine_settings() -> settings:
    try:  # the profile the test run selected, when the conftest registers profiles
        chosen = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    except InvalidArgument:
        chosen = settings(max_examples=40, stateful_step_count=20)
    # Every step writes real files: a deadline would only measure the disk.
    return settings(chosen, deadline=None)


class StoreMachine(RuleBasedStateMachine):
    saved = Bundle("saved")

    def __init__(self) -> None:
        super().__init__()
        # Load checkpoints however small the log, so that reopening goes through them.
        self.replay_below = local_store.REPLAY_BELOW_BYTES
        local_store.REPLAY_BELOW_BYTES = 0
        self.root = scratch_dir("snapstore-machine-") / "store"
        self.store = SnapshotStore(self.root, durability="write")
        self.model: list[ModelSnap] = []
        self.pins: dict[tuple[str, bytes], int] = {}
        self.stashed: dict[str, bytes] | None = None

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
        with SnapshotStore(self.root, durability="write") as other:
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
        self.store = SnapshotStore(self.root, durability="write")

    @rule()
    def reopen_without_checkpoint(self) -> None:
        self.store.close()
        remove_checkpoint(self.root)
        self.store = SnapshotStore(self.root, durability="write")

    @precondition(lambda self: (self.root / DERIVED_FILES[0]).exists())
    @rule()
    def stash_checkpoint(self) -> None:
        self.stashed = {name: (self.root / name).read_bytes() for name in DERIVED_FILES}

    @precondition(lambda self: self.stashed is not None)
    @rule()
    def reopen_with_the_stashed_checkpoint(self) -> None:
        self.store.close()  # writes a fresh checkpoint, replaced by the stashed one
        assert self.stashed is not None
        for name, data in self.stashed.items():
            (self.root / name).write_bytes(data)
        self.store = SnapshotStore(self.root, durability="write")

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
        shutil.rmtree(self.root.parent)
        local_store.REPLAY_BELOW_BYTES = self.replay_below


StoreMachine.TestCase.settings = _machine_settings()
TestStoreMachine = StoreMachine.TestCase
