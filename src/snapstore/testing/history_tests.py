"""The cases every history backend must pass (see ``snapstore.testing.conformance``)."""

from __future__ import annotations

import dataclasses
import math
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from snapstore import (
    ClosedError,
    HistoryRecord,
    InvalidInputError,
    IterationHistory,
    KeyConflictError,
    NotFoundError,
    SnapstoreError,
)
from snapstore.testing.support import HistoryHarness, HistorySuite, json_text


class HistoryTests(HistorySuite):
    """Every case a history backend must pass; subclass and provide the ``harness`` fixture."""

    # -- appending -------------------------------------------------------------

    def test_append_assigns_consecutive_seqs(self, history: IterationHistory) -> None:
        records = [history.append({"i": i}) for i in range(5)]
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert [r.data for r in records] == [{"i": i} for i in range(5)]
        assert all(r.key is None for r in records)
        assert history.last_seq == 5
        assert len(history) == 5

    def test_an_empty_history(self, history: IterationHistory, harness: HistoryHarness) -> None:
        before = harness.state()
        assert len(history) == 0
        assert list(history) == []
        assert history.last_seq == 0
        assert history.load_recent(3) == []
        assert history.extend([]) == []
        assert harness.state() == before

    def test_iter_returns_the_appended_records(self, history: IterationHistory) -> None:
        appended = [history.append({"i": i, "s": "x" * i}) for i in range(10)]
        assert list(history) == appended

    def test_extend_writes_all_records_in_order(self, history: IterationHistory) -> None:
        history.append({"first": True})
        records = history.extend({"i": i} for i in range(4))
        assert [r.seq for r in records] == [2, 3, 4, 5]
        assert list(history)[1:] == records

    def test_get(self, history: IterationHistory) -> None:
        records = history.extend({"i": i} for i in range(3))
        for record in records:
            assert history.get(record.seq) == record

    @pytest.mark.parametrize("seq", [0, -1, 4, 10**6])
    def test_get_of_a_missing_seq_raises_not_found(
        self, history: IterationHistory, seq: int
    ) -> None:
        history.extend({"i": i} for i in range(3))
        with pytest.raises(NotFoundError, match="no record with seq") as info:
            history.get(seq)
        assert isinstance(info.value, KeyError)
        assert isinstance(info.value, SnapstoreError)

    @pytest.mark.parametrize("seq", [True, "1", 1.0, None])
    def test_get_needs_an_int(self, history: IterationHistory, seq: Any) -> None:
        history.append({"i": 1})
        with pytest.raises(InvalidInputError):
            history.get(seq)

    def test_load_recent(self, history: IterationHistory) -> None:
        records = history.extend({"i": i} for i in range(6))
        assert history.load_recent(0) == []
        assert history.load_recent(2) == records[-2:]
        assert history.load_recent(6) == records
        assert history.load_recent(100) == records
        with pytest.raises(InvalidInputError):
            history.load_recent(-1)

    def test_a_record_is_frozen_and_its_ts_is_utc(self, history: IterationHistory) -> None:
        before = datetime.now(UTC)
        record = history.append({"x": 1})
        after = datetime.now(UTC)
        assert isinstance(record, HistoryRecord)
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.seq = 2  # type: ignore[misc]
        assert record.ts.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= record.ts <= after + timedelta(seconds=1)

    def test_data_round_trips(self, history: IterationHistory, other: IterationHistory) -> None:
        data = {
            "int": -(2**63),
            "big": 2**63 - 1,
            "float": 0.1,
            "neg_zero": -0.0,
            "text": 'ünïcødé ✓ \U0001f600 \n\t"quoted"',
            "none": None,
            "bool": True,
            "list": [1, [2, [3, {"deep": []}]]],
            "tuple": (1, 2),
            "nested": {"a": {"b": {}}},
            "": "empty key",
            "nan": math.nan,
        }
        stored = {**data, "tuple": [1, 2]}
        record = history.append(data)
        for got in (record, history.get(record.seq), other.get(record.seq)):
            assert json_text(got.data) == json_text(stored)

    def test_mapping_data_is_accepted(self, history: IterationHistory) -> None:
        record = history.append(MappingProxyType({"a": 1}))
        assert record.data == {"a": 1}
        assert history.get(1).data == {"a": 1}

    @pytest.mark.parametrize("value", [object(), {1, 2}, b"x", Decimal("1.5"), {1: "int key"}])
    def test_values_json_cannot_hold_are_refused(
        self, history: IterationHistory, harness: HistoryHarness, value: Any
    ) -> None:
        history.append({"ok": True})
        before = harness.state()
        with pytest.raises(InvalidInputError):
            history.append({"value": value})
        with pytest.raises(InvalidInputError):
            history.extend([{"fine": 1}, {"value": value}])  # all or nothing
        assert harness.state() == before
        assert len(history) == 1

    def test_an_oversized_record_is_refused(self, harness: HistoryHarness) -> None:
        history = harness.open(max_record_bytes=100)
        history.append({"blob": "x" * 50})
        before = harness.state()
        with pytest.raises(InvalidInputError, match="max_record_bytes"):
            history.append({"blob": "x" * 100})
        assert harness.state() == before

    # -- keys: exactly once ------------------------------------------------------

    def test_a_key_is_stored(self, history: IterationHistory) -> None:
        record = history.append({"x": 1}, key="run-1/iter-1")
        assert record.key == "run-1/iter-1"
        assert history.get(record.seq).key == "run-1/iter-1"

    def test_the_same_key_returns_the_stored_record_and_writes_nothing(
        self, history: IterationHistory, harness: HistoryHarness
    ) -> None:
        first = history.append({"attempt": 1, "loss": 0.5}, key="k")
        history.append({"other": True})
        before = harness.state()
        again = history.append({"loss": 0.5, "attempt": 1}, key="k")  # keys in another order
        assert again == first
        assert harness.state() == before
        assert len(history) == 2

    @pytest.mark.parametrize(
        "other_data",
        [{"attempt": 2}, {"attempt": 1.0}, {"attempt": True}, {"attempt": 1, "extra": None}, {}],
        ids=["other-value", "float-for-int", "bool-for-int", "extra-field", "empty"],
    )
    def test_a_key_retried_with_other_data_is_a_conflict_and_writes_nothing(
        self, history: IterationHistory, harness: HistoryHarness, other_data: dict[str, object]
    ) -> None:
        first = history.append({"attempt": 1}, key="k")
        before = harness.state()
        with pytest.raises(
            KeyConflictError, match="'k' is stored \\(seq 1\\) with other data"
        ) as info:
            history.append(other_data, key="k")
        assert info.value.stored == first
        assert isinstance(info.value, InvalidInputError)
        assert harness.state() == before

    def test_a_retry_of_a_nan_record_is_a_retry(
        self, history: IterationHistory, harness: HistoryHarness
    ) -> None:
        first = history.append({"loss": math.nan}, key="k")
        before = harness.state()
        assert history.append({"loss": math.nan}, key="k").seq == first.seq
        assert harness.state() == before

    @pytest.mark.parametrize("key", ["", "tab\there", "x" * 257, 7])
    def test_a_bad_key_is_refused(
        self, history: IterationHistory, harness: HistoryHarness, key: Any
    ) -> None:
        before = harness.state()
        with pytest.raises(InvalidInputError):
            history.append({"x": 1}, key=key)
        assert harness.state() == before

    def test_a_key_is_exactly_once_across_handles(
        self, history: IterationHistory, other: IterationHistory, harness: HistoryHarness
    ) -> None:
        first = history.append({"attempt": 1}, key="k")
        before = harness.state()
        assert other.append({"attempt": 1}, key="k") == first
        with pytest.raises(KeyConflictError):
            other.append({"attempt": 2}, key="k")
        assert harness.state() == before

    def test_the_same_key_from_threads_at_once_is_stored_once(
        self, history: IterationHistory
    ) -> None:
        barrier = threading.Barrier(8)
        results: list[HistoryRecord] = []

        def append() -> None:
            barrier.wait()
            results.append(history.append({"once": True}, key="once"))

        threads = [threading.Thread(target=append) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 8
        assert len({r.seq for r in results}) == 1
        assert len(history) == 1

    def test_threads_appending_at_once_get_distinct_gap_free_seqs(
        self, history: IterationHistory
    ) -> None:
        seqs: list[int] = []

        def work(worker: int) -> None:
            seqs.extend(history.append({"worker": worker, "i": i}).seq for i in range(25))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(seqs) == list(range(1, 101))
        assert [r.seq for r in history] == list(range(1, 101))

    # -- several handles ---------------------------------------------------------

    def test_another_handles_records_are_seen(
        self, history: IterationHistory, other: IterationHistory
    ) -> None:
        other.append({"from": "other"})
        history.refresh()
        assert history.last_seq == 1
        assert history.get(1).data == {"from": "other"}
        other.append({"from": "other", "n": 2})
        # len, iter, get and load_recent take in new records by themselves.
        assert len(history) == 2
        assert [r.seq for r in history] == [1, 2]
        other.append({"n": 3})
        assert history.get(3).data == {"n": 3}
        other.append({"n": 4})
        assert [r.seq for r in history.load_recent(2)] == [3, 4]
        # A writer continues after what the other handle wrote.
        assert history.append({"n": 5}).seq == 5

    def test_records_survive_reopening(self, harness: HistoryHarness) -> None:
        with harness.open() as history:
            written = history.extend({"i": i} for i in range(3))
            keyed = history.append({"k": True}, key="key")
        with harness.open() as history:
            assert list(history) == [*written, keyed]
            assert history.append({"k": True}, key="key") == keyed
            assert history.append({"i": 3}).seq == 5

    # -- lifecycle and options -----------------------------------------------------

    def test_a_context_manager_closes_the_history(self, harness: HistoryHarness) -> None:
        with harness.open() as history:
            history.append({"x": 1})
        assert history.closed
        for call in (
            lambda: history.append({"x": 2}),
            lambda: history.extend([{"x": 2}]),
            lambda: len(history),
            lambda: list(history),
            lambda: history.get(1),
            lambda: history.load_recent(1),
            history.refresh,
        ):
            with pytest.raises(ClosedError):
                call()

    def test_close_is_idempotent(self, harness: HistoryHarness) -> None:
        history = harness.open()
        history.close()
        history.close()
        with pytest.raises(ClosedError):
            history.refresh()

    def test_a_read_only_handle_reads_and_refuses_writes(
        self, history: IterationHistory, harness: HistoryHarness
    ) -> None:
        written = history.append({"x": 1}, key="k")
        reader = harness.open(read_only=True)
        before = harness.state()
        assert list(reader) == [written]
        for call in (
            lambda: reader.append({"x": 2}),
            lambda: reader.append({"x": 1}, key="k"),
            lambda: reader.extend([{"x": 2}]),
            reader.repair,
        ):
            with pytest.raises(SnapstoreError, match="read_only"):
                call()
        assert harness.state() == before

    def test_verify_of_a_sound_history_finds_nothing(self, history: IterationHistory) -> None:
        history.extend({"i": i} for i in range(3))
        report = history.verify()
        assert report.ok
        assert report.findings == []
        assert history.repair(dry_run=True).ok

    @pytest.mark.parametrize("dry_run", ["yes", 1, None])
    def test_repair_needs_a_flag_for_dry_run(
        self, history: IterationHistory, harness: HistoryHarness, dry_run: Any
    ) -> None:
        history.append({"x": 1})
        before = harness.state()
        with pytest.raises(InvalidInputError, match="dry_run"):
            history.repair(dry_run=dry_run)
        assert harness.state() == before

    @pytest.mark.parametrize(
        "options",
        [
            {"durability": "sometimes"},
            {"durability": None},
            {"lock_timeout": -1},
            {"lock_timeout": math.nan},
            {"lock_timeout": True},
            {"max_record_bytes": 0},
            {"max_record_bytes": True},
            {"read_only": "yes"},
        ],
        ids=repr,
    )
    def test_bad_options_are_refused_and_change_nothing(
        self, history: IterationHistory, harness: HistoryHarness, options: dict[str, Any]
    ) -> None:
        history.append({"x": 1})
        before = harness.state()
        with pytest.raises(InvalidInputError):
            harness.open(**options)
        assert harness.state() == before
