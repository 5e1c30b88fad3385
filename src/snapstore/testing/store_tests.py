"""The cases every snapshot backend must pass (see ``snapstore.testing.conformance``)."""

from __future__ import annotations

import dataclasses
import math
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from snapstore import (
    ClosedError,
    InvalidInputError,
    IterationHistory,
    NormalizedSnapshot,
    NotFoundError,
    SnapshotStore,
)
from snapstore.snapshot import config_fingerprint
from snapstore.testing.support import (
    STAGES,
    StoreHarness,
    StoreSuite,
    json_text,
    pipeline,
    same_content,
    save_all,
)

CONFIG = {"model": "gbm", "lr": 0.1, "depth": 6}
OTHER_CONFIG = {"model": "gbm", "lr": 0.05, "depth": 8}

BAD_NAMES = ["", "tab\there", "new\nline", "nul\x00", "x" * 201]
BAD_STAGES = [*BAD_NAMES, "b:c", "with space", "a/b", ".hidden", "-dash-first", "é"]
BAD_HISTORY_NAMES = [*BAD_NAMES, "a/b", "..", "a..b", ".hidden", "../escape", "a\\b"]
# NaN and the infinities are storable (tests/test_values.py); these are not.
BAD_VALUES: list[Any] = [
    object(),
    {1, 2},
    b"bytes",
    Decimal("1.5"),
    datetime(2024, 1, 1, tzinfo=UTC),
    {1: "int key"},
]


def snap(run_id: str = "run-1", stage: str = "TRAINING", **fields: Any) -> NormalizedSnapshot:
    fields.setdefault("config", CONFIG)
    return NormalizedSnapshot(run_id, stage, **fields)


