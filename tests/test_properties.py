"""Property tests: arbitrary JSON round-trips a history file; the history behaves like a list."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import given

from helpers import check_line, log_lines, same_json
from snapstore import IterationHistory
from snapstore.testing.machines import HistoryMachine, json_objects, record_keys

if TYPE_CHECKING:
    import pytest


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


class LocalHistoryMachine(HistoryMachine):
    """The shipped history machine on a history file."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="snapstore-machine-"))
        super().__init__()

    def open_history(self) -> IterationHistory:
        return IterationHistory(self.directory / "history.jsonl")

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self.directory)


TestLocalHistoryMachine = LocalHistoryMachine.TestCase
