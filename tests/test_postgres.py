"""The PostgreSQL backend: the whole conformance suite and both machines, then its own cases."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import psycopg
import pytest

from postgres_server import new_schema, server_dsn
from snapstore import (
    InvalidInputError,
    IterationHistory,
    LockTimeout,
    NormalizedSnapshot,
    NotAStoreError,
    SnapshotStore,
    StorageError,
)
from snapstore.backends.postgres import cache, connection
from snapstore.backends.postgres import schema as postgres_schema
from snapstore.backends.postgres.connection import Address
from snapstore.backends.postgres.schema import channel, ensure_schema
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
    postgres_rows,
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


# -- addresses, schemas and options ------------------------------------------------------


@pytest.mark.parametrize("schema", ["", "Upper", "1st", "pg_catalog", "a-b", "x" * 64, "a;drop"])
def test_a_schema_that_is_no_plain_identifier_is_refused(schema: str) -> None:
    with pytest.raises(InvalidInputError, match="schema must be"):
        SnapshotStore(f"postgresql://nobody@127.0.0.1:1/db?schema={schema}")


def test_the_location_hides_the_password() -> None:
    assert Address("postgresql://me:secret@host:5432/db?schema=s").location == (
        "postgresql://me:***@host:5432/db?schema=s"
    )


def test_a_history_url_and_a_store_url_are_not_mixed_up(store_url: str) -> None:
    with pytest.raises(InvalidInputError, match="names a history"):
        SnapshotStore(f"{store_url}&history=h")
    with pytest.raises(InvalidInputError, match="&history=NAME"):
        IterationHistory(store_url)
    with pytest.raises(InvalidInputError, match="history name"):
        IterationHistory(f"{store_url}&history=a/b")


def test_options_of_the_local_backend_are_refused(store_url: str) -> None:
    with pytest.raises(InvalidInputError, match="PostgreSQL backend takes no option"):
        SnapshotStore(store_url, checkpoint_every=10)
    with pytest.raises(InvalidInputError, match="read_cache must be True or False"):
        SnapshotStore(store_url, read_cache="no")


def test_a_read_only_open_of_no_store_creates_nothing(store_url: str) -> None:
    schema = Address(store_url).schema
    with pytest.raises(NotAStoreError, match="holds no snapstore store"):
        SnapshotStore(store_url, read_only=True)
    with pytest.raises(NotAStoreError):
        IterationHistory(f"{store_url}&history=h", read_only=True)
    assert postgres_rows(server_dsn(), schema) == {}


def test_a_schema_of_other_tables_is_refused_and_left_alone(store_url: str) -> None:
    schema = Address(store_url).schema
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".orders (id int)')
    with pytest.raises(NotAStoreError, match="holds tables but no snapstore store"):
        SnapshotStore(store_url)
    assert postgres_rows(server_dsn(), schema) == {"orders": []}


def test_a_store_of_a_newer_schema_version_is_refused(store_url: str) -> None:
    with SnapshotStore(store_url):
        pass
    with psycopg.connect(server_dsn(), autocommit=True) as conn:
        conn.execute(
            f"UPDATE \"{Address(store_url).schema}\".meta SET value = '99' "
            "WHERE name = 'schema_version'"
        )
    with pytest.raises(NotAStoreError, match="newer than this snapstore"):
        SnapshotStore(store_url)


_FIRST_OPEN = (
    "import sys; from snapstore import SnapshotStore, NormalizedSnapshot\n"
    "with SnapshotStore(sys.argv[1]) as store:\n"
    "    for i in range(5):\n"
    "        store.save_snapshot(NormalizedSnapshot(f'{sys.argv[2]}-{i}', 'TRAINING'))\n"
)


def test_processes_opening_a_new_store_at_once_all_write_to_one(store_url: str) -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", _FIRST_OPEN, store_url, f"p{n}"]) for n in range(8)
    ]
    assert [child.wait(timeout=60) for child in children] == [0] * 8
    with SnapshotStore(store_url, read_only=True) as store:
        assert [snap.snapshot_seq for snap in store.snapshots()] == list(range(1, 41))


def test_a_save_waits_for_a_held_lock_no_longer_than_lock_timeout(store_url: str) -> None:
    with SnapshotStore(store_url, lock_timeout=0.2) as store:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
        with psycopg.connect(server_dsn()) as holder:  # a transaction holding the counter row
            holder.execute(
                f'SELECT 1 FROM "{Address(store_url).schema}".counters '
                "WHERE name = 'snapshots' FOR UPDATE"
            )
            started = time.monotonic()
            with pytest.raises(LockTimeout):
                store.save_snapshot(NormalizedSnapshot("run-2", "TRAINING"))
            assert time.monotonic() - started < 5
        assert len(store) == 1
        assert store.save_snapshot(NormalizedSnapshot("run-2", "TRAINING")).snapshot_seq == 2


@pytest.mark.parametrize(("durability", "setting"), [("fsync", "on"), ("write", "off")])
def test_durability_is_the_sessions_synchronous_commit(
    store_url: str, durability: Durability, setting: str
) -> None:
    with SnapshotStore(store_url, durability=durability) as store:
        conns = store._backend._conns  # type: ignore[attr-defined]
        with conns.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == (setting,)


def test_without_psycopg_the_error_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from snapstore import SnapshotStore\n"
        "try:\n"
        "    SnapshotStore('postgresql://host/db')\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'snapstore[postgres]'" in out


def test_a_catch_up_that_failed_is_made_again_by_the_next_read(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "POLL_SECONDS", 3600.0)  # only the notification can tell
    with SnapshotStore(store_url) as store:
        assert store.get("run-2", "TRAINING") is None  # an answer the cache now holds
        _save_in_another_process(store_url, "run-2")
        # The next read is woken by the notification; its catch-up then finds
        # its connection ended by the server, and fails at once.
        monkeypatch.setattr(connection, "RECONNECT_SECONDS", 0.0)
        conns = store._backend._conns  # type: ignore[attr-defined]
        pids = [conn.info.backend_pid for conn in conns._idle]
        with psycopg.connect(server_dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid", (pids,))
        assert _seen_within(5, lambda: _waiting(store))
        with pytest.raises(StorageError):
            store.get("run-2", "TRAINING")
        assert store.get("run-2", "TRAINING") is not None


def _waiting(store: SnapshotStore) -> bool:
    """Whether a notification waits on the store's cache's listening connection."""
    listener = store._backend._cache._listener  # type: ignore[attr-defined]
    return bool(select.select([listener.fileno()], [], [], 0)[0])


def test_each_attempt_to_connect_is_bounded_unless_the_url_says_otherwise() -> None:
    assert "connect_timeout=10" in Address("postgresql://h/db?schema=s").conninfo
    given = Address("postgresql://h/db?schema=s&connect_timeout=3").conninfo
    assert "connect_timeout=3" in given
    assert "connect_timeout=10" not in given


def test_a_table_dropped_under_the_store_is_a_storage_error(store_url: str) -> None:
    with SnapshotStore(store_url, read_cache=False) as store:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
        with psycopg.connect(server_dsn(), autocommit=True) as admin:
            admin.execute(f'DROP TABLE "{Address(store_url).schema}".baselines')
        with pytest.raises(StorageError, match="baselines"):
            store.baseline("TRAINING", "any")
        assert store.get("run-1", "TRAINING") is not None  # the connection is still good


def test_an_open_that_waited_for_the_creator_finds_the_store_it_created(store_url: str) -> None:
    # The opener looks for the store first, finds none, and queues behind the
    # creator: when its turn comes, it must see the store just committed.
    schema = Address(store_url).schema
    lock = (postgres_schema._LOCK_SPACE, schema)
    with psycopg.connect(server_dsn(), autocommit=True) as creator:
        opened: list[object] = []
        creator.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", lock)  # as a creator holds it
        with creator.transaction():
            ensure_schema(creator, schema)  # created, not yet committed
            opener = threading.Thread(target=lambda: opened.append(_open_and_close(store_url)))
            opener.start()
            assert _seen_within(10, lambda: _waiting_on_an_advisory_lock(creator))
        creator.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", lock)
        opener.join(30)
    assert opened == ["opened"]


def _open_and_close(url: str) -> object:
    try:
        with SnapshotStore(url) as store:
            store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
    except Exception as exc:
        return exc
    return "opened"


def _waiting_on_an_advisory_lock(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return bool(row and row[0])
