"""Ctrl-C at every I/O call: the same handle goes on, and what it shows agrees with the file.

An interrupt (KeyboardInterrupt, or any exception a signal handler or a
timeout library raises asynchronously) may arrive during any call a write
makes to the file system: before it has its effect, or once it has. After it,
the same handle must keep working (never hang, never refuse with an unrelated
error), its in-memory index must agree with the file, and the interrupted
record must be stored whole or not at all.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import pytest

import snapstore
from helpers import open_fds
from snapstore import ClosedError, IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore._log.lock import WriterLock
from snapstore._log.seam import FileSystem, installed
from snapstore._records import Entry
from snapstore.backends.local.history import LocalHistory
from snapstore.snapshot import encode_payload
from snapstore.testing import FaultInjector

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

# A follow-up call still running after this long is taken to hang.
HANG = 20.0


def snap(run: str, stage: str = "train", i: int = 0) -> NormalizedSnapshot:
    return NormalizedSnapshot(f"run-{run}", stage, metrics={"i": i}, config={"lr": 0.1})


def local_history(history: IterationHistory) -> LocalHistory:
    backend = history._backend
    assert isinstance(backend, LocalHistory)
    return backend


def finishes(call: Callable[[], object]) -> object:
    """Run ``call`` in a thread: its result, or a failure if it hangs."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # reported to the test below
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG)
    assert not thread.is_alive(), "the handle hangs after an interrupt"
    (result,) = outcome
    if isinstance(result, BaseException):
        raise result
    return result


@dataclass(frozen=True)
class HistoryCase:
    operation: Callable[[IterationHistory], object]
    records: int  # how many records the operation appends


HISTORY_CASES = {
    "append": HistoryCase(lambda h: h.append({"new": 1}), 1),
    "keyed append": HistoryCase(lambda h: h.append({"new": 1}, key="new"), 1),
    "extend": HistoryCase(lambda h: h.extend([{"new": i} for i in range(3)]), 3),
}


def interrupt_points(count: Callable[[FaultInjector], object]) -> int:
    fs = FaultInjector()
    count(fs)
    return len(fs.calls)


