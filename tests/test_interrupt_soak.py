"""Interrupts at random moments: a timer signal's handler raises into the main thread.

The main thread appends to a history and saves snapshots while ``setitimer``
fires every few hundred microseconds and its handler raises, as Ctrl-C or a
timeout library does; meanwhile three threads append through the same
handles. Whatever the interrupt cut, no thread hangs or times out, every
acknowledged record stays, the handles go on writing, a fresh handle agrees
and verify is clean. ``SNAPSTORE_INTERRUPT_SOAK_SECONDS`` runs longer.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import threading
import time
from typing import TYPE_CHECKING, Self

import pytest

from helpers import check_log
from snapstore import HistoryRecord, IterationHistory, NormalizedSnapshot, SnapshotStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import FrameType

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer"), reason="this platform has no setitimer"
)

SECONDS = float(os.environ.get("SNAPSTORE_INTERRUPT_SOAK_SECONDS", "3"))
# Far below the test's length: a writer left waiting on a lock that an
# interrupt failed to give back would time out, and fail the test.
LOCK_TIMEOUT = 10.0


class Interrupted(BaseException):
    """What the timer's handler raises: not an Exception, like KeyboardInterrupt."""


class _Timer:
    """Fire SIGALRM at random intervals; the handler raises while ``inside`` a call.

    It clears ``inside`` as it raises, so that one interrupt, and no second
    one into the test's own handling of it, reaches each call.

    It does not raise while the main thread runs the garbage collector. A
    signal that arrives during a collection is handled at the next bytecode
    Python runs, and that is the first weakref callback or ``__del__`` the
    collector calls, for whatever garbage there is (earlier tests leave
    finished threads in reference cycles, whose collection runs
    ``threading._dangling``'s callback). Python prints an exception raised
    there as ignored and goes on: it never reaches the interrupted call, and
    pytest fails the test on the unraisable exception. The interrupt is left
    to the timer's next signal, after the collection.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.armed = False
        self.inside = False
        self.fired = 0
        self.collecting = False
        self._main = threading.get_ident()

    def _collection(self, phase: str, info: dict[str, int]) -> None:
        # The callbacks run in whichever thread collects, and signals are
        # handled in the main thread only: another thread's collection does
        # not stop an interrupt into the main thread's call.
        if threading.get_ident() == self._main:
            self.collecting = phase == "start"

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self._schedule()
        # A signal pending as a collection starts can be handled in this
        # callback itself, before it has set ``collecting``.
        in_collector = self.collecting or (
            frame is not None and frame.f_code is _Timer._collection.__code__
        )
        if self.inside and not in_collector:
            self.inside = False
            self.fired += 1
            raise Interrupted

    def _schedule(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.rng.uniform(0.0001, 0.003))

    def __enter__(self) -> Self:
        gc.callbacks.append(self._collection)
        self.previous = signal.signal(signal.SIGALRM, self._handler)
        self.armed = True
        self._schedule()
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        gc.callbacks.remove(self._collection)


def _writers(
    calls: list[Callable[[int], object]], stop: threading.Event, errors: list[BaseException]
) -> list[threading.Thread]:
    def run(call: Callable[[int], object]) -> None:
        i = 0
        try:
            while not stop.is_set():
                call(i)
                i += 1
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    return threads


def test_random_interrupts_into_a_writing_main_thread(tmp_path: Path) -> None:
    rng = random.Random(os.environ.get("SNAPSTORE_SEED", "interrupt-soak"))
    acknowledged: list[HistoryRecord] = []
    saved: list[NormalizedSnapshot] = []
    stop = threading.Event()
    errors: list[BaseException] = []
    with (
        IterationHistory(tmp_path / "h.jsonl", lock_timeout=LOCK_TIMEOUT) as history,
        SnapshotStore(tmp_path / "s", lock_timeout=LOCK_TIMEOUT, checkpoint_every=50) as store,
    ):
        threads = _writers(
            [
                lambda i: acknowledged.append(history.append({"thread": i})),
                lambda i: acknowledged.append(history.append({"keyed": i}, key=f"t-{i}")),
                lambda i: saved.append(store.save_snapshot(NormalizedSnapshot(f"t-{i}", "train"))),
            ],
            stop,
            errors,
        )
        attempts = 0
        deadline = time.monotonic() + SECONDS
        try:
            with _Timer(rng) as timer:
                while time.monotonic() < deadline:
                    attempts += 1
                    try:
                        timer.inside = True
                        if attempts % 3:
                            acknowledged.append(history.append({"main": attempts}))
                        else:
                            saved.append(
                                store.save_snapshot(NormalizedSnapshot(f"m-{attempts}", "eval"))
                            )
                        timer.inside = False
                    except Interrupted:
                        pass
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert not errors, errors[:3]
        assert timer.fired >= 100, f"only {timer.fired} interrupts fired"
        # The same handles go on writing, within a bound.
        acknowledged.append(history.append({"after": True}))
        saved.append(store.save_snapshot(NormalizedSnapshot("after", "eval")))
        assert history.verify().ok
        assert store.verify().ok

    records = check_log(tmp_path / "h.jsonl")
    stored = {record["seq"]: record["data"] for record in records}
    for record in acknowledged:
        assert stored[record.seq] == record.data
    with SnapshotStore(tmp_path / "s") as fresh:
        seqs = [snap.snapshot_seq for snap in fresh.snapshots()]
        assert seqs == list(range(1, len(seqs) + 1))
        for snap in saved:
            assert snap.snapshot_seq is not None
            assert fresh.get_by_seq(snap.snapshot_seq) == snap
