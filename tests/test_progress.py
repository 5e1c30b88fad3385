"""Progress of long work: what a listener is told, what nobody listening costs, the bars."""

from __future__ import annotations

import io
import re
import shutil
import sys
import threading
from typing import TYPE_CHECKING

import pytest
from rich.console import Console

from damage import flip
from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore import _progress as progress
from snapstore._log import checked
from snapstore._progress import TaskProgress, file_task, reporting
from snapstore.backends.local import store as local_store
from snapstore.backends.local.repair import check_path
from snapstore.cli.progress import on_terminal, progress_bar
from store_fixtures import INDEX_FILES

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from snapstore import CheckReport

SNAPSHOTS = 3000
HISTORY = "train"
Call = tuple[str, int, int]


class Cancelled(Exception):
    """What a listener raises to stop the work."""


class Recorder:
    """A listener that keeps every call, and may raise at one of them."""

    def __init__(self, fail: Callable[[str, int, int], bool] | None = None) -> None:
        self.calls: list[Call] = []
        self._fail = fail

    def __call__(self, task: str, done: int, total: int) -> None:
        self.calls.append((task, done, total))
        if self._fail is not None and self._fail(task, done, total):
            raise Cancelled(task)

    def tasks(self) -> list[list[Call]]:
        """The calls, one list a task: a task begins with done == 0 (a label may come back)."""
        found: list[list[Call]] = []
        open_tasks: dict[str, list[Call]] = {}
        for call in self.calls:
            task, done, _ = call
            if done == 0 or task not in open_tasks:
                open_tasks[task] = []
                found.append(open_tasks[task])
            open_tasks[task].append(call)
        return found

    def labels(self) -> list[str]:
        return [calls[0][0] for calls in self.tasks()]


def check_tasks(recorder: Recorder, sizes: dict[str, int]) -> None:
    """Each task: begins at 0, never goes back, ends at its total, which is its file's size."""
    tasks = recorder.tasks()
    assert tasks
    for calls in tasks:
        label, first, total = calls[0]
        assert first == 0, calls[:3]
        dones = [done for _, done, _ in calls]
        assert dones == sorted(dones), label
        assert {t for _, _, t in calls} == {total}, label
        assert dones[-1] == total, label
        if label in sizes:
            assert total == sizes[label], label
        # Throttled: about a thousand calls at most, however many lines.
        assert len(calls) <= 1002


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Logs read 4 KiB at a time, so a test-sized log makes a task of many steps."""
    monkeypatch.setattr(checked, "_READ_CHUNK", 4096)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store: a few thousand snapshots, two pins, a history and a checkpoint."""
    root = tmp_path_factory.mktemp("pristine") / "store"
    with SnapshotStore(root, durability="write") as store:
        for i in range(SNAPSHOTS):
            saved = store.save_snapshot(
                NormalizedSnapshot(
                    run_id=f"run-{i // 3:05d}",
                    stage=("prepare", "train", "eval")[i % 3],
                    metrics={"loss": 1 / (i + 1), "accuracy": 0.9},
                    config={"lr": 0.1 if i % 2 else 0.01},
                )
            )
            if i in {10, 20}:
                store.set_baseline(saved)
        with store.history(HISTORY) as history:
            history.extend({"step": step, "loss": 1 / (step + 1)} for step in range(2000))
        store.checkpoint()
    return root


@pytest.fixture
def store_root(pristine: Path, tmp_path: Path) -> Path:
    return shutil.copytree(pristine, tmp_path / "store")


def logs_of(root: Path) -> dict[str, Path]:
    return {
        "snapshots": root / "snapshots.jsonl",
        "baselines": root / "baselines.jsonl",
        "history": root / "history" / f"{HISTORY}.jsonl",
    }


def checking_sizes(root: Path) -> dict[str, int]:
    return {file_task("checking", path): path.stat().st_size for path in logs_of(root).values()}


