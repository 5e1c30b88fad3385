"""Property tests: arbitrary JSON round-trips; the history behaves like a list."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from helpers import check_line, log_lines, same_json
from snapstore import HistoryRecord, IterationHistory, KeyConflictError, NotFoundError
from strategies import json_objects, record_keys

if TYPE_CHECKING:
    from collections.abc import Sequence


def new_history_path(factory: pytest.TempPathFactory) -> Path:
    # Hypothesis runs many examples per test: each gets a directory of its own.
    return factory.mktemp("history") / "history.jsonl"


@given(data=json_objects)
def test_data_round_trips(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]) -> None:
    path = new_history_path(tmp_path_factory)
    with IterationHistory(path) as history:
        record = history.append(data)
        assert same_json(record.data, data)
        assert same_json(history.get(record.seq).data, data)
    with IterationHistory(path) as reopened:
        (stored,) = list(reopened)
        assert same_json(stored.data, data)
    (line,) = log_lines(path)
    assert same_json(check_line(line)["data"], data)


@given(key=record_keys)
def test_key_round_trips(tmp_path_factory: pytest.TempPathFactory, key: str) -> None:
    path = new_history_path(tmp_path_factory)
    with IterationHistory(path) as history:
        record = history.append({}, key=key)
        assert record.key == key
    with IterationHistory(path) as reopened:
        assert reopened.get(1).key == key
        assert reopened.append({}, key=key) == record
    assert check_line(log_lines(path)[0])["key"] == key


keys = st.none() | st.sampled_from(["a", "b", "c/1", "ünï"])


class HistoryMachine(RuleBasedStateMachine):
    """A history against a list of (key, data), with a second handle writing too."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="snapstore-machine-"))
        self.path = self.directory / "history.jsonl"
        self.history = IterationHistory(self.path)
        self.other = IterationHistory(self.path)
        self.model: list[tuple[str | None, dict[str, Any]]] = []

    def teardown(self) -> None:
        try:
            self.history.close()
            self.other.close()
        finally:
            shutil.rmtree(self.directory)

    def expect(self, record: HistoryRecord, seq: int) -> None:
        key, data = self.model[seq - 1]
        assert record.seq == seq
        assert record.key == key
        assert same_json(record.data, data)

    def take(self, key: str | None, data: dict[str, Any]) -> int | None:
        """The seq the model gives an append of (key, data); None: a key conflict."""
        stored = [k for k, _ in self.model]
        if key is not None and key in stored:
            seq = stored.index(key) + 1
            return seq if same_json(self.model[seq - 1][1], data) else None
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
        self.history = IterationHistory(self.path)
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


TestHistoryMachine = HistoryMachine.TestCase
