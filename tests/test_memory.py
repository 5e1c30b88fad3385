"""The in-memory backend: the whole conformance suite and both machines, then its targets."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from snapstore import (
    InvalidInputError,
    IterationHistory,
    NormalizedSnapshot,
    SnapshotStore,
    StorageError,
)
from snapstore.backends.memory import MemoryHistory, MemoryStore
from snapstore.testing.conformance import (
    HistoryTableTests,
    HistoryTests,
    SnapshotStoreTests,
    StoreTableTests,
)
from snapstore.testing.harnesses import MemoryHistoryHarness, MemoryStoreHarness
from snapstore.testing.machines import HistoryMachine, SnapshotStoreMachine

if TYPE_CHECKING:
    from collections.abc import Iterator


class TestMemoryStore(SnapshotStoreTests):
    @pytest.fixture
    def harness(self) -> Iterator[MemoryStoreHarness]:
        harness = MemoryStoreHarness()
        yield harness
        harness.close_all()


class TestMemoryHistory(HistoryTests):
    @pytest.fixture
    def harness(self) -> Iterator[MemoryHistoryHarness]:
        harness = MemoryHistoryHarness()
        yield harness
        harness.close_all()


class TestMemoryStoreTables(StoreTableTests):
    @pytest.fixture
    def harness(self) -> Iterator[MemoryStoreHarness]:
        harness = MemoryStoreHarness()
        yield harness
        harness.close_all()


class TestMemoryHistoryTables(HistoryTableTests):
    @pytest.fixture
    def harness(self) -> Iterator[MemoryHistoryHarness]:
        harness = MemoryHistoryHarness()
        yield harness
        harness.close_all()


class MemoryStoreMachine(SnapshotStoreMachine):
    def __init__(self) -> None:
        self.target = MemoryStore()
        super().__init__()

    def open_store(self) -> SnapshotStore:
        return SnapshotStore(self.target)


class MemoryHistoryMachine(HistoryMachine):
    def __init__(self) -> None:
        self.target = MemoryHistory()
        super().__init__()

    def open_history(self) -> IterationHistory:
        return IterationHistory(self.target)


TestMemoryStoreMachine = MemoryStoreMachine.TestCase
TestMemoryHistoryMachine = MemoryHistoryMachine.TestCase


def snap(run_id: str, metric: float = 0.5) -> NormalizedSnapshot:
    return NormalizedSnapshot(run_id, "TRAINING", metrics={"auc": metric}, config={"lr": 0.1})


def test_a_named_url_is_one_store_in_the_process(request: pytest.FixtureRequest) -> None:
    url = f"memory://{request.node.name}"
    with SnapshotStore(url) as first:
        saved = first.save_snapshot(snap("run-1"))
        first.history("h").append({"loss": 1.0}, key="i0")
    with SnapshotStore(url, read_only=True) as again:
        assert again.get("run-1", "TRAINING") == saved
        assert [r.key for r in again.history("h")] == ["i0"]
        assert repr(again) == f"SnapshotStore({url!r})"


def test_a_bare_url_is_a_new_private_store_each_time() -> None:
    with SnapshotStore("memory://") as a, SnapshotStore("memory://") as b:
        a.save_snapshot(snap("run-1"))
        assert len(b) == 0


def test_a_named_history_url_is_one_history_in_the_process(
    request: pytest.FixtureRequest,
) -> None:
    url = f"memory://{request.node.name}"
    with IterationHistory(url) as first:
        first.append({"step": 1})
    with IterationHistory(url) as again:
        assert [r.data for r in again] == [{"step": 1}]


@pytest.mark.parametrize("kind", [SnapshotStore, IterationHistory])
def test_a_read_only_open_creates_nothing(
    kind: type[SnapshotStore | IterationHistory], request: pytest.FixtureRequest
) -> None:
    url = f"memory://{request.node.name}"
    with pytest.raises(StorageError, match="read-only open does not create"):
        kind(url, read_only=True)
    with pytest.raises(StorageError):
        kind(url, read_only=True)  # still nothing there


def test_a_history_has_no_path_and_a_store_no_root() -> None:
    with SnapshotStore("memory://") as store:
        with pytest.raises(AttributeError, match="not kept in files"):
            _ = store.root
        with pytest.raises(AttributeError, match="not kept in a file"):
            _ = store.history("h").path


@pytest.mark.parametrize("options", [{"checkpoint_every": 10}, {"strict": True}], ids=repr)
def test_options_of_the_local_backend_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="memory backend takes no option"):
        SnapshotStore("memory://", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["redis://localhost/0", "s3://bucket/store"])
def test_a_url_of_another_backend_is_refused(url: str) -> None:
    with pytest.raises(InvalidInputError, match="no store backend for"):
        SnapshotStore(url)
    with pytest.raises(InvalidInputError, match="no history backend for"):
        IterationHistory(url)


def test_threads_racing_on_an_empty_group_pin_one_baseline() -> None:
    target = MemoryStore()
    barrier = threading.Barrier(8)
    answers: list[NormalizedSnapshot] = []

    def race(i: int) -> None:
        with SnapshotStore(target) as store:
            barrier.wait()
            answers.append(store.get_or_establish_baseline(snap(f"run-{i}", i / 10)))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({a.snapshot_seq for a in answers}) == 1
    with SnapshotStore(target) as store:
        assert len(store) == 1  # only the winner was saved
