"""``snapstore verify`` and ``snapstore repair``: exit status and what they print."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from damage import flip, lines_of, tree_bytes
from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with SnapshotStore(root) as opened:
        for i in range(5):
            opened.save_snapshot(
                NormalizedSnapshot(run_id=f"run-{i}", stage="train", metrics={"loss": i})
            )
        opened.history("steps").extend({"step": step} for step in range(3))
        opened.checkpoint()
    return root


def damage_line(path: Path, number: int) -> int:
    """Flip a bit inside line ``number`` (1-based) of the log; return the line's offset."""
    data = path.read_bytes()
    line = lines_of(data)[number - 1]
    path.write_bytes(flip(data, line.offset + 30, 1))
    return line.offset


def check_summary(out: str) -> None:
    """The last line counts the problems printed above it, one a line."""
    *problems, summary = out.strip().splitlines()
    assert summary.endswith(f": {len(problems)} problem(s)"), out


def snapstore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapstore", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_commands_in_a_subprocess(store: Path) -> None:
    clean = snapstore("verify", str(store))
    assert (clean.returncode, clean.stderr) == (0, "")
    assert clean.stdout.strip().endswith(": OK")

    log = store / "snapshots.jsonl"
    offset = damage_line(log, 3)
    found = snapstore("verify", str(store))
    assert found.returncode == 1
    assert f"{log}:3 (byte {offset}): checksum mismatch" in found.stdout
    # The derived indices still hold the damaged snapshot: reported as well.
    assert "index.parquet: row of snapshot_seq 3 disagrees with the log" in found.stdout
    assert "index.sqlite: rows disagree with the log from snapshot_seq 3" in found.stdout
    check_summary(found.stdout)

    repaired = snapstore("repair", str(store))
    assert repaired.returncode == 0, repaired.stdout
    assert f"moved {len(lines_of(log.read_bytes())[2].raw)} bytes at {log} byte {offset}" in (
        repaired.stdout
    )
    assert repaired.stdout.strip().endswith(": OK")
    assert snapstore("verify", str(store)).returncode == 0


def test_verify_names_every_problem_with_path_line_and_offset(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, history = store / "snapshots.jsonl", store / "history" / "steps.jsonl"
    damaged = {(log, 2): damage_line(log, 2), (log, 4): damage_line(log, 4)}
    damaged[history, 1] = damage_line(history, 1)
    assert main(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    for (path, number), offset in damaged.items():
        assert f"{path}:{number} (byte {offset}): " in out
    check_summary(out)


def test_repair_dry_run_exits_1_and_changes_nothing(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage_line(store / "snapshots.jsonl", 2)
    before = tree_bytes(store)
    assert main(["repair", "--dry-run", str(store)]) == 1
    assert "would move" in capsys.readouterr().out
    assert tree_bytes(store) == before
    assert main(["repair", str(store)]) == 0
    capsys.readouterr()
    # Nothing left to do: a dry run now says so with exit status 0.
    assert main(["repair", "--dry-run", str(store)]) == 0
    assert "would" not in capsys.readouterr().out


def test_a_standalone_history_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "runs.jsonl"
    with IterationHistory(path) as history:
        history.extend({"i": i} for i in range(4))
    assert main(["verify", str(path)]) == 0
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(b'{"seq":5,"ts"')  # a torn tail
    assert main(["verify", str(path)]) == 1
    assert f"{path}:5 (byte {size}): torn tail" in capsys.readouterr().out
    assert main(["repair", str(path)]) == 0
    assert "4 valid records: OK" in capsys.readouterr().out
    assert list(path.with_name("runs.jsonl.quarantine").glob("*.bin"))


def test_a_path_that_is_neither_store_nor_history_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    for command in (["verify"], ["repair"], ["repair", "--dry-run"]):
        assert main([*command, str(tmp_path / "notes.txt")]) == 2
        assert "neither a snapstore store nor a history" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 2
    assert "is not a snapstore store" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["verify"], ["repair"], ["repair", "--dry-run"]])
def test_a_store_named_by_a_relative_path(
    command: list[str],
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (store / "index.sqlite").exists()  # read through a URI, which must be absolute
    monkeypatch.chdir(store.parent)
    assert main([*command, store.name]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{store.name}: "), captured
    assert captured.out.endswith(" valid records: OK\n"), captured
    assert captured.err == ""
