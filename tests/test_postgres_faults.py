"""Faults of the network and of the server, made for real: no write lost, none made twice.

A proxy between a handle and the server cuts a connection after the server
committed a write (a save, a batch of saves, an append) and before its
answer arrives: the handle's retry must find the committed rows by the
write's identity, not write them again. A server out of reach for longer
than the retry bound must end the call with StorageError, in bounded time.

Then a private cluster is crashed under writing threads that keep every
acknowledgement, by an immediate-mode restart and by SIGKILL to its
postmaster: with durability="fsync" every acknowledged write is found at its
seq; with "write" the last ones may be lost. Either way none is stored
twice and the seqs are gap-free.
"""

from __future__ import annotations

import abc
import contextlib
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from postgres_server import new_schema, private_cluster, server_dsn
from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore, StorageError
from snapstore.backends.postgres import connection
from snapstore.backends.postgres.store import PostgresSnapshotBackend
from snapstore.testing.harnesses import drop_schema, with_query
from tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from postgres_server import PrivateCluster
    from snapstore import Durability, HistoryRecord

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the private cluster is POSIX's")

# -- a connection cut after the commit -------------------------------------------


@dataclass(frozen=True)
class Proxied:
    """A store (in ``schema`` of ``dsn``): its URL straight to the server, and through the proxy."""

    dsn: str
    schema: str
    direct: str
    proxied: str
    proxy: TcpProxy


@pytest.fixture
def proxied() -> Iterator[Proxied]:
    dsn = server_dsn()
    schema = new_schema("f")
    server = urlsplit(dsn)
    assert server.hostname is not None
    try:
        with TcpProxy((server.hostname, server.port or 5432)) as proxy:
            through = urlunsplit(server._replace(netloc=_with_port(server.netloc, proxy.port)))
            yield Proxied(
                dsn,
                schema,
                with_query(dsn, schema=schema),
                with_query(through, schema=schema),
                proxy,
            )
    finally:
        drop_schema(dsn, schema)


def _with_port(netloc: str, port: int) -> str:
    user, at, _ = netloc.rpartition("@")
    return f"{user}{at}127.0.0.1:{port}"


def test_a_save_cut_after_its_commit_is_found_not_made_again(proxied: Proxied) -> None:
    first = NormalizedSnapshot("run", "train", metrics={"loss": 1.0})
    newer = NormalizedSnapshot("run", "train", metrics={"loss": 0.5})
    with SnapshotStore(proxied.direct) as direct, SnapshotStore(proxied.proxied) as client:
        committed: list[NormalizedSnapshot] = []

        def meanwhile() -> None:
            # The server has answered; the client waits. The save is stored,
            # and a newer version makes it no longer the latest: only its
            # save_id tells the retry it was made (equal content would not).
            committed.extend(direct.snapshots())
            direct.save_snapshot(newer)

        cut = proxied.proxy.cut_next_reply(then=meanwhile)
        connections = proxied.proxy.accepted
        saved = client.save_snapshot(first)
        cut.wait(timeout=5)

        assert committed == [saved]
        assert proxied.proxy.accepted == connections + 1  # one retry, on a new connection
        stored = list(direct.snapshots())
        assert [snap.snapshot_seq for snap in stored] == [1, 2]
        assert stored[0] == saved
        assert stored[1].metrics == newer.metrics
        assert len(client) == 2


