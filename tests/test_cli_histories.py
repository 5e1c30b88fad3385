"""``history``: a store's histories, one history's records, and what it says when it cannot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from snapstore import SnapshotStore
from snapstore.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with SnapshotStore(root) as opened:
        opened.history("steps").extend({"step": step} for step in range(3))
    return root


@pytest.mark.parametrize("command", [["history"], ["export", "-o", "out.csv", "--history"]])
def test_an_unknown_history_is_named_with_the_command_that_lists_them(
    store: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(store.parent)
    argv = [*command[:1], "store", *command[1:], "step"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "snapstore: error: store has no history 'step' "
        "(snapstore history store lists its histories)\n"
    )
    assert not (store / "history" / "step.jsonl").exists()
    assert not (store.parent / "out.csv").exists()


def test_a_history_of_a_store_and_the_list_of_them(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", str(store), "steps", "--format", "csv", "--columns", "seq,data.*"]) == 0
    assert capsys.readouterr().out.splitlines() == ['"seq","data.step"', "1,0", "2,1", "3,2"]
    assert main(["history", str(store), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ['"name","records"', '"steps",3']
