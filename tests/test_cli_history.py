"""``history``: a store's histories, one history's records, and --follow while others append."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from snapstore import IterationHistory, SnapshotStore
from snapstore.cli.main import main
from workers import WAIT

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with SnapshotStore(root) as opened:
        opened.history("train").extend(
            {"step": i, "loss": round(1 / (i + 1), 4), "extra": {"lr": 0.1}} for i in range(6)
        )
        opened.history("eval").append({"auc": 0.8}, key="final")
    return root


def out_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_a_store_lists_its_histories(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = json.loads(out_of(capsys, "history", str(store), "--format", "json"))
    assert listed == [{"name": "eval", "records": 1}, {"name": "train", "records": 6}]


def test_a_history_of_a_store_or_a_file_as_a_table(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    by_name = json.loads(out_of(capsys, "history", str(store), "train", "--format", "json"))
    by_file = json.loads(
        out_of(capsys, "history", str(store / "history" / "train.jsonl"), "--format", "json")
    )
    assert by_name == by_file
    assert [row["seq"] for row in by_name] == [1, 2, 3, 4, 5, 6]
    assert list(by_name[0]) == ["seq", "ts", "key", "data.extra.lr", "data.loss", "data.step"]
    assert by_name[1]["data.loss"] == 0.5
    table = out_of(capsys, "history", str(store), "eval")
    assert table.splitlines()[1].split()[-2:] == ["final", "0.8"]


def test_tail_where_and_columns(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(
        out_of(
            capsys,
            "history",
            str(store),
            "train",
            "--tail",
            "3",
            "--columns",
            "seq,data.step",
            "--format",
            "json",
        )
    )
    assert rows == [
        {"seq": 4, "data.step": 3},
        {"seq": 5, "data.step": 4},
        {"seq": 6, "data.step": 5},
    ]
    rows = json.loads(
        out_of(
            capsys,
            "history",
            str(store),
            "train",
            "--where",
            "data.loss < 0.3",
            "--columns",
            "seq",
            "--format",
            "json",
        )
    )
    assert rows == [{"seq": 4}, {"seq": 5}, {"seq": 6}]


def test_a_history_file_takes_no_name_and_follow_takes_no_csv(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        [str(store / "history" / "train.jsonl"), "train"],
        [str(store), "train", "--follow", "--format", "csv"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(["history", *argv])
        assert exited.value.code == 2
    assert main(["history", str(store), "missing"]) == 2
    assert "snapstore: error: " in capsys.readouterr().err


def _read_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + WAIT
    while len(lines) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


@pytest.mark.parametrize("output_format", ["json", "table"])
def test_follow_prints_what_other_processes_append_until_interrupted(
    tmp_path: Path, output_format: str
) -> None:
    path = tmp_path / "live.jsonl"
    with IterationHistory(path) as history:
        history.extend({"step": i} for i in range(3))
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snapstore",
            "history",
            str(path),
            "--follow",
            "--tail",
            "1",
            "--format",
            output_format,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _read_lines(follower, 1)  # the last record only (--tail 1)
        with IterationHistory(path) as history:
            history.append({"step": 3})
            history.append({"step": 4}, key="k4")
        later = _read_lines(follower, 2)
    finally:
        follower.send_signal(signal.SIGINT)
        _out, err = follower.communicate(timeout=WAIT)
    assert (follower.returncode, err) == (0, "")
    lines = first + later
    if output_format == "json":
        records = [json.loads(line) for line in lines]
        assert [(r["seq"], r["data.step"], r["key"]) for r in records] == [
            (3, 2, None),
            (4, 3, None),
            (5, 4, "k4"),
        ]
    else:
        assert [line.split()[0] for line in lines] == ["3", "4", "5"]
        assert lines[2].split()[-2:] == ["k4", "step=4"]