class SnapshotStoreTests(StoreSuite):
    """Every case a snapshot backend must pass; subclass and provide the ``harness`` fixture."""

    # -- saving ----------------------------------------------------------------

    def test_save_returns_a_copy_with_seq_time_and_comparison_key(
        self, store: SnapshotStore
    ) -> None:
        before = datetime.now(UTC)
        draft = snap(metrics={"auc": 0.9})
        saved = store.save_snapshot(draft)
        assert draft.snapshot_seq is None  # the argument is left as it was
        assert draft.created_at is None
        assert saved.snapshot_seq == 1
        assert saved.saved
        assert saved.created_at is not None
        assert saved.created_at.tzinfo is not None
        assert before <= saved.created_at <= datetime.now(UTC)
        assert saved.comparison_key == config_fingerprint(CONFIG)
        assert (saved.run_id, saved.stage, dict(saved.metrics)) == (
            "run-1",
            "TRAINING",
            {"auc": 0.9},
        )
        assert store.get("run-1", "TRAINING") == saved

    def test_seqs_are_one_two_three_in_save_order(self, store: SnapshotStore) -> None:
        saved = save_all(store, pipeline(runs=3))
        assert [s.snapshot_seq for s in saved] == list(range(1, 10))
        assert [s.snapshot_seq for s in store.snapshots()] == list(range(1, 10))

    def test_a_snapshot_with_a_seq_of_its_own_is_refused_unless_it_is_the_stored_one(
        self, store: SnapshotStore
    ) -> None:
        first = store.save_snapshot(snap("run-1"))
        for foreign in (
            snap("run-2", snapshot_seq=1),
            snap("run-1", snapshot_seq=7),
            dataclasses.replace(first, metrics={"changed": True}),
            dataclasses.replace(first, snapshot_seq=None),  # a created_at of its own
        ):
            with pytest.raises(InvalidInputError, match="snapshot_seq=None, created_at=None"):
                store.save_snapshot(foreign)
        assert len(store) == 1
        # The stored snapshot itself is a retry: returned, nothing written.
        assert store.save_snapshot(first) == first
        fresh = store.save_snapshot(dataclasses.replace(first, snapshot_seq=None, created_at=None))
        assert fresh == first  # identical to the latest version: a retry too
        assert len(store) == 1

    def test_stages_of_one_run_never_overwrite_each_other(self, store: SnapshotStore) -> None:
        saved = [
            store.save_snapshot(snap("run-1", stage, metrics={"n": i}))
            for i, stage in enumerate(STAGES)
        ]
        for stage, expected in zip(STAGES, saved, strict=True):
            assert store.get("run-1", stage) == expected
            assert store.versions("run-1", stage) == [expected]
        assert list(store.snapshots(run_id="run-1")) == saved
        assert len(store) == 3

    def test_rerunning_a_stage_adds_a_version_and_get_returns_the_newest(
        self, store: SnapshotStore
    ) -> None:
        first = store.save_snapshot(snap(metrics={"auc": 0.7}))
        store.save_snapshot(snap("run-2", metrics={"auc": 0.1}))
        second = store.save_snapshot(snap(metrics={"auc": 0.8}))
        assert store.get("run-1", "TRAINING") == second
        assert store.versions("run-1", "TRAINING") == [first, second]
        assert store.get_by_seq(1) == first
        assert len(store) == 3

    def test_an_identical_retry_returns_the_stored_version_and_writes_nothing(
        self, store: SnapshotStore, harness: StoreHarness
    ) -> None:
        first = store.save_snapshot(snap(metrics={"auc": 0.7}, data={"rows": [1, 2]}))
        before = harness.state()
        again = store.save_snapshot(snap(metrics={"auc": 0.7}, data={"rows": [1, 2]}))
        assert again == first
        assert same_content(again, first)
        assert harness.state() == before
        assert len(store) == 1

    def test_a_retry_with_reordered_mappings_is_identical_content(
        self, store: SnapshotStore, harness: StoreHarness
    ) -> None:
        first = store.save_snapshot(snap(config={"a": 1, "b": 2}, metrics={"x": 1, "y": 2}))
        before = harness.state()
        again = store.save_snapshot(snap(config={"b": 2, "a": 1}, metrics={"y": 2, "x": 1}))
        assert again.snapshot_seq == first.snapshot_seq
        assert harness.state() == before

    def test_a_retry_of_the_saved_copy_writes_nothing(
        self, store: SnapshotStore, harness: StoreHarness
    ) -> None:
        first = store.save_snapshot(snap(metrics={"auc": 0.7}))
        before = harness.state()
        assert store.save_snapshot(first) == first
        assert harness.state() == before

    @pytest.mark.parametrize(
        ("old", "new"),
        [(1, True), (1, 1.0), (0, False), (1.0, True), ([1], [True]), ({"a": 0}, {"a": 0.0})],
    )
    def test_values_equal_in_python_but_not_in_json_are_a_new_version(
        self, store: SnapshotStore, old: object, new: object
    ) -> None:
        first = store.save_snapshot(snap(metrics={"m": old}))
        second = store.save_snapshot(snap(metrics={"m": new}))
        assert (first.snapshot_seq, second.snapshot_seq) == (1, 2)
        latest = store.get("run-1", "TRAINING")
        assert latest is not None
        assert json_text(dict(latest.metrics)) == json_text({"m": new})

    def test_content_equal_to_an_older_version_only_is_a_new_version(
        self, store: SnapshotStore
    ) -> None:
        a = store.save_snapshot(snap(metrics={"auc": 0.7}))
        b = store.save_snapshot(snap(metrics={"auc": 0.8}))
        a_again = store.save_snapshot(snap(metrics={"auc": 0.7}))
        assert [s.snapshot_seq for s in (a, b, a_again)] == [1, 2, 3]
        assert store.get("run-1", "TRAINING") == a_again

    def test_identical_content_under_another_key_is_saved(self, store: SnapshotStore) -> None:
        a = store.save_snapshot(snap("run-1", metrics={"auc": 0.7}))
        b = store.save_snapshot(snap("run-2", metrics={"auc": 0.7}))
        c = store.save_snapshot(snap("run-1", "FEATURE_SELECTION", metrics={"auc": 0.7}))
        assert [s.snapshot_seq for s in (a, b, c)] == [1, 2, 3]

    def test_threads_saving_at_once_get_distinct_gap_free_seqs(self, store: SnapshotStore) -> None:
        results: list[list[NormalizedSnapshot]] = [[] for _ in range(4)]

        def work(worker: int) -> None:
            for i in range(25):
                stage = STAGES[i % len(STAGES)]
                results[worker].append(
                    store.save_snapshot(snap(f"run-{worker}", stage, metrics={"i": i}))
                )

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seqs = sorted(s.snapshot_seq or 0 for saved in results for s in saved)
        assert seqs == list(range(1, 101))
        for saved in results:
            for s in saved:
                assert store.get_by_seq(s.snapshot_seq or 0) == s

    def test_threads_retrying_one_snapshot_at_once_store_it_once(
        self, store: SnapshotStore
    ) -> None:
        results: list[NormalizedSnapshot] = []
        barrier = threading.Barrier(6)

        def work() -> None:
            barrier.wait()
            results.append(store.save_snapshot(snap(metrics={"auc": 0.5})))

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {s.snapshot_seq for s in results} == {1}
        assert len(store) == 1

    # -- keys ------------------------------------------------------------------

    def test_colons_in_run_ids_never_make_two_keys_collide(self, store: SnapshotStore) -> None:
        a = store.save_snapshot(snap("a:b", "c"))
        b = store.save_snapshot(snap("a", "b"))
        c = store.save_snapshot(snap("a:b:c", "d"))
        assert store.get("a:b", "c") == a
        assert store.get("a", "b") == b
        assert store.get("a:b:c", "d") == c
        assert store.get("a", "c") is None
        with pytest.raises(InvalidInputError):
            store.get("a", "b:c")  # a stage may not hold a colon: no key is ambiguous

    def test_a_stage_with_a_colon_is_refused(
        self, store: SnapshotStore, harness: StoreHarness
    ) -> None:
        store.save_snapshot(snap("a:b", "c"))
        before = harness.state()
        with pytest.raises(InvalidInputError):
            store.save_snapshot(snap("a", "b:c"))
        assert harness.state() == before
        assert [(s.run_id, s.stage) for s in store.snapshots()] == [("a:b", "c")]

    # -- reading ---------------------------------------------------------------

    def test_an_empty_store(self, store: SnapshotStore) -> None:
        assert len(store) == 0
        assert list(store.snapshots()) == []
        assert store.get("run-1", "TRAINING") is None
        assert store.versions("run-1", "TRAINING") == []
        assert store.find_previous_comparable(snap()) is None
        assert store.baseline("TRAINING", config_fingerprint(CONFIG)) is None
        with pytest.raises(NotFoundError):
            store.get_by_seq(1)

    @pytest.mark.parametrize("seq", [0, -1, 4, 10**12])
    def test_get_by_seq_of_an_absent_seq_is_not_found_a_key_error(
        self, store: SnapshotStore, seq: int
    ) -> None:
        save_all(store, pipeline(runs=1))
        with pytest.raises(NotFoundError) as raised:
            store.get_by_seq(seq)
        assert isinstance(raised.value, KeyError)
        assert str(seq) in str(raised.value)

    @pytest.mark.parametrize("seq", [True, "1", 1.0, None])
    def test_get_by_seq_needs_an_int(self, store: SnapshotStore, seq: Any) -> None:
        store.save_snapshot(snap())
        with pytest.raises(InvalidInputError):
            store.get_by_seq(seq)

    def test_snapshots_filters_by_run_and_stage_in_seq_order(self, store: SnapshotStore) -> None:
        saved = save_all(store, pipeline(runs=3))
        rerun = store.save_snapshot(snap("run-2", "TRAINING", metrics={"again": True}))
        everything = [*saved, rerun]
        assert list(store.snapshots()) == everything
        assert list(store.snapshots(run_id="run-2")) == [
            s for s in everything if s.run_id == "run-2"
        ]
        assert list(store.snapshots(stage="TRAINING")) == [
            s for s in everything if s.stage == "TRAINING"
        ]
        assert list(store.snapshots(run_id="run-2", stage="TRAINING")) == [saved[5], rerun]
        assert list(store.snapshots(run_id="run-9")) == []
        assert len(store) == 10

    def test_get_and_versions_return_the_content_saved(self, store: SnapshotStore) -> None:
        draft = snap(
            metrics={"auc": 0.91, "n": 3, "ok": True, "none": None},
            config={"nested": {"list": [1, 2.5, "x"]}},
            data={"text": "ünïcødé ✓", "big": 2**62},
        )
        saved = store.save_snapshot(draft)
        got = store.get("run-1", "TRAINING")
        assert got is not None
        assert same_content(got, saved)
        for name in ("metrics", "config", "data"):
            assert json_text(dict(getattr(got, name))) == json_text(dict(getattr(draft, name)))

    # -- previous comparable ---------------------------------------------------

    def test_previous_comparable_is_the_latest_earlier_other_run(
        self, store: SnapshotStore
    ) -> None:
        r1 = store.save_snapshot(snap("run-1"))
        r2 = store.save_snapshot(snap("run-2"))
        r3 = store.save_snapshot(snap("run-3"))
        assert store.find_previous_comparable(r3) == r2
        assert store.find_previous_comparable(r2) == r1
        assert store.find_previous_comparable(r1) is None

    def test_previous_comparable_skips_the_same_run(self, store: SnapshotStore) -> None:
        r1 = store.save_snapshot(snap("run-1", metrics={"v": 1}))
        store.save_snapshot(snap("run-2", metrics={"v": 1}))
        r2_again = store.save_snapshot(snap("run-2", metrics={"v": 2}))
        assert store.find_previous_comparable(r2_again) == r1

    def test_previous_comparable_of_an_unsaved_snapshot_looks_below_everything(
        self, store: SnapshotStore
    ) -> None:
        store.save_snapshot(snap("run-1"))
        r2 = store.save_snapshot(snap("run-2"))
        store.save_snapshot(snap("run-3", "FEATURE_SELECTION"))
        assert store.find_previous_comparable(snap("run-3")) == r2
        assert store.find_previous_comparable(snap("run-2")) == store.get_by_seq(1)

    def test_previous_comparable_needs_the_same_stage_and_comparison_key(
        self, store: SnapshotStore
    ) -> None:
        store.save_snapshot(snap("run-1", "FEATURE_SELECTION"))
        store.save_snapshot(snap("run-2", config=OTHER_CONFIG))
        r3 = store.save_snapshot(snap("run-3"))
        assert store.find_previous_comparable(r3) is None
        r4 = store.save_snapshot(snap("run-4"))
        assert store.find_previous_comparable(r4) == r3

    def test_comparison_key_ignores_the_key_order_of_config(self, store: SnapshotStore) -> None:
        r1 = store.save_snapshot(
            snap("run-1", config={"lr": 0.1, "depth": 6, "x": {"a": 1, "b": 2}})
        )
        r2 = store.save_snapshot(
            snap("run-2", config={"x": {"b": 2, "a": 1}, "depth": 6, "lr": 0.1})
        )
        assert r1.comparison_key == r2.comparison_key
        assert store.find_previous_comparable(r2) == r1

    def test_comparison_key_tells_config_values_apart(self, store: SnapshotStore) -> None:
        keys = {
            store.save_snapshot(snap(f"run-{i}", config=config)).comparison_key
            for i, config in enumerate([{"lr": 1}, {"lr": 1.0}, {"lr": "1"}, {"lr": True}, {}])
        }
        assert len(keys) == 5

    def test_an_explicit_comparison_key_groups_different_configs(
        self, store: SnapshotStore
    ) -> None:
        r1 = store.save_snapshot(snap("run-1", config=CONFIG, comparison_key="grp"))
        r2 = store.save_snapshot(snap("run-2", config=OTHER_CONFIG, comparison_key="grp"))
        assert r2.comparison_key == "grp"
        assert store.find_previous_comparable(r2) == r1
        assert store.find_previous_comparable(snap("run-3")) is None

    def test_previous_comparable_ignores_the_clock(self, store: SnapshotStore) -> None:
        r1 = store.save_snapshot(snap("run-1"))
        r2 = store.save_snapshot(snap("run-2"))
        # Times given by the caller are informational only: order is the seq.
        for when in (datetime(1970, 1, 2, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)):
            assert store.find_previous_comparable(snap("run-3", created_at=when)) == r2
        assert (
            store.find_previous_comparable(
                snap("run-1", created_at=datetime(2999, 1, 1, tzinfo=UTC))
            )
            == r2
        )
        assert store.find_previous_comparable(r2) == r1

    # -- baselines -------------------------------------------------------------

    def test_the_first_snapshot_of_a_group_becomes_its_baseline(self, store: SnapshotStore) -> None:
        saved = store.save_snapshot(snap("run-1"))
        assert store.get_or_establish_baseline(saved) == saved
        assert store.baseline("TRAINING", saved.comparison_key or "") == saved
        assert len(store) == 1

    def test_an_unsaved_snapshot_is_saved_then_pinned(self, store: SnapshotStore) -> None:
        pinned = store.get_or_establish_baseline(snap("run-1", metrics={"auc": 0.7}))
        assert pinned.snapshot_seq == 1
        assert store.get("run-1", "TRAINING") == pinned
        assert store.baseline("TRAINING", config_fingerprint(CONFIG)) == pinned

    def test_an_existing_baseline_is_returned_and_nothing_is_written(
        self, store: SnapshotStore
    ) -> None:
        first = store.get_or_establish_baseline(snap("run-1"))
        # Only a snapshot that becomes the baseline is saved: asking for the
        # baseline of a group that has one writes nothing.
        assert store.get_or_establish_baseline(snap("run-2")) == first
        assert store.get("run-2", "TRAINING") is None
        later = store.save_snapshot(snap("run-3"))
        assert store.get_or_establish_baseline(later) == first
        assert len(store) == 2

    def test_baselines_are_per_stage_and_comparison_key(self, store: SnapshotStore) -> None:
        a = store.get_or_establish_baseline(snap("run-1"))
        b = store.get_or_establish_baseline(snap("run-2", config=OTHER_CONFIG))
        c = store.get_or_establish_baseline(snap("run-3", "FEATURE_SELECTION"))
        assert len({a.snapshot_seq, b.snapshot_seq, c.snapshot_seq}) == 3
        assert store.baseline("TRAINING", a.comparison_key or "") == a
        assert store.baseline("TRAINING", b.comparison_key or "") == b
        assert store.baseline("FEATURE_SELECTION", c.comparison_key or "") == c
        assert store.baseline("FEATURE_SELECTION", b.comparison_key or "") is None

    def test_set_baseline_repins_the_group(self, store: SnapshotStore) -> None:
        first = store.get_or_establish_baseline(snap("run-1"))
        second = store.save_snapshot(snap("run-2"))
        store.set_baseline(second)
        key = first.comparison_key or ""
        assert store.baseline("TRAINING", key) == second
        assert store.get_or_establish_baseline(snap("run-3")) == second
        store.set_baseline(first)
        assert store.baseline("TRAINING", key) == first

    def test_set_baseline_needs_a_saved_snapshot_of_this_store(
        self, store: SnapshotStore, harness: StoreHarness
    ) -> None:
        saved = store.save_snapshot(snap("run-1"))
        before = harness.state()
        for bad in (
            snap("run-2"),  # unsaved
            snap("run-2", snapshot_seq=99),  # no such seq
            snap("run-2", snapshot_seq=saved.snapshot_seq),  # the seq of another key
        ):
            with pytest.raises(InvalidInputError):
                store.set_baseline(bad)
        assert harness.state() == before
        assert store.baseline("TRAINING", saved.comparison_key or "") is None

    def test_baselines_survive_reopening(self, harness: StoreHarness) -> None:
        store = harness.open()
        first = store.get_or_establish_baseline(snap("run-1"))
        second = store.save_snapshot(snap("run-2", config=OTHER_CONFIG))
        store.set_baseline(second)
        third = store.save_snapshot(snap("run-3", config=OTHER_CONFIG))
        store.set_baseline(third)
        store.close()
        reopened = harness.open()
        assert reopened.baseline("TRAINING", first.comparison_key or "") == first
        assert reopened.baseline("TRAINING", third.comparison_key or "") == third
        assert reopened.get_or_establish_baseline(snap("run-4", config=OTHER_CONFIG)) == third

    # -- several handles ---------------------------------------------------------

    def test_refresh_sees_another_handles_saves(
        self, store: SnapshotStore, other: SnapshotStore
    ) -> None:
        assert len(store) == 0
        saved = other.save_snapshot(snap("run-1"))
        newer = other.save_snapshot(snap("run-1", metrics={"v": 2}))
        store.refresh()
        assert len(store) == 2
        assert store.get("run-1", "TRAINING") == newer
        assert store.versions("run-1", "TRAINING") == [saved, newer]
        assert store.get_by_seq(1) == saved
        assert store.find_previous_comparable(snap("run-2")) == newer

    def test_get_agrees_with_versions_after_another_handle_saves(
        self, store: SnapshotStore, other: SnapshotStore
    ) -> None:
        store.save_snapshot(snap(metrics={"v": 1}))
        newer = other.save_snapshot(snap(metrics={"v": 2}))
        # "Latest" is never an older version this handle happened to see first.
        assert store.get("run-1", "TRAINING") == newer
        assert store.versions("run-1", "TRAINING")[-1] == newer

    def test_handles_share_one_seq_sequence(
        self, store: SnapshotStore, other: SnapshotStore
    ) -> None:
        seqs = [
            handle.save_snapshot(snap(f"run-{i}")).snapshot_seq
            for i, handle in enumerate([store, other, store, other, other, store])
        ]
        assert seqs == [1, 2, 3, 4, 5, 6]

    def test_a_retry_through_another_handle_writes_nothing(
        self, store: SnapshotStore, other: SnapshotStore, harness: StoreHarness
    ) -> None:
        first = store.save_snapshot(snap(metrics={"auc": 0.7}))
        before = harness.state()
        assert other.save_snapshot(snap(metrics={"auc": 0.7})) == first
        assert harness.state() == before

    def test_baselines_pinned_by_another_handle_are_seen(
        self, store: SnapshotStore, other: SnapshotStore
    ) -> None:
        pinned = other.get_or_establish_baseline(snap("run-1"))
        key = pinned.comparison_key or ""
        assert store.baseline("TRAINING", key) == pinned
        assert store.get_or_establish_baseline(snap("run-2")) == pinned
        newer = store.save_snapshot(snap("run-3"))
        store.set_baseline(newer)
        assert other.get_or_establish_baseline(snap("run-4")) == newer
        assert other.baseline("TRAINING", key) == newer

    # -- bad input changes nothing ---------------------------------------------

    @pytest.mark.parametrize("field", ["metrics", "config", "data"])
    @pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
    def test_values_json_cannot_hold_are_refused(
        self, store: SnapshotStore, harness: StoreHarness, field: str, value: Any
    ) -> None:
        store.save_snapshot(snap("run-0"))
        before = harness.state()
        fields: dict[str, Any] = {field: {"value": value}}
        for method in (store.save_snapshot, store.get_or_establish_baseline):
            with pytest.raises(InvalidInputError):
                method(snap("run-1", **fields))
        assert harness.state() == before
        assert len(store) == 1

    @pytest.mark.parametrize("field", ["metrics", "config", "data"])
    def test_a_non_mapping_field_is_refused(self, field: str) -> None:
        fields: dict[str, Any] = {field: [1, 2]}
        with pytest.raises(InvalidInputError):
            snap(**fields)

    def test_an_oversized_record_is_refused(self, harness: StoreHarness) -> None:
        store = harness.open(max_record_bytes=1000)
        store.save_snapshot(snap("run-0", data={"blob": "x" * 500}))
        before = harness.state()
        with pytest.raises(InvalidInputError, match="max_record_bytes"):
            store.save_snapshot(snap("run-1", data={"blob": "x" * 1000}))
        assert harness.state() == before
        assert len(store) == 1

    @pytest.mark.parametrize("run_id", [*BAD_NAMES, 7, None])
    def test_a_bad_run_id_is_refused(
        self, store: SnapshotStore, harness: StoreHarness, run_id: Any
    ) -> None:
        self._refused_everywhere(store, harness, snap(run_id))
        with pytest.raises(InvalidInputError):
            store.get(run_id, "TRAINING")
        with pytest.raises(InvalidInputError):
            store.versions(run_id, "TRAINING")
        if run_id is not None:  # None is no filter at all
            with pytest.raises(InvalidInputError):
                list(store.snapshots(run_id=run_id))

    @pytest.mark.parametrize("stage", [*BAD_STAGES, 7])
    def test_a_bad_stage_is_refused(
        self, store: SnapshotStore, harness: StoreHarness, stage: Any
    ) -> None:
        self._refused_everywhere(store, harness, snap("run-1", stage))
        with pytest.raises(InvalidInputError):
            store.get("run-1", stage)
        with pytest.raises(InvalidInputError):
            store.versions("run-1", stage)
        with pytest.raises(InvalidInputError):
            list(store.snapshots(stage=stage))
        with pytest.raises(InvalidInputError):
            store.baseline(stage, "key")

    @pytest.mark.parametrize("key", BAD_NAMES)
    def test_a_bad_comparison_key_is_refused(
        self, store: SnapshotStore, harness: StoreHarness, key: str
    ) -> None:
        self._refused_everywhere(store, harness, snap("run-1", comparison_key=key))
        with pytest.raises(InvalidInputError):
            store.baseline("TRAINING", key)

    def test_a_name_of_the_longest_allowed_length_is_accepted(self, store: SnapshotStore) -> None:
        long_run, long_stage = "r" * 200, "S" * 200
        saved = store.save_snapshot(snap(long_run, long_stage, comparison_key="k" * 200))
        assert store.get(long_run, long_stage) == saved

    @pytest.mark.parametrize("not_a_snapshot", [None, {"run_id": "r", "stage": "s"}, "r:s"])
    def test_something_else_than_a_snapshot_is_refused(
        self, store: SnapshotStore, harness: StoreHarness, not_a_snapshot: Any
    ) -> None:
        self._refused_everywhere(store, harness, not_a_snapshot)

    @pytest.mark.parametrize("name", BAD_HISTORY_NAMES)
    def test_a_bad_history_name_is_refused(
        self, store: SnapshotStore, harness: StoreHarness, name: str
    ) -> None:
        before = harness.state()
        with pytest.raises(InvalidInputError):
            store.history(name)
        assert harness.state() == before

    def _refused_everywhere(self, store: SnapshotStore, harness: StoreHarness, bad: Any) -> None:
        store.save_snapshot(snap("run-0"))
        before = harness.state()
        for method in (
            store.save_snapshot,
            store.get_or_establish_baseline,
            store.set_baseline,
            store.find_previous_comparable,
        ):
            with pytest.raises(InvalidInputError):
                method(bad)
        assert harness.state() == before
        assert len(store) == 1

    # -- histories -------------------------------------------------------------

    def test_history_is_an_iteration_history_kept_with_the_store(
        self, harness: StoreHarness
    ) -> None:
        store = harness.open()
        history = store.history("run-1.TRAINING")
        assert isinstance(history, IterationHistory)
        assert store.history("run-1.TRAINING") is history
        history.append({"loss": 0.5}, key="i0")
        history.append({"loss": 0.4}, key="i1")
        store.history("other").append({"loss": 1.0})
        store.close()
        reopened = harness.open()
        assert [r.data["loss"] for r in reopened.history("run-1.TRAINING")] == [0.5, 0.4]
        assert [r.data for r in reopened.history("other")] == [{"loss": 1.0}]
        assert len(reopened) == 0  # histories are not snapshots

    # -- lifecycle ---------------------------------------------------------------

    def test_everything_saved_survives_reopening(self, harness: StoreHarness) -> None:
        store = harness.open()
        saved = save_all(store, pipeline(runs=3))
        store.close()
        reopened = harness.open()
        assert list(reopened.snapshots()) == saved
        assert reopened.save_snapshot(snap("run-9")).snapshot_seq == len(saved) + 1

    def test_close_is_idempotent_and_later_calls_are_refused(self, harness: StoreHarness) -> None:
        store = harness.open()
        saved = store.save_snapshot(snap())
        store.close()
        store.close()
        for call in (
            lambda: store.save_snapshot(snap("run-2")),
            lambda: store.get("run-1", "TRAINING"),
            lambda: store.get_by_seq(1),
            lambda: store.versions("run-1", "TRAINING"),
            store.snapshots,
            lambda: len(store),
            lambda: store.find_previous_comparable(saved),
            lambda: store.get_or_establish_baseline(saved),
            lambda: store.set_baseline(saved),
            lambda: store.baseline("TRAINING", "k"),
            lambda: store.history("h"),
            store.refresh,
            store.checkpoint,
        ):
            with pytest.raises(ClosedError):
                call()

    def test_a_context_manager_closes_the_store(self, harness: StoreHarness) -> None:
        with harness.open() as store:
            store.save_snapshot(snap())
        with pytest.raises(ClosedError):
            store.get("run-1", "TRAINING")
        assert harness.open().get("run-1", "TRAINING") is not None

    @pytest.mark.parametrize(
        "options",
        [
            {"durability": "sometimes"},
            {"lock_timeout": -1},
            {"lock_timeout": math.nan},
            {"max_record_bytes": 0},
        ],
        ids=repr,
    )
    def test_bad_options_are_refused_and_change_nothing(
        self, harness: StoreHarness, options: dict[str, Any]
    ) -> None:
        with harness.open() as store:
            store.save_snapshot(snap())
        before = harness.state()
        with pytest.raises(InvalidInputError):
            harness.open(**options)
        assert harness.state() == before
