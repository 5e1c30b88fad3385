"""Long names: every file snapstore derives from a name fits in one file name (255 bytes).

A history's lock file, quarantine directory and quarantined copies, and the
temp files of atomic writes, are named after the log they serve. A log whose
own name is near the file system's limit must still get all of them, or one
torn tail would leave it unwritable and unrepairable.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest

from damage import check_quarantine
from helpers import check_log
from snapstore import IterationHistory, SnapshotStore
from snapstore._log.seam import FileSystem, is_temp_name, stale_temps
from snapstore._names import MAX_NAME_LENGTH, NAME_MAX, check_history_name, fit_name

if TYPE_CHECKING:
    from pathlib import Path

TORN = b'{"seq":4,"ts":"2026-01-01T00:00:00.000000+00:00","v":"0.1.0","key":null,"da'

# Names of a standalone history file at and near the 255-byte limit, in one-
# and two-byte characters ("é" is two bytes in UTF-8).
LONG_FILE_NAMES = {
    "250-bytes": "x" * 244 + ".jsonl",
    "255-bytes": "x" * 249 + ".jsonl",
    "250-bytes-multibyte": "é" * 122 + ".jsonl",
    "255-bytes-multibyte": "é" * 124 + "x.jsonl",
}


def name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def every_name_fits(root: Path) -> None:
    for path in root.rglob("*"):
        assert name_bytes(path.name) <= NAME_MAX, path


def tear(path: Path) -> tuple[bytes, range]:
    """Append the start of a record without its newline, as a writer killed mid-write leaves."""
    before = path.read_bytes()
    with path.open("ab") as file:
        file.write(TORN)
    return before + TORN, range(len(before), len(before) + len(TORN))


def quarantine_beside(path: Path) -> Path:
    """The one directory beside the history ``path``: its quarantine."""
    (directory,) = (p for p in path.parent.iterdir() if p.is_dir())
    return directory


def test_the_longest_store_history_name_is_accepted() -> None:
    assert check_history_name("h" * MAX_NAME_LENGTH) == "h" * MAX_NAME_LENGTH


def _torn_store_history(tmp_path: Path, length: int) -> tuple[str, Path, Path, bytes, range]:
    """A store whose history of a ``length``-character name has a torn tail (see ``tear``)."""
    name = "h" * length
    root = tmp_path / "store"
    with SnapshotStore(root) as store:
        store.history(name).extend([{"i": i} for i in range(3)])
    log = root / "history" / f"{name}.jsonl"
    damaged, region = tear(log)
    return name, root, log, damaged, region


@pytest.mark.parametrize("length", [192, MAX_NAME_LENGTH])
def test_a_store_history_with_a_long_name_is_written_again_after_a_torn_tail(
    tmp_path: Path, length: int
) -> None:
    name, root, log, damaged, region = _torn_store_history(tmp_path, length)

    with SnapshotStore(root) as store:
        record = store.history(name).append({"after": "the tear"})
        assert record.seq == 4
        assert store.verify().ok
    assert [line["data"] for line in check_log(log)][-1] == {"after": "the tear"}
    check_quarantine(root / "quarantine", log, damaged, region)
    every_name_fits(tmp_path)


@pytest.mark.parametrize("length", [192, MAX_NAME_LENGTH])
def test_a_store_history_with_a_long_name_is_repaired(tmp_path: Path, length: int) -> None:
    name, root, log, damaged, region = _torn_store_history(tmp_path, length)

    with SnapshotStore(root) as store:
        assert not store.verify().ok
        report = store.repair()
        assert report.actions
        assert store.verify().ok
        assert store.history(name).append({"after": "repair"}).seq == 4
    check_log(log)
    check_quarantine(root / "quarantine", log, damaged, region)
    every_name_fits(tmp_path)


@pytest.mark.parametrize("name", LONG_FILE_NAMES.values(), ids=LONG_FILE_NAMES.keys())
def test_a_standalone_history_with_a_long_name_is_written_again_after_a_torn_tail(
    tmp_path: Path, name: str
) -> None:
    log = tmp_path / name
    with IterationHistory(log) as history:
        history.extend([{"i": i} for i in range(3)])
    damaged, region = tear(log)

    with IterationHistory(log) as history:
        assert history.append({"after": "the tear"}).seq == 4
        assert history.verify().ok
    assert [line["data"] for line in check_log(log)][-1] == {"after": "the tear"}
    check_quarantine(quarantine_beside(log), log, damaged, region)
    every_name_fits(tmp_path)


@pytest.mark.parametrize("name", LONG_FILE_NAMES.values(), ids=LONG_FILE_NAMES.keys())
def test_a_standalone_history_with_a_long_name_is_repaired(tmp_path: Path, name: str) -> None:
    log = tmp_path / name
    with IterationHistory(log) as history:
        history.extend([{"i": i} for i in range(3)])
        damaged, region = tear(log)
        assert not history.verify().ok
        assert history.repair().actions
        assert history.verify().ok
        assert history.append({"after": "repair"}).seq == 4
    check_log(log)
    check_quarantine(quarantine_beside(log), log, damaged, region)
    every_name_fits(tmp_path)


def test_long_logs_that_differ_only_at_the_end_keep_apart(tmp_path: Path) -> None:
    # Shortened names keep a hash of the whole name: two logs never share a
    # lock (which also holds each log's synced mark) or a quarantine.
    a, b = tmp_path / ("x" * 248 + "a.jsonl"), tmp_path / ("x" * 248 + "b.jsonl")
    for log in (a, b):
        with IterationHistory(log) as history:
            history.extend([{"log": log.name[-7]}] * 2)
        tear(log)
    with IterationHistory(a) as first, IterationHistory(b) as second:
        assert first.append({"n": 1}).seq == 3
        assert second.append({"n": 2}).seq == 3
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 6  # two logs, two locks, two quarantines
    assert len({p for p in tmp_path.iterdir() if p.is_dir()}) == 2
    every_name_fits(tmp_path)


def test_names_that_fit_are_unchanged(tmp_path: Path) -> None:
    # Stores and histories made before names were ever shortened keep theirs.
    log = tmp_path / "train.jsonl"
    with IterationHistory(log) as history:
        history.append({"i": 1})
        tear(log)
        history.append({"i": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "train.jsonl",
        "train.jsonl.lock",
        "train.jsonl.quarantine",
    ]
    assert all(
        p.name.startswith("train.jsonl.") for p in (tmp_path / "train.jsonl.quarantine").iterdir()
    )


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("a", ""),
        ("x" * 255, ""),
        ("x" * 256, ""),
        ("x" * 300, ".lock"),
        ("é" * 200, ".quarantine"),
        ("€" * 100 + "x", ".json"),
        ("😀" * 80, ".tmp"),
    ],
)
def test_a_fitted_name_fits_and_keeps_its_suffix(name: str, suffix: str) -> None:
    fitted = fit_name(name, suffix)
    assert name_bytes(fitted) <= NAME_MAX
    assert fitted.endswith(suffix)
    # Cut at a character boundary: what is kept is a prefix of the name.
    assert fitted.encode("utf-8").decode("utf-8") == fitted
    if name_bytes(name + suffix) <= NAME_MAX:
        assert fitted == name + suffix
    else:
        head = fitted[: -len(suffix)].rpartition("~")[0] if suffix else fitted.rpartition("~")[0]
        assert name.startswith(head)
        assert len(head) > 0


def test_fitted_names_of_different_long_names_differ() -> None:
    names = ["x" * 300 + tail for tail in ("a", "b", "ab", "")]
    assert len({fit_name(name, ".lock") for name in names}) == len(names)
    assert fit_name(names[0], ".lock") == fit_name(names[0], ".lock")


@pytest.mark.skipif(sys.platform == "win32", reason="Windows leaves temp files to people")
def test_a_temp_file_of_a_long_target_is_recognised_and_cleaned_up(tmp_path: Path) -> None:
    target = "t" * NAME_MAX
    fd, temp = FileSystem().open_temp(tmp_path, target)
    assert name_bytes(temp.name) <= NAME_MAX
    assert is_temp_name(temp.name)
    assert stale_temps(tmp_path) == []  # its writer holds it
    os.close(fd)  # the writer dies: its lock goes with the descriptor
    assert stale_temps(tmp_path) == [temp]
    assert FileSystem().remove_stale_temps(tmp_path) == [temp]
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_of_a_file_with_a_long_name(tmp_path: Path) -> None:
    target = tmp_path / ("é" * 127 + "x")
    fs = FileSystem()
    fs.write_atomic(target, b"one")
    fs.write_atomic(target, b"two")
    assert fs.create_exclusive(tmp_path / ("y" * NAME_MAX), b"three")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, "y" * NAME_MAX])
    assert target.read_bytes() == b"two"
