"""fork(): a handle opened before it refuses in the child at once; new handles work.

The parent keeps writing through its handles from several threads while it
forks, so the children are made at arbitrary instants of a commit: a thread
lock held, a group commit led, an index half updated. A child must never hang
on what those threads held; it gets InheritedHandleError, can close its copies
without disturbing the parent, and writes through handles it opens itself.
"""

from __future__ import annotations

import faulthandler
import functools
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Self

import pytest

from helpers import check_log
from snapstore import (
    InheritedHandleError,
    IterationHistory,
    LockTimeout,
    NormalizedSnapshot,
    SnapshotStore,
)
from snapstore.backends.local import disk_index

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform has no fork()"),
    # Python 3.12+ warns that forking a threaded process may deadlock the
    # child: that hazard is exactly what these tests show snapstore avoids.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

FORKS = 60
# Every sixth child also writes through handles of its own (each such open
# reads the parent's whole, growing logs: all sixty would make the test slow).
WRITING_CHILD = 6
CHILD_SECONDS = 30.0


def _snapshot(run_id: str, step: int = 0) -> NormalizedSnapshot:
    return NormalizedSnapshot(run_id=run_id, stage="train", metrics={"step": step})


class _Load:
    """Threads writing through the parent's handles until stopped."""

    def __init__(self, history: IterationHistory, store: SnapshotStore) -> None:
        self._stop = threading.Event()
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, args=(write,))
            for write in (
                lambda i: history.append({"i": i}),
                lambda i: history.append({"i": i}),
                lambda i: store.save_snapshot(_snapshot(f"parent-{i % 5}", i)),
                lambda i: store.history("h").append({"i": i}),
            )
        ]

    def _run(self, write: Callable[[int], object]) -> None:
        i = 0
        try:
            while not self._stop.is_set():
                write(i)
                i += 1
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not self.errors, self.errors


def _in_child(body: Callable[[], None]) -> int:
    """Fork; the child runs ``body`` and exits 0, or prints why and exits 1. Returns the pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        code = 1
        # Should it hang after all, say where (to stderr) before it is killed.
        faulthandler.dump_traceback_later(CHILD_SECONDS - 5)
        try:
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _wait(pid: int) -> int:
    """The child's exit status; a child still running after CHILD_SECONDS hung."""
    deadline = time.monotonic() + CHILD_SECONDS
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"forked child {pid} hung for {CHILD_SECONDS} s")


def _refuses(call: Callable[[], object]) -> None:
    with pytest.raises(InheritedHandleError, match="open a new one"):
        call()


@pytest.fixture
def handles(tmp_path: Path) -> Iterator[tuple[IterationHistory, SnapshotStore]]:
    with IterationHistory(tmp_path / "h.jsonl") as history, SnapshotStore(tmp_path / "s") as store:
        yield history, store