def test_a_batch_of_saves_cut_after_its_commit_is_found_not_made_again(
    proxied: Proxied,
) -> None:
    snaps = [NormalizedSnapshot(name, "train", metrics={"loss": 1.0}) for name in "abc"]
    with (
        SnapshotStore(proxied.direct) as direct,
        SnapshotStore(proxied.proxied) as client,
        ThreadPoolExecutor(3) as threads,
    ):
        backend = client._backend
        assert isinstance(backend, PostgresSnapshotBackend)
        committed: list[NormalizedSnapshot] = []

        def meanwhile() -> None:
            # As for one save: the batch's two saves are stored, then newer
            # versions of both make them no longer the latest.
            committed.extend(direct.snapshots())
            for snap in snaps[1:]:
                direct.save_snapshot(replace(snap, metrics={"loss": 0.5}))

        with _counter_locked(proxied):
            # The first save is sent and waits on the server for the lock;
            # two more queue behind it, to be sent together once it is done.
            first = threads.submit(client.save_snapshot, snaps[0])
            _wait_until(lambda: _waiting_for_a_lock(proxied), "the first save waited")
            batch = [threads.submit(client.save_snapshot, snap) for snap in snaps[1:]]
            _wait_until(lambda: len(backend._saves._pending) == 2, "two saves queued")
            cut = proxied.proxy.cut_next_reply(then=meanwhile)
            connections = proxied.proxy.accepted
        saved = sorted((save.result(timeout=30) for save in batch), key=_seq)
        cut.wait(timeout=5)

        assert committed == [first.result(), *saved]
        assert proxied.proxy.accepted == connections + 1
        stored = list(direct.snapshots())
        assert [_seq(snap) for snap in stored] == [1, 2, 3, 4, 5]
        assert stored[:3] == committed
        assert [snap.metrics["loss"] for snap in stored[3:]] == [0.5, 0.5]


@contextlib.contextmanager
def _counter_locked(store: Proxied) -> Iterator[None]:
    """The store's seq counter locked by a transaction of its own: every save waits."""
    with psycopg.connect(store.dsn) as conn:  # commits (unlocks) and closes at the end
        conn.execute(
            sql.SQL("SELECT FROM {}.counters WHERE name = 'snapshots' FOR UPDATE").format(
                sql.Identifier(store.schema)
            )
        )
        yield


def _waiting_for_a_lock(store: Proxied) -> bool:
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %s",
            (f"%{store.schema}%",),
        ).fetchone()
    return row is not None and row[0] > 0


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    # For a state of another thread or of the server, which no event signals.
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.01)


def _seq(snap: NormalizedSnapshot) -> int:
    assert snap.snapshot_seq is not None
    return snap.snapshot_seq


def _append(history: IterationHistory) -> list[HistoryRecord]:
    return [history.append({"step": 1})]


def _append_keyed(history: IterationHistory) -> list[HistoryRecord]:
    return [history.append({"step": 1}, key="step-1")]


def _extend(history: IterationHistory) -> list[HistoryRecord]:
    return history.extend([{"step": 1}, {"step": 2}, {"step": 3}])


@pytest.mark.parametrize("write", [_append, _append_keyed, _extend], ids=lambda w: w.__name__)
def test_an_append_cut_after_its_commit_is_found_not_made_again(
    proxied: Proxied, write: Callable[[IterationHistory], list[HistoryRecord]]
) -> None:
    with (
        IterationHistory(with_query(proxied.direct, history="h")) as direct,
        IterationHistory(with_query(proxied.proxied, history="h")) as client,
    ):
        committed: list[HistoryRecord] = []

        def meanwhile() -> None:
            # As for the save: a record appended after the lost answer, so
            # that the retry cannot take the history's end for its own.
            committed.extend(direct)
            direct.append({"other": True})

        cut = proxied.proxy.cut_next_reply(then=meanwhile)
        connections = proxied.proxy.accepted
        written = write(client)
        cut.wait(timeout=5)

        assert committed == written
        assert proxied.proxy.accepted == connections + 1
        stored = list(direct)
        assert [record.seq for record in stored] == list(range(1, len(written) + 2))
        assert stored[:-1] == written
        assert stored[-1].data == {"other": True}