def damage_snapshot_log(root: Path) -> None:
    """Flip one bit in the middle of the snapshot log: repair rewrites it."""
    log = logs_of(root)["snapshots"]
    data = log.read_bytes()
    log.write_bytes(flip(data, len(data) // 2, 3))


def snapshot_count(root: Path) -> int:
    with SnapshotStore(root, read_only=True) as store:
        return len(store)


def plain(report: CheckReport, root: Path) -> tuple[list[str], list[str], int, int]:
    """A report with the store's path taken out, to compare reports of two copies."""
    where = str(root)
    return (
        [str(f).replace(where, "ROOT") for f in report.findings],
        # A quarantine copy's name ends in a random token.
        [re.sub(r"\.\d+\.bin$", ".bin", a.replace(where, "ROOT")) for a in report.actions],
        report.records,
        report.files,
    )


# -- verify and repair ---------------------------------------------------------


def test_verify_reports_each_log_from_zero_to_its_size(store_root: Path) -> None:
    with SnapshotStore(store_root) as store:
        quiet = store.verify()
        recorder = Recorder()
        with reporting(recorder):
            told = store.verify()
    assert told.ok
    assert told == quiet
    sizes = checking_sizes(store_root)
    assert sorted(recorder.labels()) == sorted(sizes)
    check_tasks(recorder, sizes)
    # A log of many chunks is told about more than its beginning and end.
    snapshot_task = recorder.tasks()[
        recorder.labels().index(file_task("checking", store_root / "snapshots.jsonl"))
    ]
    assert len(snapshot_task) > 10


def test_nothing_is_called_without_a_listener(
    store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    told: list[Call] = []

    def tell(self: TaskProgress, done: int) -> None:
        told.append((self.task, done, self.total))

    monkeypatch.setattr(TaskProgress, "_tell", tell)
    monkeypatch.setattr(local_store, "BULK_CATCH_UP_BYTES", 0)
    damage_snapshot_log(store_root)
    assert not check_path(store_root).ok
    assert check_path(store_root, repair=True).actions
    for name in INDEX_FILES:
        (store_root / name).unlink(missing_ok=True)
    assert snapshot_count(store_root) == SNAPSHOTS - 1
    assert told == []


def test_repair_reports_its_checks_and_the_rebuilt_index(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_store, "BULK_CATCH_UP_BYTES", 0)
    quiet_root = shutil.copytree(pristine, tmp_path / "quiet")
    told_root = shutil.copytree(pristine, tmp_path / "told")
    for root in (quiet_root, told_root):
        damage_snapshot_log(root)
    quiet = check_path(quiet_root, repair=True)
    sizes = checking_sizes(told_root)
    recorder = Recorder()
    with reporting(recorder):
        told = check_path(told_root, repair=True)
    assert plain(told, told_root) == plain(quiet, quiet_root)
    # The rebuilt index reads the log as repair rewrote it.
    log = logs_of(told_root)["snapshots"]
    sizes[file_task("indexing", log)] = log.stat().st_size
    assert sorted(recorder.labels()) == sorted(sizes)
    check_tasks(recorder, sizes)
    assert check_path(told_root).ok
    assert snapshot_count(told_root) == snapshot_count(quiet_root) == SNAPSHOTS - 1


def test_a_history_checked_alone_is_one_task(store_root: Path) -> None:
    history = logs_of(store_root)["history"]
    recorder = Recorder()
    with reporting(recorder):
        assert check_path(history).ok
    assert recorder.labels() == ["checking history/train.jsonl"]
    check_tasks(recorder, {recorder.labels()[0]: history.stat().st_size})


def test_a_listener_hears_only_its_own_thread(store_root: Path) -> None:
    recorder = Recorder()
    reports: list[CheckReport] = []
    with reporting(recorder):
        worker = threading.Thread(target=lambda: reports.append(check_path(store_root)))
        worker.start()
        worker.join()
    assert reports[0].ok
    assert recorder.calls == []


# -- the index file rebuilt in bulk at open -----------------------------------------


def test_an_open_that_rebuilds_a_lost_index_reports_the_log_read(
    store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_store, "BULK_CATCH_UP_BYTES", 0)
    for name in INDEX_FILES:
        (store_root / name).unlink(missing_ok=True)
    log = logs_of(store_root)["snapshots"]
    recorder = Recorder()
    with reporting(recorder), SnapshotStore(store_root) as store:
        assert len(store) == SNAPSHOTS
    label = file_task("indexing", log)
    assert recorder.labels() == [label]
    check_tasks(recorder, {label: log.stat().st_size})
    # An open with the index in place has nothing long to do.
    again = Recorder()
    with reporting(again), SnapshotStore(store_root) as store:
        assert store.get_by_seq(SNAPSHOTS) is not None
    assert again.calls == []
    assert check_path(store_root).ok


# -- a listener that raises ----------------------------------------------------------


def test_a_listener_that_raises_stops_verify_and_changes_nothing(store_root: Path) -> None:
    before = {path: path.read_bytes() for path in store_root.rglob("*") if path.is_file()}
    with SnapshotStore(store_root) as store:
        with reporting(Recorder(fail=lambda _, done, __: done > 0)), pytest.raises(Cancelled):
            store.verify()
        assert store.verify().ok
    after = {path: path.read_bytes() for path in store_root.rglob("*") if path.is_file()}
    assert {path: data for path, data in after.items() if path.name != "index.sqlite-shm"} == {
        path: data for path, data in before.items() if path.name != "index.sqlite-shm"
    }


@pytest.mark.parametrize(
    ("task", "log"),
    [
        ("checking", "snapshots"),  # before anything changed
        ("checking", "baselines"),  # the snapshot log rewritten, its indices stale
        ("indexing", "snapshots"),  # the indices being rebuilt
        ("checking", "history"),  # the store done, its histories not
    ],
)
def test_a_repair_cancelled_anywhere_is_finished_by_the_next(
    store_root: Path, monkeypatch: pytest.MonkeyPatch, task: str, log: str
) -> None:
    monkeypatch.setattr(local_store, "BULK_CATCH_UP_BYTES", 0)
    damage_snapshot_log(store_root)
    label = file_task(task, logs_of(store_root)[log])

    def midway(told: str, done: int, total: int) -> bool:
        return told == label and done >= total // 2

    with reporting(Recorder(fail=midway)), pytest.raises(Cancelled):
        check_path(store_root, repair=True)
    check_path(store_root, repair=True)
    assert check_path(store_root).ok
    assert snapshot_count(store_root) == SNAPSHOTS - 1


def test_an_open_whose_index_rebuild_is_cancelled_leaves_the_next_open_to_finish(
    store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_store, "BULK_CATCH_UP_BYTES", 0)
    for name in INDEX_FILES:
        (store_root / name).unlink(missing_ok=True)
    with reporting(Recorder(fail=lambda _, done, __: done > 0)), pytest.raises(Cancelled):
        SnapshotStore(store_root)
    recorder = Recorder()
    with reporting(recorder), SnapshotStore(store_root) as store:
        assert len(store) == SNAPSHOTS
    assert recorder.labels() == [file_task("indexing", logs_of(store_root)["snapshots"])]
    assert check_path(store_root).ok


# -- TaskProgress --------------------------------------------------------------------


def test_a_task_tells_its_beginning_steps_and_end() -> None:
    recorder = Recorder()
    with reporting(recorder), TaskProgress("counting", 10_000_000) as task:
        for done in range(0, 10_000_000, 997):
            task.advance_to(done)
    dones = [done for _, done, _ in recorder.calls]
    assert dones[0] == 0
    assert dones[-1] == 10_000_000
    assert dones == sorted(set(dones))
    assert 900 <= len(dones) <= 1002
    assert {(task, total) for task, _, total in recorder.calls} == {("counting", 10_000_000)}


def test_a_task_never_goes_back_nor_past_its_total() -> None:
    recorder = Recorder()
    with reporting(recorder), TaskProgress("odd", 10) as task:
        for done in (5, 3, 5, 12, 7):
            task.advance_to(done)
    assert recorder.calls == [("odd", 0, 10), ("odd", 5, 10), ("odd", 10, 10)]


def test_an_empty_task_is_one_call() -> None:
    recorder = Recorder()
    with reporting(recorder), TaskProgress("nothing", 0):
        pass
    assert recorder.calls == [("nothing", 0, 0)]


def test_a_task_that_fails_is_not_told_done() -> None:
    def fail_midway() -> None:
        with TaskProgress("failing", 100) as task:
            task.advance_to(40)
            raise Cancelled

    recorder = Recorder()
    with reporting(recorder), pytest.raises(Cancelled):
        fail_midway()
    assert recorder.calls == [("failing", 0, 100), ("failing", 40, 100)]


def test_reporting_nests_and_restores() -> None:
    outer, inner = Recorder(), Recorder()
    with reporting(outer):
        with reporting(inner), TaskProgress("inner", 1):
            pass
        with TaskProgress("outer", 1):
            pass
    with TaskProgress("nobody", 1):
        pass
    assert outer.labels() == ["outer"]
    assert inner.labels() == ["inner"]
    assert progress._listener.get() is None


# -- the command's bars ----------------------------------------------------------------


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


def test_progress_bar_draws_each_task_on_a_terminal(store_root: Path) -> None:
    console, out = terminal()
    with progress_bar(True, console=console):
        assert check_path(store_root).ok
    drawn = out.getvalue()
    for label in checking_sizes(store_root):
        assert label in drawn
    assert "\x1b[" in drawn  # drawn for a terminal, then cleared
    assert progress._listener.get() is None


def test_progress_bar_starts_a_returning_task_over() -> None:
    console, out = terminal()
    with progress_bar(True, console=console):
        for _ in range(2):
            with TaskProgress("twice", 1 << 20) as task:
                task.advance_to(1 << 19)
    assert "twice" in out.getvalue()


def test_progress_bar_disabled_draws_nothing_and_listens_to_nothing(
    store_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console, out = terminal()
    with progress_bar(False, console=console):
        assert progress._listener.get() is None
        assert check_path(store_root).ok
    assert out.getvalue() == ""
    assert capsys.readouterr() == ("", "")


def test_a_bar_is_for_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for answer in (True, False):
        stream = io.StringIO()
        monkeypatch.setattr(stream, "isatty", lambda answer=answer: answer)
        monkeypatch.setattr(sys, "stderr", stream)
        assert on_terminal() is answer


def command_output(argv: list[str], *, stderr_on_terminal: bool) -> tuple[int, str, str]:
    """Run ``snapstore argv`` with stderr on a pseudo-terminal (or a pipe); exit, out, err."""
    import os  # noqa: PLC0415
    import pty  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    command = [sys.executable, "-m", "snapstore", *argv]
    if not stderr_on_terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        return done.returncode, done.stdout, done.stderr
    controller, terminal_end = pty.openpty()
    # stdout to a file, not a pipe: a pipe left unread while the terminal is
    # read would fill and stop the command.
    with tempfile.TemporaryFile() as stdout:
        with subprocess.Popen(command, stdout=stdout, stderr=terminal_end) as process:
            os.close(terminal_end)
            drawn = bytearray()
            while True:
                try:
                    chunk = os.read(controller, 1 << 16)
                except OSError:  # EIO: the process closed the terminal's last writer
                    break
                if not chunk:
                    break
                drawn += chunk
            process.wait(timeout=120)
        os.close(controller)
        stdout.seek(0)
        out = stdout.read().decode()
    return process.returncode, out, drawn.decode(errors="replace")


@pytest.mark.parametrize(
    "argv",
    [
        ["verify"],
        ["export", "-o", "{tmp}/runs.parquet"],
        ["ls", "--all-versions", "--format", "csv"],
    ],
    ids=["verify", "export", "ls"],
)
def test_long_commands_draw_a_bar_on_a_terminal_and_nothing_elsewhere(
    store_root: Path, tmp_path: Path, argv: list[str]
) -> None:
    command = [argv[0], str(store_root), *(arg.format(tmp=tmp_path) for arg in argv[1:])]
    status, out, drawn = command_output(command, stderr_on_terminal=True)
    assert status == 0, drawn
    assert "store/snapshots.jsonl" in drawn  # a task's label, drawn and then cleared
    assert "\x1b[" in drawn
    status, piped_out, err = command_output(command, stderr_on_terminal=False)
    assert status == 0
    assert "snapshots.jsonl" not in err
    assert "\x1b[" not in err + piped_out
    assert piped_out == out  # the results do not depend on where the bars go
