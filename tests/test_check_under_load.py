"""verify and repair beside live writers: one consistent view, never a false alarm.

Each test lets another handle commit at the worst moment of a check (between
the scan of the snapshot log and that of the pin log, or while the
checkpoint files are read), deterministically, through a hook on the checker.
The many-writers soak (tests/test_multiwriter_soak.py) does the same at
random moments with real processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore._log import seam as io_module
from snapstore._log.lock import WriterLock
from snapstore.backends.local.layout import BASELINE_LOG, MARKER, SNAPSHOT_LOG
from snapstore.backends.local.repair import check_store, indices, salvage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import ModuleType


def snap(run: str, stage: str = "train", group: int = 0) -> NormalizedSnapshot:
    return NormalizedSnapshot(f"run-{run}", stage, metrics={"auc": 0.5}, config={"group": group})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SnapshotStore]:
    with SnapshotStore(tmp_path / "store", checkpoint_every=1) as opened:
        first = opened.save_snapshot(snap("a"))
        opened.get_or_establish_baseline(first)
        opened.checkpoint()
        yield opened


def interlope_after(
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    name: str,
    when: Callable[[tuple[Any, ...]], bool],
    act: Callable[[], object],
) -> list[object]:
    """Run ``act`` once, right after the checker's ``name`` returns for arguments ``when`` picks."""
    original = getattr(module, name)
    done: list[object] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not done and when(args):
            done.append(act())
        return result

    monkeypatch.setattr(module, name, hooked)
    return done


def after_snapshot_scan(args: tuple[Any, ...]) -> bool:
    path: Path = args[1]
    return path.name == SNAPSHOT_LOG


def pin_a_new_group(root: Path) -> Callable[[], NormalizedSnapshot]:
    def act() -> NormalizedSnapshot:
        with SnapshotStore(root) as other:
            saved = other.save_snapshot(snap("b", group=1))
            return other.get_or_establish_baseline(saved)

    return act


