"""SnapshotStore verify and repair: logs, pins, histories, temp files and derived indices."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from damage import (
    DAMAGE_CASES,
    Line,
    NoSyncFileSystem,
    check_quarantine,
    check_survivors,
    cut_plan,
    flip,
    flip_plan,
    lines_of,
    record_line,
    tree_bytes,
)
from helpers import check_line
from snapstore import CheckReport, NormalizedSnapshot, SnapshotStore
from snapstore._log.seam import _HOST_TAG, _IN_CREATION, installed
from snapstore.backends.local.repair import check_path

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from snapstore._report import CheckReport

LOG = "snapshots.jsonl"
PINS = "baselines.jsonl"
PARQUET = "index.parquet"
DOCUMENT = "snapshot_index.json"
HISTORY = "history/train.jsonl"
DERIVED = {PARQUET, DOCUMENT}
LOGS = (LOG, PINS, HISTORY)
QUARANTINE = "quarantine"


def build_store(root: Path, runs: int = 4) -> None:
    """Three stages a run, two comparison groups a stage, two baseline pins, a history,
    and a checkpoint."""
    with SnapshotStore(root) as store:
        saved = [
            store.save_snapshot(
                NormalizedSnapshot(
                    run_id=f"run-{i // 3}",
                    stage=("prepare", "train", "eval")[i % 3],
                    metrics={"loss": 1 / (i + 1)},
                    config={"lr": 0.1 if i % 2 else 0.01},
                    # Looks like the start of a record to a naive salvage.
                    data={"step": i, "inner": {"seq": i}},
                )
            )
            for i in range(runs * 3)
        ]
        store.get_or_establish_baseline(saved[1])
        store.set_baseline(saved[4])
        history = store.history("train")
        for step in range(6):
            history.append({"step": step}, key=f"step-{step}")
        store.checkpoint()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "store"
    build_store(root)
    assert check_path(root).ok
    return root


@pytest.fixture(scope="module")
def saved(pristine: Path) -> dict[int, NormalizedSnapshot]:
    """The pristine store's snapshots by seq."""
    with SnapshotStore(pristine) as store:
        return {snap.snapshot_seq or 0: snap for snap in store.snapshots()}


@pytest.fixture
def no_sync() -> Iterator[None]:
    with installed(NoSyncFileSystem()):
        yield


def copy_store(pristine: Path, root: Path, name: str, damage: dict[str, bytes]) -> Path:
    """A copy of the pristine store with the files named in ``damage`` replaced."""
    target = root / name
    shutil.copytree(pristine, target)
    for relative, content in damage.items():
        (target / relative).write_bytes(content)
    return target


class Scratch:
    """One copy of the pristine store, put back before each case of a loop.

    Cheaper than a fresh copy per case: only the files repair may change are
    rewritten, and the quarantine is emptied.
    """

    def __init__(self, pristine: Path, root: Path) -> None:
        self.root = root / "scratch"
        shutil.copytree(pristine, self.root)
        self._files = {name: (pristine / name).read_bytes() for name in (*DERIVED, *LOGS)}

    def damaged(self, damage: dict[str, bytes]) -> Path:
        shutil.rmtree(self.root / QUARANTINE, ignore_errors=True)
        for name, content in self._files.items():
            (self.root / name).write_bytes(damage.get(name, content))
        return self.root


def verify_and_repair(root: Path) -> tuple[CheckReport, CheckReport]:
    """verify, repair, and check that the result verifies clean."""
    found = check_path(root)
    repaired = check_path(root, repair=True)
    after = check_path(root)
    assert after.ok, after.findings
    return found, repaired


def where(report: CheckReport) -> set[tuple[str, int | None, int | None]]:
    return {(f.path.name, f.offset, f.line) for f in report.findings}


def pins_kept(pristine: Path, seqs: set[int]) -> list[Line]:
    """The pin lines that must survive: those naming a snapshot that survived."""
    pins = lines_of((pristine / PINS).read_bytes())
    return [pin for pin in pins if check_line(pin.raw)["data"]["snapshot_seq"] in seqs]


