"""The writer lock: a writer waits at most lock_timeout for another one."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import TYPE_CHECKING

import pytest

from snapstore import IterationHistory, LockTimeout, SnapstoreError
from snapstore._io import FileSystem
from snapstore._lock import WriterLock
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
    assert timeout <= elapsed < timeout + 2.0
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

    def hold_briefly() -> None:
        with lock_holder:
            held.set()
            time.sleep(0.2)

    holder = threading.Thread(target=hold_briefly)
    with IterationHistory(history_path, lock_timeout=WAIT) as history:
        holder.start()
        try:
            assert held.wait(WAIT)
            started = time.monotonic()
            assert history.append({"waited": True}).seq == 1
            assert time.monotonic() - started > 0.1
        finally:
            holder.join()