def test_verify_is_clean_when_a_pin_is_committed_during_the_check(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = interlope_after(
        monkeypatch, salvage, "_scan_log", after_snapshot_scan, pin_a_new_group(store.root)
    )
    report = store.verify()
    assert done, "the hook never ran"
    assert report.ok, [str(f) for f in report.findings]


def test_repair_keeps_a_pin_committed_during_the_repair(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A writer tries to pin while repair is between its scans. Repair decides
    # under the writer lock, so the pin waits for it, and is then kept.
    pins: list[NormalizedSnapshot] = []
    writer = threading.Thread(target=lambda: pins.append(pin_a_new_group(store.root)()))
    started = interlope_after(monkeypatch, salvage, "_scan_log", after_snapshot_scan, writer.start)
    report = store.repair()
    writer.join(60)
    assert started, "the hook never ran"
    assert report.ok, [str(f) for f in report.findings]
    assert not any("moved" in action for action in report.actions), report.actions
    (pinned,) = pins
    store.refresh()
    assert store.baseline(pinned.stage, pinned.comparison_key or "") == pinned
    assert store.verify().ok
    # The pin's seq is never handed to another group.
    assert store.get_or_establish_baseline(snap("c", group=2)).run_id == "run-c"
    assert store.baseline(pinned.stage, pinned.comparison_key or "") == pinned


def test_repair_never_judges_a_pin_against_a_scan_older_than_the_pin(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The widest window, every time: right after repair scanned the snapshot
    # log, a writer saves a snapshot and pins it, and repair takes any lock
    # only once that writer is done (or stuck behind a lock repair holds).
    # Judged against the earlier scan, the acknowledged pin would name a
    # snapshot that is "not stored": quarantined as damage, and its seq
    # handed to the next pin.
    pins: list[NormalizedSnapshot] = []
    writer = threading.Thread(target=lambda: pins.append(pin_a_new_group(store.root)()))

    class AfterTheWriter(WriterLock):
        def acquire(self) -> None:
            if writer.ident is not None:
                writer.join(30)
            super().acquire()

    monkeypatch.setattr(salvage, "WriterLock", AfterTheWriter)
    started = interlope_after(monkeypatch, salvage, "_scan_log", after_snapshot_scan, writer.start)
    report = store.repair()
    writer.join(60)
    assert started, "the hook never ran"
    assert report.ok, [str(f) for f in report.findings]
    assert not any("moved" in action for action in report.actions), report.actions
    (pinned,) = pins
    store.refresh()
    assert store.baseline(pinned.stage, pinned.comparison_key or "") == pinned
    assert store.get_or_establish_baseline(snap("c", group=2)).run_id == "run-c"
    lines = (store.root / BASELINE_LOG).read_bytes().splitlines()
    pin_seqs = [json.loads(line)["seq"] for line in lines]
    assert pin_seqs == [1, 2, 3], "a pin's seq was used twice"
    assert store.verify().ok


def save_and_checkpoint(root: Path) -> Callable[[], object]:
    def act() -> object:
        with SnapshotStore(root) as other:
            other.save_snapshot(snap("d"))
            other.checkpoint()
        return True

    return act


def test_verify_is_clean_when_a_checkpoint_is_written_during_the_check(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = interlope_after(
        monkeypatch, salvage, "_scan_log", after_snapshot_scan, save_and_checkpoint(store.root)
    )
    report = store.verify()
    assert done, "the hook never ran"
    assert report.ok, [str(f) for f in report.findings]


def test_verify_is_clean_when_a_checkpoint_replaces_the_one_being_read(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between reading index.parquet and snapshot_index.json, another handle
    # rewrites both: the pair read is not one pair, and must not look damaged.
    done = interlope_after(
        monkeypatch, indices, "load_checkpoint", lambda _: True, save_and_checkpoint(store.root)
    )
    report = store.verify()
    assert done, "the hook never ran"
    assert report.ok, [str(f) for f in report.findings]


@pytest.mark.parametrize("then", ["close", "checkpoint"])
def test_a_handle_open_during_a_repair_writes_no_checkpoint_of_the_replaced_log(
    tmp_path: Path, then: str
) -> None:
    # repair replaces a damaged log with one of its valid records. A handle
    # that read the old file still holds its index: a checkpoint of it (at
    # close, or asked for) would describe offsets of a file that is gone, and
    # every later verify would report the checkpoint.
    root = tmp_path / "store"
    handle = SnapshotStore(root, checkpoint_every=1000)
    try:
        for run in "abc":
            handle.save_snapshot(snap(run))
        log = root / SNAPSHOT_LOG
        data = bytearray(log.read_bytes())
        data[data.index(b"\n") + 10] ^= 1  # damage the second record
        log.write_bytes(bytes(data))
        repaired = check_store(root, repair=True)
        assert any("rewrote" in action for action in repaired.actions), repaired.actions
        if then == "checkpoint":
            handle.checkpoint()
    finally:
        handle.close()
    report = check_store(root)
    assert report.ok, [str(f) for f in report.findings]
    with SnapshotStore(root) as reopened:
        assert [s.run_id for s in reopened.snapshots()] == ["run-a", "run-c"]


def test_a_temp_file_in_creation_is_neither_reported_nor_removed(
    store: SnapshotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkpoint's temp file exists, not yet locked by its writer, for an
    # instant after its creation: a check in that instant must not take it
    # for one its writer abandoned. The writer is held there.
    real = pytest.importorskip("fcntl")  # temp files are locked only where flock is
    held, resume = threading.Event(), threading.Event()

    class HoldTheWriter:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def flock(self, fd: int, operation: int) -> None:
            if threading.current_thread() is writer and not held.is_set():
                held.set()
                resume.wait(60)
            real.flock(fd, operation)

    monkeypatch.setattr(io_module, "fcntl", HoldTheWriter())
    writer = threading.Thread(target=store.checkpoint)
    writer.start()
    try:
        assert held.wait(60), "the writer never created its temp file"
        (temp,) = store.root.glob(".index.parquet.*.tmp")
        found, repaired = store.verify(), store.repair()
    finally:
        resume.set()
        writer.join(60)
    assert found.ok, [str(f) for f in found.findings]
    assert not repaired.actions, repaired.actions
    assert not temp.exists()  # published by its writer, which never lost it
    assert store.verify().ok


@pytest.mark.parametrize(
    "damage",
    [b"", b"garbage", b"\xff\xfe\x00", b'{"format": 99}', b'{"format": true}', b"[1]"],
    ids=repr,
)
@pytest.mark.parametrize("command", ["verify", "repair", "repair --dry-run"])
def test_a_damaged_marker_is_reported_and_left_alone(
    tmp_path: Path, damage: bytes, command: str
) -> None:
    root = tmp_path / "store"
    with SnapshotStore(root) as store:
        store.save_snapshot(snap("a"))
    (root / MARKER).write_bytes(damage)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    report = check_store(root, repair=command != "verify", dry_run=command.endswith("dry-run"))
    assert not report.ok
    assert any(MARKER in str(f) for f in report.findings), report.findings
    result = subprocess.run(
        [sys.executable, "-m", "snapstore", *command.split(), str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert MARKER in result.stdout + result.stderr
    # And what to do about it.
    assert '{"format": 1}' in result.stdout, result.stdout
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