def check_store_after(
    pristine: Path, root: Path, kept: list[Line], saved: dict[int, NormalizedSnapshot]
) -> None:
    """The repaired log holds ``kept`` byte for byte, pins naming them, and a store opens on it."""
    records = check_survivors(root / LOG, kept)
    seqs = {record["seq"] for record in records}
    check_survivors(root / PINS, pins_kept(pristine, seqs))
    with SnapshotStore(root) as after:
        assert len(after) == len(records)
        for line in kept:
            seq = check_line(line.raw)["seq"]
            assert after.get_by_seq(seq) == saved[seq]


def store_answers(root: Path) -> dict[str, Any]:
    """Everything a store answers about its snapshots, groups and baselines."""
    with SnapshotStore(root) as store:
        snaps = list(store.snapshots())
        keys = sorted({(s.run_id, s.stage) for s in snaps})
        groups = sorted({(s.stage, s.comparison_key or "") for s in snaps})
        return {
            "snapshots": snaps,
            "count": len(store),
            "by_seq": [store.get_by_seq(s.snapshot_seq or 0) for s in snaps],
            "latest": [store.get(*key) for key in keys],
            "versions": [store.versions(*key) for key in keys],
            "previous": [store.find_previous_comparable(s) for s in snaps],
            "baselines": [store.baseline(*group) for group in groups],
        }


def check_answers_match_the_log(root: Path, tmp_path: Path) -> None:
    """A store opened on its derived files answers as one rebuilt from the log alone."""
    log_only = tmp_path / f"{root.name}-log-only"
    shutil.copytree(root, log_only)
    for name in DERIVED:
        (log_only / name).unlink()
    assert store_answers(root) == store_answers(log_only)


# -- damaged logs ------------------------------------------------------------------


@pytest.mark.usefixtures("no_sync")
def test_every_bit_flip_of_the_snapshot_log_is_found_and_repaired(
    pristine: Path, saved: dict[int, NormalizedSnapshot], tmp_path: Path
) -> None:
    scratch = Scratch(pristine, tmp_path)
    data = (pristine / LOG).read_bytes()
    lines = lines_of(data)
    for offset, bit in flip_plan(data, seed=3):
        context = f"bit {bit} of byte {offset}"
        damaged = flip(data, offset, bit)
        root = scratch.damaged({LOG: damaged})
        found, _ = verify_and_repair(root)
        number, hit = next((n, x) for n, x in enumerate(lines, 1) if x.overlaps(offset, offset + 1))
        assert (LOG, hit.offset, number) in where(found), context
        check_store_after(pristine, root, [x for x in lines if x is not hit], saved)
        check_quarantine(root / QUARANTINE, root / LOG, damaged, range(offset, offset + 1))


