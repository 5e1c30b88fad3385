"""The PostgreSQL backend: the whole conformance suite and both machines, then its own cases."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psycopg
import pytest

from postgres_server import new_schema, server_dsn
from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore.backends.postgres import cache
from snapstore.backends.postgres.connection import Address
from snapstore.backends.postgres.schema import channel
from snapstore.testing.conformance import (
    HistoryTableTests,
    HistoryTests,
    SnapshotStoreTests,
    StoreTableTests,
)
from snapstore.testing.harnesses import (
    PostgresHistoryHarness,
    PostgresStoreHarness,
    drop_schema,
    with_query,
)
from snapstore.testing.machines import HistoryMachine, SnapshotStoreMachine

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from snapstore import Durability


def _store_harness(durability: Durability = "fsync") -> Iterator[PostgresStoreHarness]:
    harness = PostgresStoreHarness(server_dsn(), new_schema(), durability)
    yield harness
    harness.close_all()
    harness.drop()


def _history_harness(durability: Durability = "fsync") -> Iterator[PostgresHistoryHarness]:
    harness = PostgresHistoryHarness(server_dsn(), new_schema(), durability)
    yield harness
    harness.close_all()
    harness.drop()


class TestPostgresStore(SnapshotStoreTests):
    @pytest.fixture(params=["fsync", "write"])
    def harness(self, request: pytest.FixtureRequest) -> Iterator[PostgresStoreHarness]:
        yield from _store_harness(request.param)


class TestPostgresHistory(HistoryTests):
    @pytest.fixture(params=["fsync", "write"])
    def harness(self, request: pytest.FixtureRequest) -> Iterator[PostgresHistoryHarness]:
        yield from _history_harness(request.param)


class TestPostgresStoreTables(StoreTableTests):
    @pytest.fixture
    def harness(self) -> Iterator[PostgresStoreHarness]:
        yield from _store_harness()


class TestPostgresHistoryTables(HistoryTableTests):
    @pytest.fixture
    def harness(self) -> Iterator[PostgresHistoryHarness]:
        yield from _history_harness()


class PostgresStoreMachine(SnapshotStoreMachine):
    def __init__(self) -> None:
        self.dsn = server_dsn()
        self.schema = new_schema("m")
        super().__init__()

    def open_store(self) -> SnapshotStore:
        return SnapshotStore(with_query(self.dsn, schema=self.schema))

    def teardown(self) -> None:
        super().teardown()
        drop_schema(self.dsn, self.schema)


class PostgresHistoryMachine(HistoryMachine):
    def __init__(self) -> None:
        self.dsn = server_dsn()
        self.schema = new_schema("m")
        super().__init__()

    def open_history(self) -> IterationHistory:
        return IterationHistory(with_query(self.dsn, schema=self.schema, history="h"))

    def teardown(self) -> None:
        super().teardown()
        drop_schema(self.dsn, self.schema)


TestPostgresStoreMachine = PostgresStoreMachine.TestCase
TestPostgresHistoryMachine = PostgresHistoryMachine.TestCase


# -- the read cache ---------------------------------------------------------------------

_SAVE_ONE = (
    "import sys; from snapstore import SnapshotStore, NormalizedSnapshot\n"
    "with SnapshotStore(sys.argv[1]) as store:\n"
    "    store.save_snapshot(NormalizedSnapshot(sys.argv[2], 'TRAINING', config={'lr': 0.1}))\n"
)


@pytest.fixture
def store_url() -> Iterator[str]:
    dsn, schema = server_dsn(), new_schema()
    yield with_query(dsn, schema=schema)
    drop_schema(dsn, schema)


def _save_in_another_process(url: str, run_id: str) -> None:
    subprocess.run([sys.executable, "-c", _SAVE_ONE, url, run_id], check=True)


def _seen_within(seconds: float, look: Callable[[], object]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if look():
            return True
        time.sleep(0.001)
    return False


def test_a_cached_handle_sees_another_processes_save_once_notified(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "POLL_SECONDS", 3600.0)  # only the notification can tell
    with SnapshotStore(store_url) as store:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING", config={"lr": 0.1}))
        assert store.get("run-2", "TRAINING") is None  # an answer the cache now holds
        _save_in_another_process(store_url, "run-2")
        assert _seen_within(5, lambda: store.get("run-2", "TRAINING"))
        assert len(store) == 2


def test_refresh_takes_in_every_commit_at_once(store_url: str) -> None:
    with SnapshotStore(store_url) as store:
        assert store.get("run-2", "TRAINING") is None
        _save_in_another_process(store_url, "run-2")
        store.refresh()
        assert store.get("run-2", "TRAINING") is not None


def test_without_the_cache_every_read_asks_the_server(store_url: str) -> None:
    with SnapshotStore(store_url, read_cache=False) as store:
        assert store.get("run-2", "TRAINING") is None
        _save_in_another_process(store_url, "run-2")
        found = store.get("run-2", "TRAINING")
        assert found is not None
        assert (
            store.find_previous_comparable(
                NormalizedSnapshot("run-3", "TRAINING", config={"lr": 0.1})
            )
            == found
        )


def test_a_lost_notification_is_made_up_for_by_polling(store_url: str) -> None:
    with SnapshotStore(store_url) as store:
        assert store.get("run-2", "TRAINING") is None
        # End the cache's listening session on the server: its notifications stop.
        listening = f'LISTEN "{channel(Address(store_url).schema)}"'
        with psycopg.connect(server_dsn(), autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                (listening,),
            ).fetchall()
        assert ended == [(True,)]
        _save_in_another_process(store_url, "run-2")
        assert _seen_within(cache.POLL_SECONDS + 1, lambda: store.get("run-2", "TRAINING"))
        _save_in_another_process(store_url, "run-3")  # listening again, or polling: seen
        assert _seen_within(cache.POLL_SECONDS + 1, lambda: store.get("run-3", "TRAINING"))


def test_a_cache_over_its_size_still_answers_right(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    with SnapshotStore(store_url) as store, SnapshotStore(store_url) as other:
        saved = [
            store.save_snapshot(NormalizedSnapshot(f"run-{i}", "TRAINING", metrics={"i": i}))
            for i in range(10)
        ]
        for _ in range(2):
            assert [other.get(f"run-{i}", "TRAINING") for i in range(10)] == saved
        newer = store.save_snapshot(NormalizedSnapshot("run-0", "TRAINING", metrics={"i": 99}))
        assert other.get("run-0", "TRAINING") == newer


def test_a_forked_child_opens_a_cache_of_its_own(store_url: str) -> None:
    with SnapshotStore(store_url) as store:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
        pid = os.fork()
        if pid == 0:  # the child: a handle of its own, then out without cleanup
            status = 1
            try:
                with SnapshotStore(store_url) as own:
                    own.save_snapshot(NormalizedSnapshot("run-2", "TRAINING"))
                    status = 0 if own.get("run-1", "TRAINING") is not None else 1
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        store.refresh()
        assert store.get("run-2", "TRAINING") is not None
        assert len(store) == 2
