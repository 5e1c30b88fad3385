"""Files snapstore did not write are never touched: refused with a typed error, or imported.

A user's JSON Lines file opened as a history, verified or repaired must keep
every byte, and get nothing created beside it (no lock, no quarantine). A
first append torn by a crash is still a log, and is still recovered.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from helpers import check_log
from snapstore import (
    InvalidInputError,
    IterationHistory,
    NotAHistoryError,
    SnapshotStore,
)
from snapstore.backends.local.repair import check_path
from snapstore.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path

# What people already have: pandas' to_json(lines=True), a logger, jq -c,
# JSON arrays per line, one line without a newline, text that is not JSON.
FOREIGN = {
    "pandas": b'{"epoch":0,"loss":0.9}\n{"epoch":1,"loss":0.7}\n',
    "logger": b'{"level": "info", "msg": "started"}\n',
    "arrays": b"[1, 2, 3]\n[4, 5, 6]\n",
    "one-line-no-newline": b'{"step": 1, "seq": 4}',
    "text": b"step,loss\n1,0.9\n",
    "seq-first-but-no-checksum": b'{"seq" : 1, "data": {}}\n',
    "seq-first-like-a-record": b'{"seq":1,"loss":0.5}\n{"seq":2,"loss":0.4}\n',
    "bom": b'\xef\xbb\xbf{"a": 1}\n',
}


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(directory.rglob("*"))
    }


@pytest.fixture(params=list(FOREIGN.values()), ids=list(FOREIGN))
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "data" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_bytes(request.param)
    return path


def test_opening_a_foreign_file_is_refused_and_touches_nothing(foreign: Path) -> None:
    before = _tree(foreign.parent)
    with pytest.raises(NotAHistoryError, match=r"is not a snapstore history.*snapstore import"):
        IterationHistory(foreign)
    assert _tree(foreign.parent) == before


@pytest.mark.parametrize("repair", [False, True], ids=["verify", "repair"])
def test_checking_a_foreign_file_is_refused_and_touches_nothing(
    foreign: Path, repair: bool
) -> None:
    before = _tree(foreign.parent)
    with pytest.raises(NotAHistoryError):
        check_path(foreign, repair=repair)
    assert _tree(foreign.parent) == before


@pytest.mark.parametrize("command", ["verify", "repair"])
def test_the_cli_refuses_a_foreign_file_with_exit_status_2(
    foreign: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _tree(foreign.parent)
    assert main([command, str(foreign)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snapstore: error: ")
    assert "is not a snapstore history" in err
    assert _tree(foreign.parent) == before


@pytest.mark.parametrize(
    "torn",
    [b'{"seq":1,"ts":"2026-11-', b"\x00" * 64, b"\x96\x86\xf7XZ\x0f\n\x01"],
    ids=["torn-record", "zeros", "garbage"],
)
def test_a_first_append_torn_by_a_crash_is_still_recovered(tmp_path: Path, torn: bytes) -> None:
    # The writer made its lock file before the log; the crash left these
    # bytes (tests/crash runs the real sequence through every crash state).
    path = tmp_path / "h.jsonl"
    (tmp_path / "h.jsonl.lock").touch()
    path.write_bytes(torn)
    with IterationHistory(path) as history:
        assert len(history) == 0
        assert history.append({"i": 1}).seq == 1
    assert [r["data"] for r in check_log(path)] == [{"i": 1}]
    (note,) = (tmp_path / "h.jsonl.quarantine").glob("*.bin")
    assert note.read_bytes() == torn


def test_a_log_whose_first_line_is_damaged_is_still_a_log(tmp_path: Path) -> None:
    # Its start flipped, but records follow: corruption for repair, not a user's file.
    path = tmp_path / "h.jsonl"
    with IterationHistory(path) as history:
        for i in range(3):
            history.append({"i": i})
    data = bytearray(path.read_bytes())
    data[0:2] = b"XX"
    path.write_bytes(bytes(data))
    report = check_path(path)
    assert not report.ok
    assert check_path(path, repair=True).actions
    assert check_path(path).ok
    with IterationHistory(path) as history:
        assert [r.data for r in history] == [{"i": 1}, {"i": 2}]


def test_a_history_copied_without_its_lock_file_is_still_a_history(tmp_path: Path) -> None:
    with IterationHistory(tmp_path / "h.jsonl") as history:
        history.append({"i": 1})
    copy = tmp_path / "elsewhere" / "h.jsonl"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "h.jsonl").read_bytes() + b'{"seq":2,"t')
    assert check_path(copy).records == 1  # checked, torn tail and all: not refused
    with IterationHistory(copy) as history:
        assert history.append({"i": 2}).seq == 2


def test_a_stores_log_is_not_opened_or_repaired_as_a_history(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        store.history("h").append({"i": 1})
    before = _tree(tmp_path)
    for log in ("snapshots.jsonl", "baselines.jsonl"):
        path = tmp_path / "s" / log
        path.touch()
        before = _tree(tmp_path)
        with pytest.raises(InvalidInputError, match="is a log of the store"):
            IterationHistory(path)
        with pytest.raises(InvalidInputError, match="is a log of the store"):
            check_path(path, repair=True)
        assert main(["repair", str(path)]) == 2
        assert _tree(tmp_path) == before


def test_a_stores_history_repaired_by_its_path_quarantines_into_the_store(
    tmp_path: Path,
) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        store.history("h").append({"i": 1})
    path = tmp_path / "s" / "history" / "h.jsonl"
    with path.open("ab") as file:
        file.write(b'{"seq":2,"ts"')
    assert check_path(path, repair=True).actions
    assert list((tmp_path / "s" / "quarantine").glob("h.jsonl.*.bin"))
    assert not (tmp_path / "s" / "history" / "h.jsonl.quarantine").exists()


def test_import_records_each_line_and_leaves_the_source_alone(foreign: Path) -> None:
    if not foreign.read_bytes().lstrip().startswith(b"{"):
        pytest.skip("not JSON object lines")
    source = foreign.read_bytes()
    target = foreign.with_name("history.jsonl")
    with IterationHistory.import_jsonl(foreign, target) as history:
        imported = [r.data for r in history]
    expected = [json.loads(line) for line in source.splitlines() if line.strip()]
    assert imported == expected
    assert foreign.read_bytes() == source
    assert [r["data"] for r in check_log(target)] == expected


def test_import_of_a_line_that_is_not_an_object_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"a": 1}\n{"a": 2}\n[3]\n')
    target = tmp_path / "h.jsonl"
    with pytest.raises(InvalidInputError, match="line 3"):
        IterationHistory.import_jsonl(source, target)
    with IterationHistory(target) as history:
        assert len(history) == 0


def test_the_cli_imports_then_the_history_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "metrics.jsonl"
    source.write_bytes(FOREIGN["pandas"])
    target = tmp_path / "history.jsonl"
    assert main(["import", str(source), str(target)]) == 0
    assert "2 record(s)" in capsys.readouterr().out
    assert main(["verify", str(target)]) == 0
    assert source.read_bytes() == FOREIGN["pandas"]
