"""The PostgreSQL backend: the whole conformance suite and both machines, then its own cases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from postgres_server import new_schema, server_dsn
from snapstore import IterationHistory, SnapshotStore
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
    from collections.abc import Iterator

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
