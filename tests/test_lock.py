"""The writer lock: a writer waits at most lock_timeout for another one."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import TYPE_CHECKING

import pytest

from snapstore import IterationHistory, LockTimeout, SnapstoreError
from snapstore._log import lock as lock_module
from snapstore._log.lock import WriterLock
from snapstore._log.seam import FileSystem
from workers import WAIT, hold_lock

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def lock_holder(history_path: Path) -> Iterator[WriterLock]:
    """Another holder of the history's lock in this process (its own descriptor)."""
    lock = WriterLock(history_path.with_name(history_path.name + ".lock"), FileSystem(), 1.0)
    try:
        yield lock
    finally:
        lock.close()


def assert_times_out(history: IterationHistory, timeout: float) -> None:
    before = history.path.read_bytes()
    started = time.monotonic()
    with pytest.raises(LockTimeout) as info:
        history.append({"blocked": True})
    elapsed = time.monotonic() - started
    # The upper bound only catches a writer that ignores its timeout: the holder
    # never releases, so such a writer would wait until WAIT. How close to the
    # deadline it gives up is a property of the code, not of how busy the
    # machine is: test_a_writer_gives_up_within_one_pause_of_its_deadline
    # measures it on a virtual clock.
    assert timeout <= elapsed < timeout + WAIT
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, SnapstoreError)
    assert info.value.timeout == timeout
    assert str(info.value.path) in str(info.value)
    assert history.path.read_bytes() == before


@pytest.mark.parametrize("timeout", [0.2, 0.0])
def test_lock_timeout_when_another_handle_holds_the_lock(
    history_path: Path, lock_holder: WriterLock, timeout: float
) -> None:
    with IterationHistory(history_path, lock_timeout=timeout) as history:
        history.append({"before": True})
        with lock_holder:
            assert_times_out(history, timeout)
            # Readers take no lock.
            assert len(history) == 1
            assert history.get(1).data == {"before": True}
        assert history.append({"after": True}).seq == 2


def test_lock_timeout_when_another_process_holds_the_lock(history_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    child = context.Process(target=hold_lock, args=(str(history_path), held, release))
    child.start()
    try:
        assert held.wait(WAIT)
        with IterationHistory(history_path, lock_timeout=0.2) as history:
            assert_times_out(history, 0.2)
            release.set()
            child.join(WAIT)
            assert child.exitcode == 0
            # The lock is free once its holder has gone.
            assert history.append({"after": True}).seq == 1
    finally:
        release.set()
        child.join(WAIT)
        if child.is_alive():
            child.kill()
            child.join()


def test_waiting_writer_proceeds_once_the_lock_is_released(
    history_path: Path, lock_holder: WriterLock
) -> None:
    held = threading.Event()
    releasing = threading.Event()
    acquired_at: list[float] = []

    def hold_briefly() -> None:
        with lock_holder:
            acquired_at.append(time.monotonic())
            held.set()
            time.sleep(0.2)
            releasing.set()

    holder = threading.Thread(target=hold_briefly)
    with IterationHistory(history_path, lock_timeout=WAIT) as history:
        holder.start()
        try:
            assert held.wait(WAIT)
            assert history.append({"waited": True}).seq == 1
            # Both measured from the holder's side, so a main thread slow to be
            # scheduled cannot make them fail: the append returned only after
            # the holder had started to release, and so at least the holder's
            # 0.2 s after it took the lock.
            assert releasing.is_set()
            assert time.monotonic() - acquired_at[0] > 0.1
        finally:
            holder.join()


class _VirtualClock:
    """Stands in for the ``time`` module in ``_lock``: sleeping advances the clock, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps += 1
        self.now += seconds


@pytest.mark.parametrize("timeout", [0.2, 5.0])
def test_a_writer_gives_up_within_one_pause_of_its_deadline(
    history_path: Path, lock_holder: WriterLock, monkeypatch: pytest.MonkeyPatch, timeout: float
) -> None:
    # What a wall-clock bound would say, without depending on the machine's speed:
    # the writer polls until its deadline and gives up at the first look past it.
    with IterationHistory(history_path, lock_timeout=timeout) as history:
        clock = _VirtualClock()
        monkeypatch.setattr(lock_module, "time", clock)
        started = clock.now
        with lock_holder, pytest.raises(LockTimeout):
            history.append({"blocked": True})
        waited = clock.now - started
        assert timeout <= waited <= timeout + lock_module._MAX_BACKOFF
        # It polled with growing pauses, not once per microsecond.
        assert clock.sleeps < timeout / lock_module._MAX_BACKOFF + 20
