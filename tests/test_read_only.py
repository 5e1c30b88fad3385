"""read_only=True: read, refresh and verify what cannot be written, changing nothing.

The store and history under test sit on a real read-only mount (a read-only
bind mount of a directory written first), the way a backup or a colleague's
results are reached: any write, lock file or directory created would fail
there. Mounting needs root; under CI (CI=true) a missing mount fails the
tests instead of skipping them.
"""

from __future__ import annotations

import errno
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from snapstore import (
    IterationHistory,
    NormalizedSnapshot,
    NotAStoreError,
    ReadOnlyError,
    SnapshotStore,
    StorageError,
)
from snapstore.cli.main import main

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


def _tree(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(directory)): (
            p.read_bytes() if p.is_file() else b"<dir>",
            p.stat().st_mtime_ns,
        )
        for p in sorted(directory.rglob("*"))
    }


def _snap(run_id: str, auc: float, lr: float = 0.1) -> NormalizedSnapshot:
    return NormalizedSnapshot(run_id=run_id, stage="eval", metrics={"auc": auc}, config={"lr": lr})


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A directory to write (``rw``), and the same directory mounted read-only (``ro``)."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    done = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(rw), str(ro)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        why = f"cannot make a read-only mount here: {done.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield rw, ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.fixture
def store_on_read_only_mount(mounted: tuple[Path, Path]) -> tuple[Path, Path]:
    """A store with snapshots, a pin, a checkpoint and a history; its rw and ro paths."""
    rw, ro = mounted
    with SnapshotStore(rw / "store") as store:
        first = store.save_snapshot(_snap("run-1", 0.8))
        store.get_or_establish_baseline(first)
        store.save_snapshot(_snap("run-2", 0.9))
        store.save_snapshot(_snap("run-2", 0.91))
        store.history("train").extend({"step": i} for i in range(3))
        store.checkpoint()
    return rw / "store", ro / "store"


def _refused(call: Callable[[], object]) -> None:
    with pytest.raises(ReadOnlyError, match="read_only=True"):
        call()


def test_a_store_on_a_read_only_mount_is_read_refreshed_and_verified(
    store_on_read_only_mount: tuple[Path, Path],
) -> None:
    rw, ro = store_on_read_only_mount
    before = _tree(rw)
    with SnapshotStore(ro, read_only=True) as store:
        assert len(store) == 3
        latest = store.get("run-2", "eval")
        assert latest is not None
        assert latest.metrics["auc"] == 0.91
        assert [s.metrics["auc"] for s in store.versions("run-2", "eval")] == [0.9, 0.91]
        previous = store.find_previous_comparable(latest)
        assert previous is not None
        assert previous.run_id == "run-1"
        assert latest.comparison_key is not None
        baseline = store.baseline("eval", latest.comparison_key)
        assert baseline is not None
        assert baseline.run_id == "run-1"
        assert store.get_or_establish_baseline(latest) == baseline  # a read: it exists
        assert [r.data for r in store.history("train")] == [{"step": i} for i in range(3)]
        store.refresh()
        assert store.verify().ok
        _refused(lambda: store.save_snapshot(_snap("run-3", 0.7)))
        _refused(lambda: store.set_baseline(latest))
        _refused(lambda: store.get_or_establish_baseline(_snap("run-4", 0.5, lr=0.2)))
        _refused(store.checkpoint)
        _refused(store.repair)
        _refused(lambda: store.history("train").append({"step": 3}))
        with pytest.raises(StorageError, match="a read-only open does not create"):
            store.history("missing")
    assert _tree(rw) == before


def test_a_read_only_store_sees_what_a_writer_commits_after_it_opened(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as writer:
        writer.save_snapshot(_snap("run-1", 0.8))
        with SnapshotStore(tmp_path / "s", read_only=True) as reader:
            assert len(reader) == 1
            writer.save_snapshot(_snap("run-2", 0.9))
            writer.history("h").append({"i": 1})
            assert len(reader) == 2
            assert reader.get("run-2", "eval") is not None
            history = reader.history("h")
            writer.history("h").append({"i": 2})
            assert [r.data for r in history] == [{"i": 1}, {"i": 2}]


def test_a_history_on_a_read_only_mount_is_read_refreshed_and_verified(
    mounted: tuple[Path, Path],
) -> None:
    rw, ro = mounted
    with IterationHistory(rw / "h.jsonl") as history:
        history.extend({"i": i} for i in range(5))
    with (rw / "h.jsonl").open("ab") as file:
        file.write(b'{"seq":6,"ts"')  # a torn tail: a reader leaves it be
    before = _tree(rw)
    with IterationHistory(ro / "h.jsonl", read_only=True) as history:
        assert len(history) == 5
        assert history.get(3).data == {"i": 2}
        assert [r.data for r in history.load_recent(2)] == [{"i": 3}, {"i": 4}]
        history.refresh()
        report = history.verify()
        assert report.records == 5
        assert not report.ok  # the torn tail is reported, and left
        _refused(lambda: history.append({"i": 5}))
        _refused(lambda: history.extend([{"i": 5}]))
        _refused(history.repair)
    assert _tree(rw) == before


@pytest.mark.parametrize("kind", ["store", "history"])
def test_a_writable_open_of_a_read_only_mount_says_to_open_it_read_only(
    store_on_read_only_mount: tuple[Path, Path], kind: str
) -> None:
    rw, ro = store_on_read_only_mount
    before = _tree(rw)
    opening: Callable[[], object] = {
        "store": lambda: SnapshotStore(ro),
        "history": lambda: IterationHistory(ro / "history" / "train.jsonl"),
    }[kind]
    with pytest.raises(StorageError, match=r"read_only=True") as info:
        opening()
    assert info.value.errno == errno.EROFS
    assert _tree(rw) == before


def test_verify_on_a_read_only_mount_from_the_command_line(
    store_on_read_only_mount: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rw, ro = store_on_read_only_mount
    before = _tree(rw)
    assert main(["verify", str(ro)]) == 0
    assert main(["verify", str(ro / "history" / "train.jsonl")]) == 0
    assert "OK" in capsys.readouterr().out
    assert _tree(rw) == before


def test_verify_creates_no_lock_file(tmp_path: Path) -> None:
    # A history copied without its lock file, and a store without its own.
    with IterationHistory(tmp_path / "a" / "h.jsonl") as history:
        history.append({"i": 1})
    with SnapshotStore(tmp_path / "s") as store:
        store.save_snapshot(_snap("run-1", 0.8))
    (tmp_path / "a" / "h.jsonl.lock").unlink()
    (tmp_path / "s" / ".lock").unlink()
    before = _tree(tmp_path)
    with IterationHistory(tmp_path / "a" / "h.jsonl", read_only=True) as history:
        assert history.verify().ok
    with SnapshotStore(tmp_path / "s", read_only=True) as store:
        assert store.verify().ok
        assert len(store) == 1
    assert main(["verify", str(tmp_path / "a" / "h.jsonl")]) == 0
    assert main(["verify", str(tmp_path / "s")]) == 0
    assert _tree(tmp_path) == before


def test_a_read_only_open_of_a_missing_path_creates_nothing(tmp_path: Path) -> None:
    before = _tree(tmp_path)
    with pytest.raises(StorageError) as info:
        SnapshotStore(tmp_path / "new" / "store", read_only=True)
    assert info.value.errno == errno.ENOENT
    with pytest.raises(StorageError) as info:
        IterationHistory(tmp_path / "new" / "h.jsonl", read_only=True)
    assert info.value.errno == errno.ENOENT
    (tmp_path / "empty").mkdir()
    before = _tree(tmp_path)
    with pytest.raises(NotAStoreError):
        SnapshotStore(tmp_path / "empty", read_only=True)
    assert _tree(tmp_path) == before


def test_read_only_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="read_only"):
        SnapshotStore(tmp_path / "s", read_only="yes")  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()