@pytest.mark.parametrize("after_effect", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("case", HISTORY_CASES.values(), ids=HISTORY_CASES.keys())
def test_a_history_interrupted_at_each_call_goes_on(
    tmp_path: Path, case: HistoryCase, after_effect: bool, durability: str
) -> None:
    def probe(fs: FaultInjector) -> None:
        with installed(fs), IterationHistory(tmp_path / "probe.jsonl") as history:
            history.append({"old": 0})
            fs.arm(None)
            case.operation(history)

    points = interrupt_points(probe)
    assert points >= 2
    for k in range(1, points + 1):
        path = tmp_path / f"k-{k}.jsonl"
        fs = FaultInjector(interrupt=True, after_effect=after_effect)
        with installed(fs), IterationHistory(path, durability=durability) as history:  # type: ignore[arg-type]
            history.append({"old": 0})
            fs.arm(k)
            with contextlib.suppress(KeyboardInterrupt):
                case.operation(history)
            fs.arm(None)
            after = finishes(functools.partial(history.append, {"after": k}))
            assert isinstance(after, object)
            shown = [(r.seq, r.data, r.key) for r in history]
            assert len(history) == len(shown)
        with IterationHistory(path) as fresh:
            stored = [(r.seq, r.data, r.key) for r in fresh]
            assert fresh.verify().ok
        assert stored == shown, f"interrupt at call {k}: the handle and the file disagree"
        assert [seq for seq, _, _ in stored] == list(range(1, len(stored) + 1))
        new = [data for _, data, _ in stored if "new" in data]
        assert len(new) in {0, case.records}, f"interrupt at call {k}: a partial batch"
        assert stored[-1][1] == {"after": k}


STORE_CASES: dict[str, Callable[[SnapshotStore], object]] = {
    "save_snapshot": lambda s: s.save_snapshot(snap("new", i=5)),
    "get_or_establish_baseline": lambda s: s.get_or_establish_baseline(snap("new", "eval", i=6)),
    "checkpoint": lambda s: s.checkpoint(),
}


@pytest.mark.parametrize("after_effect", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("operation", STORE_CASES.values(), ids=STORE_CASES.keys())
def test_a_store_interrupted_at_each_call_goes_on(
    tmp_path: Path, operation: Callable[[SnapshotStore], object], after_effect: bool
) -> None:
    def prepare(root: Path) -> None:
        with SnapshotStore(root, checkpoint_every=1) as store:
            store.save_snapshot(snap("a"))
            store.save_snapshot(snap("b", i=1))

    def probe(fs: FaultInjector) -> None:
        prepare(tmp_path / "probe")
        with installed(fs), SnapshotStore(tmp_path / "probe", checkpoint_every=1) as store:
            fs.arm(None)
            operation(store)

    points = interrupt_points(probe)
    assert points >= 2
    for k in range(1, points + 1):
        root = tmp_path / f"k-{k}"
        prepare(root)
        fs = FaultInjector(interrupt=True, after_effect=after_effect)
        with installed(fs), SnapshotStore(root, checkpoint_every=1) as store:
            fs.arm(k)
            with contextlib.suppress(KeyboardInterrupt):
                operation(store)
            fs.arm(None)
            saved = finishes(functools.partial(store.save_snapshot, snap("after", i=k)))
            assert isinstance(saved, NormalizedSnapshot)
            shown = [(s.snapshot_seq, s.run_id, dict(s.metrics)) for s in store.snapshots()]
            assert len(store) == len(shown)
        with SnapshotStore(root) as fresh:
            stored = [(s.snapshot_seq, s.run_id, dict(s.metrics)) for s in fresh.snapshots()]
            assert fresh.verify().ok
        assert stored == shown, f"interrupt at call {k}: the handle and the file disagree"
        assert [seq for seq, _, _ in stored] == list(range(1, len(stored) + 1))
        assert stored[-1][1] == "run-after"


# -- interrupts where the timer soak found them -----------------------------------------


def interrupt_once_after(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, *, after: int
) -> list[int]:
    """Raise KeyboardInterrupt right after the ``after``-th call of ``owner.name`` returns."""
    original = getattr(owner, name)
    calls: list[int] = []

    def hooked(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == after:
            raise KeyboardInterrupt("as the call returned")
        return result

    monkeypatch.setattr(owner, name, hooked)
    return calls


@pytest.mark.parametrize("after", [1, 2])
def test_an_interrupt_while_the_index_takes_a_batch_leaves_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    # A signal arrives while the store's index takes in a committed batch:
    # the index must still get every record (the next catch-up offers the
    # rest again), never skip one while the log moves past it.
    from snapstore.backends.local import store as local_store  # noqa: PLC0415 - the class checked
    from snapstore.backends.local import store_index  # noqa: PLC0415 - the module whose function is hooked

    with SnapshotStore(tmp_path / "s", checkpoint_every=1000) as store:
        store.save_snapshot(snap("a"))
        backend = store._backend
        assert isinstance(backend, local_store.LocalStore)
        batch = [
            Entry(encode_payload(snap(run, i=i).with_comparison_key(), 1 << 20), None)
            for i, run in ((1, "b"), (2, "c"))
        ]
        interrupt_once_after(monkeypatch, store_index, "index_snapshot", after=after)
        with contextlib.suppress(KeyboardInterrupt):
            backend._snapshots.append(batch)  # a batch of two, as group commit makes
        monkeypatch.undo()
        saved = store.save_snapshot(snap("d", i=3))
        shown = [(s.snapshot_seq, s.run_id) for s in store.snapshots()]
        assert len(store) == len(shown) == saved.snapshot_seq == 4
        assert store.get("run-b", "train") is not None
        assert store.get("run-c", "train") is not None
        store.checkpoint()
        report = store.verify()
        assert report.ok, [str(f) for f in report.findings]


def test_a_checkpoint_after_an_interrupted_index_update_covers_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Interrupted right after the index took a record in, before anything else
    # learned of it: a checkpoint must still describe exactly the rows it holds.
    from snapstore.backends.local import store_index  # noqa: PLC0415 - the module whose function is hooked

    with SnapshotStore(tmp_path / "s", checkpoint_every=1000) as store:
        store.save_snapshot(snap("a"))
        interrupt_once_after(monkeypatch, store_index, "index_snapshot", after=1)
        with contextlib.suppress(KeyboardInterrupt):
            store.save_snapshot(snap("b", i=1))
        monkeypatch.undo()
        store.checkpoint()
        report = store.verify()
        assert report.ok, [str(f) for f in report.findings]
        assert store.save_snapshot(snap("c", i=2)).snapshot_seq == 3


def test_an_interrupted_leader_does_not_fail_the_other_writers_of_its_batch(
    tmp_path: Path,
) -> None:
    # Ctrl-C reaches the thread that leads a group commit while another
    # thread's record is in its batch: the interrupt is the leader's alone.
    fs = FaultInjector(only={"sync"}, interrupt=True)
    with installed(fs), IterationHistory(tmp_path / "h.jsonl") as history:
        history.append({"first": True})
        log = local_history(history)._log
        queued = threading.Event()
        follower: list[object] = []

        def follow() -> None:
            try:
                follower.append(history.append({"follower": True}))
            except BaseException as exc:  # reported below
                follower.append(exc)

        original_write = fs.write

        def write_once_the_follower_queued(fd: int, data: bytes) -> None:
            if not queued.is_set():
                thread.start()
                deadline = time.monotonic() + HANG
                while len(log._pending) < 1 and time.monotonic() < deadline:
                    time.sleep(0.001)
                queued.set()
                fs.arm(1)  # the leader's sync is interrupted
            original_write(fd, data)

        thread = threading.Thread(target=follow)
        fs.write = write_once_the_follower_queued  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            history.append({"leader": True})
        fs.arm(None)
        thread.join(HANG)
        assert not thread.is_alive(), "the follower hangs"
        (outcome,) = follower
        assert not isinstance(outcome, BaseException), f"the follower got {outcome!r}"
        records = [r.data for r in history]
    assert {"follower": True} in records
    assert len(records) in {2, 3}  # the leader's own record is stored whole or not at all


# -- an interrupt as any function of a write is entered ----------------------------

_PACKAGE = str(Path(snapstore.__file__).parent)


class _InterruptAtCall:
    """Raise KeyboardInterrupt as the k-th snapstore function is entered (sys.settrace).

    Python runs a signal handler between any two steps of Python code, also as
    a function is entered, before its first line: this is that moment, for
    each function a write calls, one at a time. Only the calling thread is
    traced, as only the main thread runs signal handlers.
    """

    def __init__(self, k: int | None) -> None:
        self.k = k
        self.calls = 0

    def _trace(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(_PACKAGE):
            self.calls += 1
            if self.calls == self.k:
                raise KeyboardInterrupt

    def __enter__(self) -> Self:
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)


WRITES: dict[str, Callable[[IterationHistory, SnapshotStore, int], object]] = {
    "append": lambda h, s, k: h.append({"k": k}),
    "keyed append": lambda h, s, k: h.append({"k": k}, key=f"k{k}"),
    "save_snapshot": lambda h, s, k: s.save_snapshot(snap(f"k{k}", i=k)),
    "get_or_establish_baseline": lambda h, s, k: s.get_or_establish_baseline(
        snap(f"k{k}", f"group-{k}", i=k)
    ),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_an_interrupt_as_any_function_of_a_write_is_entered_leaves_the_locks_free(
    tmp_path: Path, write: Callable[[IterationHistory, SnapshotStore, int], object]
) -> None:
    # After each interrupt: another thread writes through the same handle at
    # once (before, an interrupt as the writer lock's __exit__ was entered
    # left its thread lock taken, and the thread timed out), then another
    # lock on the same files is taken without waiting (no OS lock is left).
    with (
        IterationHistory(tmp_path / "h.jsonl", lock_timeout=HANG / 4) as history,
        SnapshotStore(tmp_path / "s", lock_timeout=HANG / 4, checkpoint_every=3) as store,
    ):
        with _InterruptAtCall(None) as probe:
            write(history, store, 0)
        assert probe.calls > 10
        for k in range(1, probe.calls + 1):
            with contextlib.suppress(KeyboardInterrupt), _InterruptAtCall(k):
                write(history, store, k)
            finishes(functools.partial(history.append, {"other thread": k}))
            finishes(functools.partial(store.save_snapshot, snap(f"other-{k}", "other", i=k)))
            for lock_file in (local_history(history)._lock.path, store.root / ".lock"):
                with WriterLock(lock_file, FileSystem(), 0.0):
                    pass  # taken at once: no OS lock is held
        assert history.verify().ok
        assert store.verify().ok
    with IterationHistory(tmp_path / "h.jsonl") as fresh:
        assert len(fresh) >= probe.calls


@pytest.mark.usefixtures("gc_paused")  # descriptors are counted
@pytest.mark.parametrize("kind", ["history", "store"])
def test_an_interrupt_as_any_function_of_close_is_entered_leaves_nothing_locked(
    tmp_path: Path, kind: str
) -> None:
    # close() of a store that has a checkpoint due: interrupted as each of its
    # functions is entered, the handle is closed (a typed error at once, no
    # hang), and a new handle writes at once.
    def opened(root: Path) -> IterationHistory | SnapshotStore:
        if kind == "history":
            history = IterationHistory(root / "h.jsonl", lock_timeout=HANG / 4)
            history.append({"i": 0})
            return history
        store = SnapshotStore(root / "s", lock_timeout=HANG / 4)
        store.save_snapshot(snap("a"))
        return store

    def write(handle: IterationHistory | SnapshotStore) -> object:
        if isinstance(handle, IterationHistory):
            return handle.append({"i": 1})
        return handle.save_snapshot(snap("b", i=1))

    probe = _InterruptAtCall(None)
    handle = opened(tmp_path / "probe")
    with probe:
        handle.close()
    for k in range(1, probe.calls + 1):
        fds = open_fds()
        handle = opened(tmp_path / f"k{k}")
        with contextlib.suppress(KeyboardInterrupt), _InterruptAtCall(k):
            handle.close()
        # Closed, or (interrupted before it began) still open: either way at once.
        with contextlib.suppress(ClosedError):
            finishes(functools.partial(write, handle))
        handle.close()  # releases whatever the interrupted close left open
        assert open_fds() == fds
        again = opened(tmp_path / f"k{k}")
        try:
            finishes(functools.partial(write, again))
            assert again.verify().ok
        finally:
            again.close()
