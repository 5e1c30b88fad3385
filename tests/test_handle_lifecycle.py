"""Handles live like files: closed histories reopen, descriptors stay bounded, leaks warn."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from helpers import open_fds
from snapstore import ClosedError, IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore.store import RECENT_HISTORIES

# Descriptor counts are compared: see helpers.open_fds.
pytestmark = pytest.mark.usefixtures("gc_paused")


needs_proc_fd = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc/self/fd"
)


def _open_descriptors() -> int:
    return len(open_fds())


def _resource_warnings(caught: list[warnings.WarningMessage], what: str) -> int:
    found = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert all(f"unclosed {what}" in str(w.message) for w in found), found
    return len(found)


def test_a_store_history_closed_by_its_caller_is_opened_again(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        with store.history("x") as history:
            history.append({"i": 1})
        assert history.closed
        with pytest.raises(ClosedError):
            history.append({"i": 2})
        again = store.history("x")
        assert again is not history
        assert again.append({"i": 2}).seq == 2
        assert store.history("x") is again
        assert [r.data for r in again] == [{"i": 1}, {"i": 2}]


def test_a_history_held_by_its_caller_stays_open_and_is_the_one_handed_out(
    tmp_path: Path,
) -> None:
    with SnapshotStore(tmp_path / "s") as store:
        kept = store.history("kept")
        for i in range(3 * RECENT_HISTORIES):
            store.history(f"other-{i}").append({"i": i})
        assert store.history("kept") is kept
        assert kept.append({"i": 0}).seq == 1
    assert kept.closed  # closed with the store


@needs_proc_fd
def test_histories_nobody_holds_give_their_descriptors_back(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "s", durability="write") as store:
        opened = _open_descriptors()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a store's own histories never warn
            for i in range(10 * RECENT_HISTORIES):
                store.history(f"h{i}").append({"i": i})
        # Two descriptors (file and lock) for each history kept open.
        assert _open_descriptors() - opened <= 2 * RECENT_HISTORIES


def test_five_thousand_histories_under_a_limit_of_256_descriptors(tmp_path: Path) -> None:
    resource = pytest.importorskip("resource")
    script = textwrap.dedent(
        f"""
        import resource
        from snapstore import SnapshotStore
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        with SnapshotStore({str(tmp_path / "s")!r}, durability="write") as store:
            for i in range(5000):
                store.history(f"h{{i}}").append({{"i": i}})
            assert [r.data for r in store.history("h0")] == [{{"i": 0}}]
            assert len(store.history("h4999")) == 1
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert resource  # the limit is a POSIX notion


@needs_proc_fd
def test_a_history_reclaimed_without_close_releases_its_files_and_warns(tmp_path: Path) -> None:
    opened = _open_descriptors()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(200):
            IterationHistory(tmp_path / f"h{i}.jsonl").append({"i": i})
    assert _resource_warnings(caught, "IterationHistory") == 200
    assert _open_descriptors() == opened
    # Released means released: another handle takes the writer lock at once.
    with IterationHistory(tmp_path / "h0.jsonl", lock_timeout=0) as again:
        assert again.append({"i": 1}).seq == 2


@needs_proc_fd
def test_a_store_reclaimed_without_close_releases_its_files_and_warns(tmp_path: Path) -> None:
    opened = _open_descriptors()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(50):
            store = SnapshotStore(tmp_path / f"s{i}")
            store.save_snapshot(NormalizedSnapshot(run_id="a", stage="train"))
            store.history("h").append({"i": i})
            del store  # the store holds no reference cycle: reclaimed here
    assert _resource_warnings(caught, "SnapshotStore") == 50
    assert _open_descriptors() == opened
    with SnapshotStore(tmp_path / "s0", lock_timeout=0) as again:
        assert again.save_snapshot(NormalizedSnapshot(run_id="b", stage="train")).snapshot_seq == 2
        assert again.history("h").append({"i": 1}).seq == 2
