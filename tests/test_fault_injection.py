"""Every I/O call of an operation fails in turn: typed errors, and the file stays valid."""

from __future__ import annotations

import errno
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from helpers import check_log, check_reopens, harmless, open_fds, quarantined
from snapstore import (
    ClosedError,
    DurabilityError,
    HistoryRecord,
    IterationHistory,
    SnapstoreError,
    StorageError,
)
from snapstore._log.seam import installed
from snapstore.testing import FaultInjector

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from snapstore import Durability

# Descriptor counts are compared: see helpers.open_fds.
pytestmark = pytest.mark.usefixtures("gc_paused")


TORN_TAIL = b'{"seq":4,"ts":"2026-01-01T00:00:00.000000+00:00","v":"0.1'


@dataclass(frozen=True)
class Scenario:
    """A write operation on a log of three acknowledged records (and maybe a torn tail)."""

    operation: Callable[[IterationHistory], HistoryRecord | list[HistoryRecord]]
    torn_tail: bool = False


SCENARIOS = {
    "append": Scenario(lambda h: h.append({"new": 1})),
    "append-with-new-key": Scenario(lambda h: h.append({"new": 1}, key="new")),
    "append-with-stored-key": Scenario(lambda h: h.append({"i": 2}, key="stored")),
    "extend": Scenario(lambda h: h.extend([{"new": 1}, {"new": 2}, {"new": 3}])),
    "append-after-torn-tail": Scenario(lambda h: h.append({"new": 1}), torn_tail=True),
}

FAULTS = {
    "EIO": FaultInjector(error=errno.EIO),
    "ENOSPC": FaultInjector(error=errno.ENOSPC),
    "EIO-persistent": FaultInjector(error=errno.EIO, persistent=True),
    "ENOSPC-persistent": FaultInjector(error=errno.ENOSPC, persistent=True),
    "ENOSPC-torn-write": FaultInjector(error=errno.ENOSPC, torn_writes=True),
    "ENOSPC-persistent-torn-write": FaultInjector(
        error=errno.ENOSPC, persistent=True, torn_writes=True
    ),
}


def prepare(path: Path, scenario: Scenario) -> list[HistoryRecord]:
    """Three acknowledged records, written with the real file system."""
    path.parent.mkdir(parents=True)
    with IterationHistory(path) as history:
        acknowledged = [history.append({"i": i}) for i in range(2)]
        acknowledged.append(history.append({"i": 2}, key="stored"))
    if scenario.torn_tail:
        with path.open("ab") as file:
            file.write(TORN_TAIL)
    return acknowledged


def calls_of(path: Path, scenario: Scenario, durability: Durability) -> int:
    """How many I/O calls the operation makes when nothing fails."""
    prepare(path, scenario)
    fs = FaultInjector()
    with installed(fs), IterationHistory(path, durability=durability) as history:
        fs.arm(None)
        scenario.operation(history)
        return len(fs.calls)


def fail_call(
    path: Path, scenario: Scenario, durability: Durability, fs: FaultInjector, k: int
) -> None:
    """Fail the k-th call of the operation; check the handle and the file after it."""
    acknowledged = prepare(path, scenario)
    fds = open_fds()
    with installed(fs), IterationHistory(path, durability=durability) as history:
        fs.arm(k)
        try:
            result = scenario.operation(history)
        except SnapstoreError as exc:
            error: SnapstoreError | None = exc
        else:
            assert harmless(fs.calls, k), fs.calls
            acknowledged.extend(result if isinstance(result, list) else [result])
            error = None
        assert fs.faults >= 1
        fs.arm(None)
        if error is not None:
            assert isinstance(error, StorageError), error
            assert error.errno == fs.error
        if isinstance(error, DurabilityError):
            # The kernel may have dropped the pages: no write may claim success now.
            with pytest.raises(ClosedError, match="reopen"):
                history.append({"after": "failed sync"})
        else:
            # Nothing was acknowledged, nothing is assumed: the handle goes on.
            acknowledged.append(history.append({"after": "fault"}))
    assert open_fds() == fds

    # A fresh handle, on the real file system, finds every acknowledged record.
    check_reopens(path, acknowledged)
    with IterationHistory(path) as writer:
        writer.append({"after": "reopen"})
    check_log(path)
    if scenario.torn_tail:
        assert TORN_TAIL in quarantined(path)


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_each_call_of_a_write_fails(
    tmp_path: Path, scenario: Scenario, fault: FaultInjector, durability: Durability
) -> None:
    count = calls_of(tmp_path / "probe" / "history.jsonl", scenario, durability)
    # Every scenario reaches the disk more than once (a retry of a stored key
    # stats the log and reads the stored record), so several faults are tried.
    assert count >= 2
    for k in range(1, count + 1):
        fail_call(tmp_path / f"k-{k}" / "history.jsonl", scenario, durability, fault, k)


