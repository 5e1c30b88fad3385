"""The ``snapstore`` command: ``snapstore demo`` end to end, as a script and in-process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snapstore import SnapshotStore
from snapstore._cli import main

SCRIPT = Path(sys.executable).with_name("snapstore")
TABLE_HEADER = "vs previous comparable"
ALL_GOOD = "every invariant holds"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    "command", [[str(SCRIPT)], [sys.executable, "-m", "snapstore"]], ids=["script", "module"]
)
def test_demo_records_runs_prints_the_table_and_checks_the_store(
    tmp_path: Path, command: list[str]
) -> None:
    root = tmp_path / "demo"
    result = run(*command, "demo", str(root), "--runs", "2")
    assert result.returncode == 0, result.stderr
    assert TABLE_HEADER in result.stdout
    assert ALL_GOOD in result.stdout
    assert "run-001" in result.stdout
    assert "run-002" in result.stdout
    assert "FAILED" not in result.stdout
    with SnapshotStore(root) as store:
        assert len(store) == 6  # two runs, three stages each
        assert [s.snapshot_seq for s in store.snapshots()] == list(range(1, 7))


def test_demo_in_process_continues_an_existing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "demo"
    assert main(["demo", str(root), "--runs", "1"]) == 0
    assert main(["demo", str(root), "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(ALL_GOOD) == 2
    # run-003 uses run-001's config: it is compared with run-001.
    (row,) = [line for line in out.splitlines() if line.startswith("run-003 ")]
    assert "(run-001)" in row
    with SnapshotStore(root) as store:
        assert len(store) == 9


def test_demo_refuses_a_directory_that_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    assert main(["demo", str(root), "--runs", "1"]) == 2
    assert "not a snapstore store" in capsys.readouterr().err
    assert [p.name for p in root.iterdir()] == ["notes.txt"]


def test_help_lists_the_commands() -> None:
    result = run(str(SCRIPT), "--help")
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2
    assert "required" in capsys.readouterr().err


@pytest.mark.parametrize("runs", ["0", "-2"])
def test_demo_refuses_a_run_count_below_one(runs: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", str(tmp_path / "store"), "--runs", runs])
    assert exited.value.code == 2
    assert not (tmp_path / "store").exists()