def test_a_call_slower_than_the_retry_bound_is_still_retried_when_cut(
    proxied: Proxied, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bound counts from the moment the connection broke: a save that
    # waited longer than that on the server (for a lock, a flush) before
    # its connection broke gets the whole bound to reconnect, not none.
    bound = 1.0
    monkeypatch.setattr(connection, "RECONNECT_SECONDS", bound)
    with SnapshotStore(proxied.proxied) as client:
        # A sleep, not an event: what is waited for is time passing.
        cut = proxied.proxy.cut_next_reply(then=lambda: time.sleep(bound + 0.5))
        saved = client.save_snapshot(NormalizedSnapshot("run", "train", metrics={"loss": 1.0}))
        cut.wait(timeout=5)

        assert len(client) == 1
        assert client.get_by_seq(1) == saved


def test_a_server_out_of_reach_past_the_retry_bound_raises_storage_error(
    proxied: Proxied, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 2.0
    monkeypatch.setattr(connection, "RECONNECT_SECONDS", bound)
    with SnapshotStore(proxied.proxied) as client:
        client.save_snapshot(NormalizedSnapshot("run", "train", metrics={"loss": 1.0}))
        proxied.proxy.refuse()
        proxied.proxy.cut_all()
        began = time.monotonic()
        with pytest.raises(StorageError, match="cannot be reached"):
            client.save_snapshot(NormalizedSnapshot("run", "train", metrics={"loss": 0.5}))
        took = time.monotonic() - began

        # It kept trying, on new connections, until the next pause (1 s at
        # most) would have crossed the bound, and not past it.
        assert proxied.proxy.refused >= 2
        assert bound - 1.0 <= took < bound + 1.0
        proxied.proxy.refuse(refusing=False)
        assert len(client) == 1  # the failed save wrote nothing
        resaved = client.save_snapshot(NormalizedSnapshot("run", "train", metrics={"loss": 0.5}))
        assert resaved.snapshot_seq == 2


# -- the server crashed under writers --------------------------------------------

# Acknowledged writes each writer makes before the crash, and after the server is back.
BEFORE = 15
AFTER = 15
# How long a writer may take, at most, to finish once the server is back:
# it reconnects within the retry bound or raises (never hangs).
FINISH_SECONDS = connection.RECONNECT_SECONDS + 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as started:
        yield started


class Writer(abc.ABC):
    """A thread that writes ``n`` = 1, 2, 3, ... and keeps the seq of each acknowledged write."""

    def __init__(self, name: str, store: SnapshotStore, back: threading.Event) -> None:
        self.name = name
        self.store = store
        self._back = back
        self.acknowledged: dict[int, int] = {}  # n -> seq
        self.error: BaseException | None = None
        self.warm = threading.Event()  # set after BEFORE writes (or an error)
        self.thread = threading.Thread(target=self._run, daemon=True)

    @abc.abstractmethod
    def write(self, n: int) -> int:
        """Write ``n``; return its seq."""

    def _run(self) -> None:
        try:
            self._write_until_done()
        except BaseException as exc:  # checked by the test
            self.error = exc
        finally:
            self.warm.set()

    def _write_until_done(self) -> None:
        n = after = 0
        while after < AFTER:
            n += 1
            # Read before the write: only a write begun after the server is
            # back counts as one after it.
            back = self._back.is_set()
            self.acknowledged[n] = self.write(n)
            after += back
            if n == BEFORE:
                self.warm.set()


class SnapshotWriter(Writer):
    """Saves versions of the run ``name``."""

    def write(self, n: int) -> int:
        return _seq(self.store.save_snapshot(NormalizedSnapshot(self.name, "step", data={"n": n})))


class HistoryWriter(Writer):
    """Appends to the history ``name``, every other record with a key."""

    def write(self, n: int) -> int:
        key = f"n-{n}" if n % 2 else None
        return self.store.history(self.name).append({"n": n}, key=key).seq


# What a store holds after a crash: (run_id or history, data, seq) of each
# snapshot, then of each record, in seq order.
Stored = list[tuple[str, Any, int]]


@pytest.fixture
def crash_store(cluster: PrivateCluster) -> Iterator[str]:
    schema = new_schema("crash")
    yield with_query(cluster.dsn, schema=schema)
    drop_schema(cluster.dsn, schema)


@pytest.mark.parametrize("crash", ["restart", "kill"])
def test_a_server_crash_loses_no_acknowledged_fsync_write_and_repeats_none(
    cluster: PrivateCluster, crash_store: str, crash: str
) -> None:
    savers, appender, snapshots, records = _crash_under_writers(
        cluster, crash_store, crash, "fsync"
    )
    _check_each_write_once(snapshots, savers)
    _check_each_write_once(records, [appender])


@pytest.mark.parametrize("crash", ["restart", "kill"])
def test_a_server_crash_may_lose_the_last_write_mode_writes_but_moves_or_repeats_none(
    cluster: PrivateCluster, crash_store: str, crash: str
) -> None:
    # With "write" the server acknowledges a commit before its WAL is
    # flushed: a crash may lose the last ones (their seqs then go to later
    # writes), but it never stores a write twice, at another seq, or leaves a gap.
    savers, appender, snapshots, records = _crash_under_writers(
        cluster, crash_store, crash, "write"
    )
    _check_each_write_once(snapshots, savers, may_lose=True)
    _check_each_write_once(records, [appender], may_lose=True)


def _crash_under_writers(
    cluster: PrivateCluster, url: str, crash: str, durability: Durability
) -> tuple[list[Writer], Writer, Stored, Stored]:
    """Crash the server (``restart`` or ``kill``) while writers write; what they and it hold.

    Two handles, two threads saving on each: the saves of one handle's
    threads meeting are sent in one call (see ``batch``), and the handles
    take turns at the counter row. A third thread appends on one of them.
    """
    back = threading.Event()
    with (
        SnapshotStore(url, durability=durability) as one,
        SnapshotStore(url, durability=durability) as other,
    ):
        savers: list[Writer] = [
            SnapshotWriter(f"writer-{i}", store, back)
            for i, store in enumerate([one, one, other, other])
        ]
        appender = HistoryWriter("h", other, back)
        writers = [*savers, appender]
        for writer in writers:
            writer.thread.start()
        for writer in writers:
            assert writer.warm.wait(FINISH_SECONDS), f"{writer.name} never wrote"
        # Crashed while every writer is writing: some writes are in flight.
        getattr(cluster, crash)()
        back.set()
        for writer in writers:
            writer.thread.join(FINISH_SECONDS)
            assert not writer.thread.is_alive(), f"{writer.name} hangs"
            # The server was back within seconds, well inside the retry bound:
            # every writer reconnected, none gave up.
            assert writer.error is None, f"{writer.name}: {writer.error!r}"
    with SnapshotStore(url, read_only=True) as store:
        snapshots = [(snap.run_id, snap.data, _seq(snap)) for snap in store.snapshots()]
        history = store.history(appender.name)
        records = [(appender.name, record.data, record.seq) for record in history]
    return savers, appender, snapshots, records


def _check_each_write_once(
    stored: Stored, writers: list[Writer], *, may_lose: bool = False
) -> None:
    """Seqs 1..N, each write stored once, each acknowledged one at the seq it was given.

    With ``may_lose``, an acknowledged write may be missing instead (lost in the crash).
    """
    assert [seq for _, _, seq in stored] == list(range(1, len(stored) + 1))
    writes = Counter((name, data["n"]) for name, data, _ in stored)
    assert [write for write, times in writes.items() if times > 1] == []
    seq_of = {(name, data["n"]): seq for name, data, seq in stored}
    for writer in writers:
        wrong = {
            n: now
            for n, seq in writer.acknowledged.items()
            if (now := seq_of.get((writer.name, n))) != seq and not (may_lose and now is None)
        }
        assert wrong == {}, f"{writer.name}: acknowledged writes not at their seq (n: seq now)"