@pytest.mark.usefixtures("no_sync")
def test_every_bit_flip_of_a_store_history_is_found_and_repaired(
    pristine: Path, tmp_path: Path
) -> None:
    scratch = Scratch(pristine, tmp_path)
    data = (pristine / HISTORY).read_bytes()
    lines = lines_of(data)
    for offset, bit in flip_plan(data, seed=4, count=DAMAGE_CASES // 3):
        damaged = flip(data, offset, bit)
        root = scratch.damaged({HISTORY: damaged})
        found, _ = verify_and_repair(root)
        assert any(f.path == root / HISTORY for f in found.findings), (offset, bit)
        check_survivors(root / HISTORY, [x for x in lines if not x.overlaps(offset, offset + 1)])
        check_quarantine(root / QUARANTINE, root / HISTORY, damaged, range(offset, offset + 1))
        assert (root / LOG).read_bytes() == (pristine / LOG).read_bytes()


@pytest.mark.usefixtures("no_sync")
def test_a_cut_snapshot_log_keeps_every_complete_record(
    pristine: Path, saved: dict[int, NormalizedSnapshot], tmp_path: Path
) -> None:
    scratch = Scratch(pristine, tmp_path)
    data = (pristine / LOG).read_bytes()
    lines = lines_of(data)
    boundaries = {line.offset for line in lines}
    for size in cut_plan(data, seed=5, tail_lines=2, sample=DAMAGE_CASES // 10):
        root = scratch.damaged({LOG: data[:size]})
        found, _ = verify_and_repair(root)
        # A record that lost only its newline is whole and checksummed: kept.
        kept = [line for line in lines if line.end <= size + 1]
        # The derived indices still cover the records cut off: a loss is always
        # found. So is a last record that lost only its newline: until repair
        # restores it, readers do not see the record the checkpoint ends at.
        visible = [line for line in lines if line.end <= size]
        flagged = PARQUET in {f.path.name for f in found.findings}
        assert flagged == (visible != lines), size
        if size in boundaries:
            assert LOG not in {f.path.name for f in found.findings}, size
            assert (root / LOG).read_bytes() == data[:size]
        else:
            torn = max(boundary for boundary in boundaries if boundary < size)
            assert (LOG, torn) in {(name, offset) for name, offset, _ in where(found)}, size
            check_quarantine(root / QUARANTINE, root / LOG, data[:size], range(torn, size))
        check_store_after(pristine, root, kept, saved)


def test_a_store_on_a_log_shorter_than_its_checkpoint_answers_from_the_log(
    pristine: Path, tmp_path: Path
) -> None:
    # A log cut between lines (a restored backup, a lost unsynced tail) opens
    # without error; the checkpoint covering more must not be mixed into it.
    data = (pristine / LOG).read_bytes()
    cut = lines_of(data)[8].offset
    root = copy_store(pristine, tmp_path, "store", {LOG: data[:cut]})
    check_answers_match_the_log(root, tmp_path)
    with SnapshotStore(root) as store:
        assert len(store) == 8


# -- damaged derived indices ----------------------------------------------------------


@pytest.mark.usefixtures("no_sync")
def test_every_bit_flip_of_the_parquet_index_is_found_and_rebuilt(
    pristine: Path, tmp_path: Path
) -> None:
    scratch = Scratch(pristine, tmp_path)
    data = (pristine / PARQUET).read_bytes()
    logs = {name: (pristine / name).read_bytes() for name in LOGS}
    for offset, bit in flip_plan(data, seed=6):
        root = scratch.damaged({PARQUET: flip(data, offset, bit)})
        with SnapshotStore(root) as store:  # an unusable checkpoint means a replay
            found = store.verify()
            assert {f.path.name for f in found.findings} & DERIVED, (offset, bit)
            store.repair()
            assert store.verify().ok
        # A cache is rebuilt, never quarantined; the logs are not touched.
        assert not (root / QUARANTINE).exists()
        assert {name: (root / name).read_bytes() for name in logs} == logs


@pytest.mark.usefixtures("no_sync")
def test_a_cut_parquet_index_is_found_and_rebuilt(pristine: Path, tmp_path: Path) -> None:
    scratch = Scratch(pristine, tmp_path)
    data = (pristine / PARQUET).read_bytes()
    # Every cut loses the closing magic bytes; those near the end also cut the
    # footer (schema, metadata, row groups) short.
    sizes = sorted({*range(len(data) - 64, len(data)), *range(0, len(data), 61)})
    for size in sizes:
        root = scratch.damaged({PARQUET: data[:size]})
        found, _ = verify_and_repair(root)
        assert PARQUET in {f.path.name for f in found.findings}, size
        assert (root / PARQUET).read_bytes() == data


def _other_store(tmp_path: Path) -> Path:
    other = tmp_path / "other"
    build_store(other, runs=3)
    return other


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "latest": lambda doc: doc["latest"].update({"run-0:train": 11}),
    "groups": lambda doc: doc["groups"].pop(next(iter(doc["groups"]))),
    "parquet-crc": lambda doc: doc.update(parquet_crc32="00000000"),
    "position": lambda doc: doc["position"].update(end=doc["position"]["end"] - 1),
    "not-an-index": lambda doc: doc.clear(),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_index_document_is_found_and_rebuilt(
    pristine: Path, tmp_path: Path, tamper: Callable[[dict[str, Any]], None]
) -> None:
    document = json.loads((pristine / DOCUMENT).read_bytes())
    tamper(document)
    root = copy_store(pristine, tmp_path, "store", {DOCUMENT: json.dumps(document).encode()})
    found, repaired = verify_and_repair(root)
    assert {f.path.name for f in found.findings} & DERIVED
    assert any("rebuilt" in action for action in repaired.actions)
    assert tree_bytes(root)[DOCUMENT] == (pristine / DOCUMENT).read_bytes()
    check_answers_match_the_log(root, tmp_path)


@pytest.mark.parametrize("taken", [[PARQUET], [PARQUET, DOCUMENT]])
def test_indices_of_another_store_are_found_and_rebuilt(
    pristine: Path, tmp_path: Path, taken: list[str]
) -> None:
    other = _other_store(tmp_path)
    root = copy_store(
        pristine, tmp_path, "store", {name: (other / name).read_bytes() for name in taken}
    )
    found, _ = verify_and_repair(root)
    assert PARQUET in {f.path.name for f in found.findings}
    check_answers_match_the_log(root, tmp_path)


# -- pins and temp files ---------------------------------------------------------------


def _pin_line(pristine: Path, **changes: Any) -> bytes:
    last = check_line(lines_of((pristine / PINS).read_bytes())[-1].raw)
    return record_line(last["seq"] + 1, {**last["data"], **changes})


@pytest.mark.parametrize(
    "changes",
    [{"snapshot_seq": 99}, {"snapshot_seq": 1}, {"snapshot_seq": "2"}],
    ids=["missing-seq", "seq-of-another-group", "not-a-seq"],
)
def test_a_bad_baseline_pin_is_found_and_moved_aside(
    pristine: Path, tmp_path: Path, changes: dict[str, Any]
) -> None:
    pins = (pristine / PINS).read_bytes()
    bad = _pin_line(pristine, **changes)
    root = copy_store(pristine, tmp_path, "store", {PINS: pins + bad})
    found, _ = verify_and_repair(root)
    number = len(lines_of(pins)) + 1
    assert where(found) == {(PINS, len(pins), number)}
    assert "pin" in found.findings[0].message
    assert (root / PINS).read_bytes() == pins
    check_quarantine(root / QUARANTINE, root / PINS, pins + bad, range(len(pins), len(pins + bad)))
    check_answers_match_the_log(root, tmp_path)


def _temp_name(target: str, pid: int, host: str = _HOST_TAG) -> str:
    """A temp file name as the library's atomic writes make them (see _io._TEMP_NAME)."""
    return f".{target}.{host}.{pid}.x1y2z3.tmp"


def _abandoned(path: Path) -> Path:
    """Write ``path`` as a temp file its writer left a minute ago, published mode and unlocked."""
    path.write_bytes(b"partial")
    _age(path)
    return path


def _age(path: Path) -> None:
    then = time.time() - 60
    os.utime(path, (then, then))


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        check=True,
        text=True,
    )
    return int(child.stdout)


@contextlib.contextmanager
def held_by_a_live_writer(path: Path) -> Iterator[int]:
    """Create ``path`` in another process that holds its lock, as a writer at work does."""
    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "os.write(fd, b'partial')\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.fchmod(fd, 0o644)\n"  # locked: out of creation, as open_temp marks it
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        yield child.pid
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_stale_temp_files_are_found_and_removed_but_live_ones_are_left(
    pristine: Path, tmp_path: Path, dead_pid: int
) -> None:
    root = copy_store(pristine, tmp_path, "store", {})
    stale = [
        root / _temp_name(PARQUET, dead_pid),
        root / "history" / _temp_name("train.jsonl", dead_pid),
    ]
    (root / QUARANTINE).mkdir()
    stale.append(root / QUARANTINE / _temp_name("snapshots.jsonl.0.1.bin", dead_pid))
    for path in stale:
        _abandoned(path)
    # A live writer's work in progress (it holds the file's lock), and one of
    # another host (whose locks may not show here): neither may be reported or
    # removed.
    other_host = _abandoned(root / _temp_name(PARQUET, dead_pid, "0badf00d"))
    with held_by_a_live_writer(root / _temp_name(DOCUMENT, os.getpid() + 1)) as writer:
        _age(root / _temp_name(DOCUMENT, os.getpid() + 1))  # its lock keeps it, not its age
        alive = [root / _temp_name(DOCUMENT, os.getpid() + 1), other_host]
        assert writer > 0
        found, repaired = verify_and_repair(root)
        assert {(f.path, f.offset) for f in found.findings} == {(path, None) for path in stale}
        assert sum("removed stale temp file" in action for action in repaired.actions) == len(stale)
        assert [path for path in stale + alive if path.exists()] == alive


def test_a_live_writers_temp_named_with_a_pid_free_here_is_left(
    pristine: Path, tmp_path: Path, dead_pid: int
) -> None:
    # Two containers with one hostname: a writer in the other PID namespace
    # names its temp file with a pid that no process here has. Opening the
    # store, verify and repair must all leave its work in progress alone.
    root = copy_store(pristine, tmp_path, "store", {})
    temp = root / _temp_name(PARQUET, dead_pid)
    with held_by_a_live_writer(temp):
        _age(temp)  # its lock keeps it, not its age
        SnapshotStore(root).close()
        found, repaired = verify_and_repair(root)
        assert temp.exists()
        assert found.ok, found.findings
        assert not any("temp" in action for action in repaired.actions)
    # Its writer gone (the lock dropped with it), the file is abandoned.
    SnapshotStore(root).close()
    assert not temp.exists()


def test_a_temp_file_its_writer_never_locked_is_stale_once_old(
    pristine: Path, tmp_path: Path, dead_pid: int
) -> None:
    # Its writer died between creating it and locking it: nobody ever will
    # lock it. Left alone while young (its writer may be about to), then found.
    root = copy_store(pristine, tmp_path, "store", {})
    young, old = root / _temp_name(PARQUET, dead_pid), root / _temp_name(DOCUMENT, dead_pid)
    for path in (young, old):
        path.touch(mode=_IN_CREATION)
        path.chmod(_IN_CREATION)  # whatever the umask
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))
    found, repaired = verify_and_repair(root)
    assert [f.path for f in found.findings] == [old]
    assert repaired.actions == [f"removed stale temp file {old}"]
    assert young.exists()
    assert not old.exists()