def test_a_failed_sync_makes_the_handle_refuse_writes(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    fs = FaultInjector(only={"sync"})
    with installed(fs), IterationHistory(path) as history:
        history.append({"i": 1})
        fs.arm(1)
        with pytest.raises(DurabilityError, match="may not be durable") as info:
            history.append({"i": 2})
        assert isinstance(info.value, OSError)
        fs.arm(None)
        for write in (lambda: history.append({"i": 3}), lambda: history.extend([{"i": 3}])):
            with pytest.raises(ClosedError):
                write()
        # Reading goes on: the record of the failed call may or may not be stored.
        assert history.get(1).data == {"i": 1}
        assert fs.calls == []  # refused before any I/O
    with IterationHistory(path) as reopened:
        assert reopened.append({"i": 4}).seq == 3


def test_group_commit_reports_a_failed_sync_to_every_waiting_caller(tmp_path: Path) -> None:
    # Every caller of a failed batch gets the error; none is told its record is durable.
    path = tmp_path / "history.jsonl"
    fs = FaultInjector(only={"sync"}, persistent=True)
    errors: list[BaseException] = []
    results: list[HistoryRecord] = []
    barrier = threading.Barrier(6)

    def append(history: IterationHistory, n: int) -> None:
        barrier.wait()
        try:
            results.append(history.append({"n": n}))
        except SnapstoreError as exc:
            errors.append(exc)

    with installed(fs), IterationHistory(path) as history:
        fs.arm(1)
        threads = [threading.Thread(target=append, args=(history, n)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        fs.arm(None)
    assert results == []
    assert len(errors) == 6
    assert all(isinstance(e, DurabilityError | ClosedError) for e in errors)
    check_reopens(path, [])


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
@pytest.mark.parametrize("exists", [False, True], ids=["new-file", "existing-file"])
def test_each_call_of_open_fails(tmp_path: Path, code: int, exists: bool) -> None:
    def new_path(name: str) -> Path:
        # The parent is missing, so opening creates it.
        path = tmp_path / name / "sub" / "history.jsonl"
        if exists:
            prepare(path, SCENARIOS["append-after-torn-tail"])
        return path

    probe = new_path("probe")
    fs = FaultInjector(error=code)
    with installed(fs), IterationHistory(probe):
        count = len(fs.calls)
    for k in range(1, count + 1):
        path = new_path(f"k-{k}")
        fds = open_fds()
        fs.arm(k)
        with installed(fs), pytest.raises(StorageError) as info:
            IterationHistory(path)
        assert info.value.errno == code
        assert open_fds() == fds
        with IterationHistory(path) as history:
            history.append({"after": "fault"})
        check_log(path)


READS: dict[str, Callable[[IterationHistory], object]] = {
    "get": lambda h: h.get(2),
    "iter": list,
    "len": len,
    "load_recent": lambda h: h.load_recent(2),
    "refresh": lambda h: h.refresh(),
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_each_call_of_a_read_fails(
    tmp_path: Path, read: Callable[[IterationHistory], object]
) -> None:
    path = tmp_path / "log" / "history.jsonl"
    prepare(path, SCENARIOS["append"])
    fs = FaultInjector()
    with installed(fs), IterationHistory(path) as history:
        fs.arm(None)
        expected = read(history)
        count = len(fs.calls)
        for k in range(1, count + 1):
            fs.arm(k)
            with pytest.raises(StorageError):
                read(history)
            fs.arm(None)
            assert read(history) == expected
