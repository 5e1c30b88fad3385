"""The ``snapstore`` command: the demo end to end, exit status, errors and options."""

from __future__ import annotations

import multiprocessing
import re
import shlex
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore.cli.main import main
from workers import WAIT, hold_lock_file

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
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
    assert "Missing command" in capsys.readouterr().err


@pytest.mark.parametrize("runs", ["0", "-2"])
def test_demo_refuses_a_run_count_below_one(runs: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", str(tmp_path / "store"), "--runs", runs])
    assert exited.value.code == 2
    assert not (tmp_path / "store").exists()


# -- exit status, errors and options -------------------------------------------------


def tree_state(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (a directory as None, a file as its bytes)."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failure that was expected prints: no traceback, exit status 2."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("snapstore: error: "), result.stderr
    assert result.returncode == 2, result.stderr
    return lines[0]


@contextmanager
def lock_held_elsewhere(lock_path: Path) -> Iterator[None]:
    """Hold the writer lock file ``lock_path`` in another process for the block."""
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    child = context.Process(target=hold_lock_file, args=(str(lock_path), held, release))
    child.start()
    try:
        assert held.wait(WAIT)
        yield
    finally:
        release.set()
        child.join(WAIT)
        if child.is_alive():
            child.kill()
            child.join()
    assert child.exitcode == 0


def make_store(root: Path) -> Path:
    with SnapshotStore(root) as store:
        store.save_snapshot(NormalizedSnapshot("run-001", "TRAINING", metrics={"auc": 0.5}))
        store.history("steps").append({"step": 1})
    return root


def test_help_ends_with_the_exit_status_table() -> None:
    result = run(str(SCRIPT), "--help")
    assert result.returncode == 0
    table = result.stdout[result.stdout.index("exit status:") :]
    assert re.search(r"^ +0 +clean", table, re.MULTILINE), table
    assert re.search(r"^ +1 +damage found", table, re.MULTILINE), table
    assert re.search(r"^ +2 +cannot run", table, re.MULTILINE), table
    assert "--lock-timeout" in table


@pytest.mark.parametrize("doc", ["README.md", "docs/api.md", "docs/cli.md"])
def test_the_docs_give_the_exit_status_table(doc: str) -> None:
    text = (ROOT / doc).read_text()
    for status, meaning in [("0", "clean"), ("1", "damage found"), ("2", "cannot run")]:
        assert re.search(rf"^\| `{status}` \| {meaning}", text, re.MULTILINE), (doc, status)
    for option in ("--lock-timeout", "--version"):
        assert option in text, (doc, option)


def test_version_prints_the_package_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for command in ([str(SCRIPT)], [sys.executable, "-m", "snapstore"]):
        result = run(*command, "--version")
        assert (result.returncode, result.stdout, result.stderr) == (
            0,
            f"snapstore {version}\n",
            "",
        )


@pytest.mark.parametrize("name", ["missing", "missing.jsonl"])
@pytest.mark.parametrize("command", [["verify"], ["repair"], ["repair", "--dry-run"]])
def test_a_missing_path_is_no_such_file_or_directory(
    tmp_path: Path, command: list[str], name: str
) -> None:
    path = tmp_path / name
    line = error_line(run(str(SCRIPT), *command, str(path)))
    assert line == f"snapstore: error: {path}: no such file or directory"
    assert not path.exists()


@pytest.mark.parametrize("command", [["verify"], ["repair"]])
def test_a_path_below_a_regular_file_is_not_a_directory(tmp_path: Path, command: list[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    path = notes / "store"
    line = error_line(run(str(SCRIPT), *command, str(path)))
    assert line == f"snapstore: error: {path}: not a directory"
    assert notes.read_text() == "keep me"


@pytest.mark.parametrize("command", [["verify"], ["repair", "--dry-run"], ["demo"]])
def test_an_os_error_is_one_line_not_a_traceback(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / ("x" * 300)  # longer than a file name may be
    line = error_line(run(str(SCRIPT), *command, str(path)))
    assert "file name too long" in line.lower()
    assert list(tmp_path.iterdir()) == []


def test_repair_that_leaves_damage_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_store(tmp_path / "store")
    (root / "SNAPSTORE").write_text('{"format": 99}')  # repair never guesses a format
    assert main(["repair", str(root)]) == 1
    assert main(["repair", "--dry-run", str(root)]) == 1
    assert main(["verify", str(root)]) == 1
    assert "1 problem(s)" in capsys.readouterr().out


LOCK_CASES = {
    "verify a store": (["verify"], "store", ".lock"),
    "repair a store": (["repair"], "store", ".lock"),
    "dry-run repair of a store": (["repair", "--dry-run"], "store", ".lock"),
    "verify a history": (["verify"], "history", "runs.jsonl.lock"),
    "repair a history": (["repair"], "history", "runs.jsonl.lock"),
    "demo, store lock": (["demo", "--runs", "1"], "demo", ".lock"),
    "demo, history lock": (
        ["demo", "--runs", "1"],
        "demo",
        "history/run-002.TARGET_RANKING.jsonl.lock",
    ),
}


@pytest.mark.parametrize(("command", "kind", "lock"), LOCK_CASES.values(), ids=LOCK_CASES.keys())
def test_a_lock_timeout_names_the_option_to_wait_longer(
    tmp_path: Path, command: list[str], kind: str, lock: str
) -> None:
    if kind == "history":
        path = tmp_path / "runs.jsonl"
        with IterationHistory(path) as history:
            history.append({"i": 1})
        lock_path = tmp_path / lock
    else:
        path = tmp_path / "store"
        if kind == "demo":
            assert run(str(SCRIPT), "demo", str(path), "--runs", "1").returncode == 0
        else:
            make_store(path)
        lock_path = path / lock
    with lock_held_elsewhere(lock_path):
        result = run(str(SCRIPT), *command, str(path), "--lock-timeout", "0.3")
    line = error_line(result)
    assert f"could not acquire the writer lock {lock_path} within 0.3 s" in line
    assert "--lock-timeout SECONDS" in line
    # The library's parameter means nothing here (the test's own path may hold the word).
    assert "lock_timeout" not in line.replace(str(lock_path), "")


def test_lock_timeout_waits_for_a_lock_released_meanwhile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_store(tmp_path / "store")
    with lock_held_elsewhere(root / ".lock"):
        started = time.monotonic()
        later = subprocess.Popen(
            [str(SCRIPT), "verify", "--lock-timeout", "60", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        assert later.poll() is None  # still waiting for the lock
    out, err = later.communicate(timeout=WAIT)
    assert (later.returncode, err) == (0, "")
    assert out.strip().endswith(": OK")
    assert time.monotonic() - started >= 0.5


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
@pytest.mark.parametrize("command", ["verify", "repair", "demo"])
def test_lock_timeout_must_be_a_finite_number_of_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, str(tmp_path / "store"), f"--lock-timeout={value}"])
    assert exited.value.code == 2
    assert "Invalid value for '--lock-timeout'" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def own_snapshot(root: Path) -> None:
    # Named like the demo's: what the demo goes by is its mark, not the names.
    make_store(root)


def own_history(root: Path) -> None:
    with SnapshotStore(root) as store:
        store.history("steps").append({"step": 1})


def demo_store_with_an_own_snapshot(root: Path) -> None:
    assert main(["demo", str(root), "--runs", "1"]) == 0
    with SnapshotStore(root) as store:
        store.save_snapshot(NormalizedSnapshot("mine", "TRAINING", metrics={"auc": 0.5}))


def demo_store_with_an_own_history(root: Path) -> None:
    assert main(["demo", str(root), "--runs", "1"]) == 0
    with SnapshotStore(root) as store:
        store.history("steps").append({"step": 1})


@pytest.mark.parametrize(
    "make",
    [own_snapshot, own_history, demo_store_with_an_own_snapshot, demo_store_with_an_own_history],
)
def test_demo_refuses_a_store_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], None]
) -> None:
    root = tmp_path / "store"
    make(root)
    capsys.readouterr()
    before = tree_state(root)
    assert main(["demo", str(root), "--runs", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"snapstore: error: {root} is a snapstore store the demo did not write")
    assert len(err.splitlines()) == 1
    assert tree_state(root) == before


def test_demo_continues_a_store_an_earlier_demo_wrote_without_its_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the demo wrote before its snapshots carried the snapstore_demo field.
    root = tmp_path / "demo"
    config = {"model": "gbm", "lr": 0.05, "depth": 8}
    with SnapshotStore(root) as store:
        for stage in ("TARGET_RANKING", "FEATURE_SELECTION", "TRAINING"):
            store.history(f"run-001.{stage}").append({"worker": 0, "iteration": 0, "loss": 1.0})
            metrics = {"auc": 0.75, "iterations": 36}
            store.save_snapshot(NormalizedSnapshot("run-001", stage, metrics, config))
    assert main(["demo", str(root), "--runs", "1"]) == 0
    assert ALL_GOOD in capsys.readouterr().out
    with SnapshotStore(root) as store:
        assert [s.run_id for s in store.snapshots()] == ["run-001"] * 3 + ["run-002"] * 3
        assert all(
            s.data == {"snapstore_demo": True}
            for s in store.snapshots()
            if (s.snapshot_seq or 0) > 3
        )


def test_demo_help_and_readme_say_which_stores_the_demo_adds_to() -> None:
    result = run(str(SCRIPT), "demo", "--help")
    assert result.returncode == 0
    assert "snapstore_demo" in result.stdout
    assert "snapstore_demo" in (ROOT / "README.md").read_text()


def test_the_demo_ends_with_commands_that_work_on_its_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "store", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    suggested = out[out.index("Try next:") :].splitlines()[1:]
    assert len(suggested) >= 8
    commands = {shlex.split(line.split("#", 1)[0])[1] for line in suggested}
    assert {"ls", "show", "diff", "baseline", "history", "plot", "export", "info"} <= commands
    for line in suggested:
        argv = shlex.split(line.split("#", 1)[0])
        assert argv[0] == "snapstore"
        assert main(argv[1:]) == 0, (line, capsys.readouterr().err)
    assert (tmp_path / "auc.png").stat().st_size > 0
    assert (tmp_path / "runs.csv").read_text().count("\n") == 7  # a header, six snapshots


def test_an_interrupted_command_stops_with_status_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from snapstore.backends.local import repair  # noqa: PLC0415 - patched below

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(repair, "check_path", interrupted)
    assert main(["verify", str(make_store(tmp_path / "store"))]) == 130
    assert "Traceback" not in capsys.readouterr().err