def test_dry_run_changes_nothing(pristine: Path, tmp_path: Path, dead_pid: int) -> None:
    log = (pristine / LOG).read_bytes()
    history = (pristine / HISTORY).read_bytes()
    root = copy_store(
        pristine,
        tmp_path,
        "store",
        {
            LOG: flip(log, len(log) // 2, 2),
            HISTORY: history + b'{"seq":7,"ts":',
            PINS: (pristine / PINS).read_bytes() + _pin_line(pristine, snapshot_seq=99),
            DOCUMENT: b"{}",
        },
    )
    _abandoned(root / _temp_name(PARQUET, dead_pid))
    before = tree_bytes(root)
    report = check_path(root, repair=True, dry_run=True)
    assert tree_bytes(root) == before
    assert not (root / QUARANTINE).exists()
    # It says what it would do: one move per damaged region, the temp, the rebuild.
    moves = [action for action in report.actions if action.startswith("would move")]
    assert len(moves) == 3
    assert any("would remove stale temp file" in action for action in report.actions)
    assert any("would rebuild" in action for action in report.actions)


def test_store_repair_dry_run_through_an_open_store(pristine: Path, tmp_path: Path) -> None:
    log = (pristine / LOG).read_bytes()
    root = copy_store(pristine, tmp_path, "store", {LOG: log + log[:40], DOCUMENT: b"[]"})
    with SnapshotStore(root) as store:  # a torn tail does not keep a store from opening
        before = tree_bytes(root)
        report = store.repair(dry_run=True)
        assert report.actions
        assert tree_bytes(root) == before
        found = store.verify()
        assert where(found) >= {(LOG, len(log), len(lines_of(log)) + 1)}
        store.repair()
        assert store.verify().ok
        assert len(store) == len(lines_of(log))
    assert (root / LOG).read_bytes() == log
    check_answers_match_the_log(root, tmp_path)


def test_repair_of_a_clean_store_does_nothing(pristine: Path, tmp_path: Path) -> None:
    root = copy_store(pristine, tmp_path, "store", {})
    assert check_path(root, repair=True, dry_run=True).actions == []
    found, repaired = verify_and_repair(root)
    assert found.ok
    assert found.files == 3  # the snapshot log, the pin log, one history
    assert found.records == len(lines_of((pristine / LOG).read_bytes())) + 2 + 6
    assert repaired.actions == []
    assert tree_bytes(root) == tree_bytes(pristine)
