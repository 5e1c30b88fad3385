"""Every public error and warning survives pickle: as it is, and raised in a spawned worker.

A worker of a process pool sends its exception to the waiting parent pickled.
One that does not unpickle as itself reaches the parent as another error (a
TypeError from its constructor, a broken pool), and ``except LockTimeout``
there never matches.
"""

from __future__ import annotations

import errno
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import snapstore
from snapstore import (
    CheckpointWarning,
    ClosedError,
    CorruptionError,
    DurabilityError,
    FilesystemWarning,
    HistoryRecord,
    InheritedHandleError,
    InvalidInputError,
    KeyConflictError,
    LockTimeout,
    NotAHistoryError,
    NotAStoreError,
    NotFoundError,
    ReadOnlyError,
    SnapstoreError,
    StorageError,
    UnsupportedFilesystemError,
)
from workers import WAIT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HISTORY = Path("/data/runs/train.jsonl")
STORE = Path("/data/store")

# Each error as the library raises it: the same arguments, attributes and kind of message.
CASES: dict[str, Callable[[], BaseException]] = {
    "SnapstoreError": lambda: SnapstoreError(f"{STORE}: something went wrong"),
    "InvalidInputError": lambda: InvalidInputError("key 'a\\nb' contains a control character"),
    "KeyConflictError": lambda: KeyConflictError(
        "key 'step-3' is stored (seq 3) with other data than this append sends: a retry "
        "must send the same record; a new record needs a new key",
        HistoryRecord(3, datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), {"loss": 0.5}, "step-3"),
    ),
    "NotFoundError": lambda: NotFoundError(f"{HISTORY} has no record with seq 7"),
    "LockTimeout": lambda: LockTimeout(HISTORY.with_name("train.jsonl.lock"), 0.25),
    "CorruptionError": lambda: CorruptionError(HISTORY, 4096, 17, "record fails its checksum"),
    "CorruptionError-no-line": lambda: CorruptionError(
        STORE / "snapshots.jsonl", 12, None, "not a snapshot record: 'run_id'"
    ),
    "CorruptionError-not-repairable": lambda: CorruptionError(
        STORE / "snapshot_index.json", 0, None, "not a JSON object", repairable=False
    ),
    "NotAHistoryError": lambda: NotAHistoryError(
        f"{HISTORY} is not a snapstore history: it has no lock file beside it"
    ),
    "NotAStoreError": lambda: NotAStoreError(f"{STORE} is not a snapstore store"),
    "StorageError": lambda: StorageError(errno.ENOENT, f"{STORE}: no such directory"),
    "DurabilityError": lambda: DurabilityError(
        errno.EIO, f"fsync of {HISTORY} failed (Input/output error); reopen to write again"
    ),
    "ClosedError": lambda: ClosedError(f"{HISTORY} is closed"),
    "ReadOnlyError": lambda: ReadOnlyError(f"{HISTORY} was opened with read_only=True"),
    "InheritedHandleError": lambda: InheritedHandleError(
        f"{HISTORY} was opened in the parent of this forked process (pid 42)"
    ),
    "UnsupportedFilesystemError": lambda: UnsupportedFilesystemError(
        f"{HISTORY} is on a nfs4 file system"
    ),
    "CheckpointWarning": lambda: CheckpointWarning(f"{STORE}: the automatic checkpoint failed"),
    "FilesystemWarning": lambda: FilesystemWarning(f"{HISTORY} is on a nfs4 file system"),
}


def made(name: str) -> BaseException:
    error = CASES[name]()
    # State set after construction (a note, here) must travel too, not only the arguments.
    error.add_note(f"while testing {name}")
    return error


def raise_case(name: str) -> None:
    """Run in a spawned worker: the parent receives the error pickled."""
    raise made(name)


def assert_same(copy: BaseException, original: BaseException) -> None:
    assert type(copy) is type(original)
    assert str(copy) == str(original)
    assert copy.args == original.args
    assert vars(copy) == vars(original)
    if isinstance(original, OSError):
        assert isinstance(copy, OSError)
        assert (copy.errno, copy.strerror, copy.filename, copy.filename2) == (
            original.errno,
            original.strerror,
            original.filename,
            original.filename2,
        )


def test_every_public_error_and_warning_has_a_case() -> None:
    exported = {
        value
        for value in (getattr(snapstore, name) for name in snapstore.__all__)
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    assert {type(make()) for make in CASES.values()} == exported


@pytest.mark.parametrize("name", CASES)
def test_pickle_round_trip(name: str) -> None:
    original = made(name)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert_same(pickle.loads(pickle.dumps(original, protocol)), original)


class SpawnedWorker:
    """One spawned worker for every case, replaced when a case breaks it.

    The parent unpickles what the worker sends back; an error that fails to
    unpickle breaks the pool, and the next case then gets a new one: each case
    passes or fails on its own.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def raise_case(self, name: str) -> None:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            self._pool.submit(raise_case, name).result(WAIT)
        except BrokenProcessPool:
            self.close()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


@pytest.fixture(scope="module")
def worker() -> Iterator[SpawnedWorker]:
    spawned = SpawnedWorker()
    yield spawned
    spawned.close()


@pytest.mark.parametrize("name", CASES)
def test_raised_in_a_spawned_worker_is_caught_as_itself(worker: SpawnedWorker, name: str) -> None:
    expected = made(name)
    with pytest.raises(type(expected)) as info:
        worker.raise_case(name)
    assert_same(info.value, expected)


def test_corruption_error_keeps_its_advice_after_a_round_trip() -> None:
    repairable = pickle.loads(pickle.dumps(made("CorruptionError")))
    assert f"snapstore repair {HISTORY}" in str(repairable)
    not_repairable = pickle.loads(pickle.dumps(made("CorruptionError-not-repairable")))
    assert "snapstore repair" not in str(not_repairable)