def test_children_forked_under_load_refuse_inherited_handles_and_write_through_new_ones(
    handles: tuple[IterationHistory, SnapshotStore],
) -> None:
    history, store = handles
    store_history = store.history("h")

    def child(n: int) -> None:
        # Every kind of call, each refused at once, none waiting on a lock
        # some thread of the parent held at the fork.
        _refuses(lambda: history.append({"child": n}))
        _refuses(lambda: history.extend([{"child": n}]))
        _refuses(lambda: history.get(1))
        _refuses(lambda: len(history))
        _refuses(lambda: store.save_snapshot(_snapshot(f"child-{n}")))
        _refuses(lambda: store.get("parent-0", "train"))
        _refuses(lambda: store.get_or_establish_baseline(_snapshot(f"child-{n}")))
        _refuses(lambda: store_history.append({"child": n}))
        _refuses(store.checkpoint)
        # Closing the copies gives back descriptors only, and never blocks.
        history.close()
        store.close()
        if n % WRITING_CHILD:
            return
        with IterationHistory(history.path) as mine:
            mine.append({"child": n}, key=f"child-{n}")
        with SnapshotStore(store.root) as mine_store:
            mine_store.save_snapshot(_snapshot(f"child-{n}"))
            mine_store.history("h").append({"child": n}, key=f"child-{n}")

    with _Load(history, store):
        statuses = [_wait(_in_child(functools.partial(child, n))) for n in range(FORKS)]
    assert statuses == [0] * FORKS

    # The parent's handles kept working, and every child's record is there once.
    records = check_log(history.path)
    writers = range(0, FORKS, WRITING_CHILD)
    assert sorted(r["key"] for r in records if r["key"]) == sorted(f"child-{n}" for n in writers)
    history.append({"after": True})
    assert history.verify().ok
    store.save_snapshot(_snapshot("parent-after"))
    assert store.verify().ok
    assert {f"child-{n}" for n in writers} <= {s.run_id for s in store.snapshots()}
    seqs = [s.snapshot_seq for s in store.snapshots()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_child_closing_its_copy_leaves_the_parents_writer_lock_held(
    handles: tuple[IterationHistory, SnapshotStore],
) -> None:
    # flock belongs to the open file description parent and child share: an
    # unlock in the child's close would free the lock under the parent.
    history, store = handles

    def child() -> None:
        history.close()
        store.close()
        with pytest.raises(LockTimeout):
            IterationHistory(history.path, lock_timeout=0.2).append({"child": True})
        with pytest.raises(LockTimeout), SnapshotStore(store.root, lock_timeout=0.2) as mine:
            mine.save_snapshot(_snapshot("child"))

    with history._backend._lock, store._backend._lock:  # type: ignore[attr-defined]
        assert _wait(_in_child(child)) == 0
    history.append({"parent": True})
    store.save_snapshot(_snapshot("parent"))
    assert history.verify().ok
    assert store.verify().ok


def test_a_childs_inherited_handle_reclaimed_without_close_warns_and_writes_nothing(
    tmp_path: Path,
) -> None:
    history = IterationHistory(tmp_path / "h.jsonl")
    store = SnapshotStore(tmp_path / "s")
    store.save_snapshot(_snapshot("a"))  # a checkpoint would be due at close
    before = sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*"))

    def child() -> None:
        import gc  # noqa: PLC0415
        import warnings  # noqa: PLC0415

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nonlocal history, store
            del history, store
            gc.collect()
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught

    try:
        assert _wait(_in_child(child)) == 0
        assert sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*")) == before
    finally:
        history.close()
        store.close()


_INHERITED: IterationHistory | None = None


def _append_through_inherited(n: int) -> str:
    assert _INHERITED is not None
    try:
        _INHERITED.append({"worker": n})
    except InheritedHandleError as exc:
        return type(exc).__name__
    return "appended"


def test_a_fork_pool_worker_gets_a_typed_error_from_an_inherited_handle(
    handles: tuple[IterationHistory, SnapshotStore],
) -> None:
    global _INHERITED  # noqa: PLW0603 - what a module-level handle in user code looks like
    history, store = handles
    _INHERITED = history
    try:
        with _Load(history, store), multiprocessing.get_context("fork").Pool(4) as pool:
            outcomes = pool.map(_append_through_inherited, range(40), chunksize=1)
    finally:
        _INHERITED = None
    assert outcomes == ["InheritedHandleError"] * 40
    assert history.verify().ok


def test_a_checkpoint_imports_nothing_while_a_fork_may_wait_for_it(tmp_path: Path) -> None:
    # A module imported inside the barrier may register fork hooks while a
    # fork waits there: its "after" hook would then run without its "before".
    # A fresh interpreter, so that what this one imported hides nothing.
    script = f"""
import sys
from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore.backends.local import checkpoint as checkpoint_module

imported = []

class Watched:
    def __enter__(self):
        self.before = set(sys.modules)
    def __exit__(self, *exc):
        imported.extend(set(sys.modules) - self.before)

checkpoint_module.arrow_barrier = Watched()
with SnapshotStore({str(tmp_path / "s")!r}) as store:
    store.save_snapshot(NormalizedSnapshot(run_id="a", stage="train"))
    store.checkpoint()
with SnapshotStore({str(tmp_path / "s")!r}) as store:
    store.save_snapshot(NormalizedSnapshot(run_id="b", stage="train"))
    store.checkpoint()
print(sorted(imported))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_a_fork_during_a_write_to_the_index_file_leaves_the_child_free_to_write_it(
    tmp_path: Path,
) -> None:
    # SQLite keeps, per process, what locks the process's connections hold on
    # a file; a child forked while a parent's thread was inside a write
    # transaction inherits that record without the locks, and its own
    # connection would then wait for a lock nobody can release.
    with SnapshotStore(tmp_path / "s") as store:
        store.save_snapshot(_snapshot("parent-0"))
        store.checkpoint()
    db = sqlite3.connect(tmp_path / "s" / "index.sqlite", check_same_thread=False)
    inside, leave = threading.Event(), threading.Event()

    def write() -> None:
        with disk_index._transaction(db):
            inside.set()
            leave.wait(1.0)  # the fork below waits for this transaction, if it may

    writer = threading.Thread(target=write)
    writer.start()
    inside.wait()

    def child() -> None:
        mine = sqlite3.connect(tmp_path / "s" / "index.sqlite", timeout=2)
        mine.execute("BEGIN IMMEDIATE")
        mine.execute("COMMIT")

    pid = _in_child(child)
    leave.set()
    writer.join()
    db.close()
    assert _wait(pid) == 0
