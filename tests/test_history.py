"""IterationHistory on a history file: the conformance suite, then what only a file has."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from helpers import check_log
from snapstore import (
    InvalidInputError,
    IterationHistory,
    KeyConflictError,
)
from snapstore.testing.conformance import HistoryTableTests, HistoryTests
from snapstore.testing.harnesses import LocalHistoryHarness
from workers import WAIT, append_many

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class TestLocalHistory(HistoryTests):
    @pytest.fixture(params=["fsync", "write"])
    def harness(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[LocalHistoryHarness]:
        harness = LocalHistoryHarness(tmp_path / "history.jsonl", request.param)
        yield harness
        harness.close_all()


class TestLocalHistoryTables(HistoryTableTests):
    # Tables only read: one durability is enough (the bulk case appends with "write").
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[LocalHistoryHarness]:
        harness = LocalHistoryHarness(tmp_path / "history.jsonl")
        yield harness
        harness.close_all()


def test_a_history_with_nothing_appended_is_an_empty_file(history: IterationHistory) -> None:
    assert history.extend([]) == []
    assert history.path.read_bytes() == b""


@pytest.mark.parametrize(
    "other",
    [{"attempt": 2}, {"attempt": 1.0}, {"attempt": True}, {"attempt": 1, "extra": None}, {}],
    ids=["other-value", "float-for-int", "bool-for-int", "extra-field", "empty"],
)
def test_a_key_retried_with_other_data_is_a_conflict_and_writes_nothing(
    history: IterationHistory, other: dict[str, object]
) -> None:
    first = history.append({"attempt": 1}, key="k")
    before = history.path.read_bytes()
    with pytest.raises(KeyConflictError, match="'k' is stored \\(seq 1\\) with other data") as info:
        history.append(other, key="k")
    assert info.value.stored == first
    assert isinstance(info.value, InvalidInputError)
    assert history.path.read_bytes() == before
    with IterationHistory(history.path) as fresh:
        assert [r.data for r in fresh] == [{"attempt": 1}]


def test_other_processes_records_are_visible(history: IterationHistory) -> None:
    history.append({"from": "parent"})
    script = (
        "import sys\n"
        "from snapstore import IterationHistory\n"
        "with IterationHistory(sys.argv[1]) as h:\n"
        "    h.append({'from': 'child'}, key='child')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(history.path)], check=True, timeout=60)
    history.refresh()
    assert history.last_seq == 2
    child = history.get(2)
    assert (child.data, child.key) == ({"from": "child"}, "child")
    assert history.append({"from": "parent"}).seq == 3
    check_log(history.path)


def test_repr_names_the_file(history: IterationHistory) -> None:
    history.append({"x": 1})
    assert repr(history) == f"IterationHistory({str(history.path)!r}, last_seq=1)"


def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "history.jsonl"
    with IterationHistory(path) as history:
        history.append({"x": 1})
    assert path.exists()


@pytest.mark.parametrize("durability", ["", "none", "FSYNC", None, 1])
def test_invalid_durability(history_path: Path, durability: object) -> None:
    with pytest.raises(InvalidInputError, match="durability"):
        IterationHistory(history_path, durability=durability)  # type: ignore[arg-type]
    assert not history_path.exists()


@pytest.mark.parametrize("timeout", [-1, -0.1, float("nan"), float("inf"), "1", None])
def test_invalid_lock_timeout(history_path: Path, timeout: object) -> None:
    with pytest.raises(InvalidInputError, match="lock_timeout"):
        IterationHistory(history_path, lock_timeout=timeout)  # type: ignore[arg-type]
    assert not history_path.exists()


@pytest.mark.parametrize("size", [0, -1])
def test_invalid_max_record_bytes(history_path: Path, size: int) -> None:
    with pytest.raises(InvalidInputError, match="max_record_bytes"):
        IterationHistory(history_path, max_record_bytes=size)


def test_path_must_end_in_jsonl(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"\.jsonl"):
        IterationHistory(tmp_path / "history.json")
    assert list(tmp_path.iterdir()) == []


# -- one lock per log, whatever path reaches it ---------------------------------------


def test_writers_through_a_symlink_and_the_real_name_share_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "runs" / "train.jsonl"
    real.parent.mkdir()
    IterationHistory(real).close()
    via_file = tmp_path / "alias.jsonl"
    via_file.symlink_to(real)
    via_dir = tmp_path / "linked-runs"
    via_dir.symlink_to(real.parent)
    paths = [real, via_file, via_dir / "train.jsonl"]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(paths))
    writers = [
        context.Process(target=append_many, args=(str(path), w, 150, start))
        for w, path in enumerate(paths)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(WAIT)
        assert writer.exitcode == 0
    with IterationHistory(real) as history:
        records = list(history)
        assert history.verify().ok
    assert [r.seq for r in records] == list(range(1, 3 * 150 + 1))
    assert sorted((r.data["writer"], r.data["i"]) for r in records) == sorted(
        (w, i) for w in range(3) for i in range(150)
    )
    assert not any(p.suffix == ".bin" for p in tmp_path.rglob("*")), "records were quarantined"


def test_a_log_with_a_second_hard_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    with IterationHistory(path) as history:
        history.append({"i": 1})
    os.link(path, tmp_path / "other.jsonl")
    before = path.read_bytes()
    for name in (path, tmp_path / "other.jsonl"):
        with pytest.raises(InvalidInputError, match="2 hard links"):
            IterationHistory(name)
    assert path.read_bytes() == before


def test_a_handle_opened_through_a_link_stays_with_its_file_when_the_link_moves(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    for path in (first, second):
        with IterationHistory(path) as history:
            history.append({"file": path.stem})
    link = tmp_path / "current.jsonl"
    link.symlink_to(first)
    with IterationHistory(link) as history:
        link.unlink()
        link.symlink_to(second)
        # The handle holds the first file's lock: its appends go to that file.
        assert history.append({"file": "later"}).seq == 2
    for path, files in ((first, ["first", "later"]), (second, ["second"])):
        with IterationHistory(path) as history:
            assert [r.data["file"] for r in history] == files
            assert history.verify().ok
