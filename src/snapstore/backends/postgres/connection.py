"""Connections to the server of a PostgreSQL store: opened, shared by threads, retried.

A handle keeps the connections its threads opened and hands an idle one to
each call (one call, one connection, never two threads on one). Each is in
autocommit mode: a call is one statement, one transaction, one round trip.
Its session settings carry the handle's options: ``synchronous_commit`` is
on for ``durability="fsync"`` (a commit is acknowledged once the server has
flushed its WAL) and off for ``"write"`` (once the server has it in memory: a
server crash may lose the last few hundred milliseconds of acknowledged
commits, and never leaves a torn one); ``lock_timeout`` bounds each wait for
a row lock the way it bounds the local writer lock.

A call whose connection breaks is retried on a new connection until
``RECONNECT_SECONDS`` have passed since it broke; then it raises
StorageError. Retrying is safe because every write carries its identity (see
``schema``): a write the server committed before the connection broke is
found, not repeated.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from snapstore._errors import InvalidInputError, LockTimeout, StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from snapstore._options import Options

Connection = psycopg.Connection[tuple[Any, ...]]
_T = TypeVar("_T")

DEFAULT_SCHEMA = "snapstore"
# How long a call keeps trying to reach the server after its connection broke
# (a server restarting, a network cut), and the longest pause between tries.
RECONNECT_SECONDS = 30.0
CONNECT_TIMEOUT = 10  # seconds, for one attempt to connect (unless the URL says otherwise)
_MAX_PAUSE = 1.0
_IDENTIFIER = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


class Address:
    """What a ``postgresql://`` URL names: a server, a schema in it, maybe a history.

    ``?schema=NAME`` picks the schema the store lives in (default
    ``snapstore``); ``?history=NAME`` names one history of that store for
    ``IterationHistory``. Every other part of the URL is libpq's.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.schema = query.pop("schema", DEFAULT_SCHEMA)
        self.history = query.pop("history", None)
        if not (
            0 < len(self.schema) <= 63
            and set(self.schema) <= _IDENTIFIER
            and not self.schema[0].isdigit()
            and not self.schema.startswith("pg_")
        ):
            raise InvalidInputError(
                f"schema must be 1 to 63 lowercase letters, digits and _ (not first a digit, "
                f"not pg_...), not {self.schema!r}"
            )
        # Each attempt to reach the server is bounded (libpq's default is to
        # wait as long as the operating system does, minutes for a host that
        # drops packets), so a retry loop runs out in about RECONNECT_SECONDS.
        query.setdefault("connect_timeout", str(CONNECT_TIMEOUT))
        self.conninfo = urlunsplit(parts._replace(query=urlencode(query)))
        # For messages: the URL without its password.
        netloc = parts.netloc.rsplit("@", 1)
        if len(netloc) == 2 and ":" in netloc[0]:
            netloc[0] = netloc[0].split(":", 1)[0] + ":***"
        shown = urlunsplit(parts._replace(netloc="@".join(netloc), query=""))
        self.location = f"{shown}?schema={self.schema}"


class Connections:
    """The connections of one handle, each used by one thread at a time."""

    def __init__(self, address: Address, options: Options) -> None:
        self.address = address
        self._options = options
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._all: list[Connection] = []
        # Whether this handle ever reached the server: until then, a failure
        # to connect is a wrong address or credentials, and is not retried.
        self._reached = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """An idle connection (a new one if none is), given back after use.

        One left broken or busy is closed, not given back.
        """
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        except BaseException:
            # Given back only if it is idle: an interrupt may have come while
            # a statement was on its way, and the next one would meet it.
            if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                self._discard(conn)
                raise
            with self._lock:
                self._idle.append(conn)
            raise
        with self._lock:
            self._idle.append(conn)

    def call(self, work: Callable[[Connection], _T]) -> _T:
        """``work(conn)``, retried on a new connection while the server cannot be reached.

        ``work`` must be safe to repeat: a read, or a write with an identity.
        """
        deadline = None
        pause = 0.05
        while True:
            try:
                with self.connection() as conn:
                    return work(conn)
            except psycopg.OperationalError as exc:
                if isinstance(exc, pg_errors.LockNotAvailable):
                    raise LockTimeout(self.address.location, self._options.lock_timeout) from None
                # Counted from the first break, not from the call's start: a
                # call that waited long on the server (a lock, a flush) before
                # its connection broke gets the whole time to reconnect.
                if deadline is None:
                    deadline = time.monotonic() + RECONNECT_SECONDS
                if (
                    not self._reached
                    or not _lost_connection(exc)
                    or time.monotonic() + pause > deadline
                ):
                    raise StorageError(
                        errno.ECONNABORTED,
                        f"{self.address.location}: the server cannot be reached: {exc}".rstrip(),
                    ) from exc
            except psycopg.Error as exc:
                # Anything else the server or driver refused (a table dropped
                # under the store, say): a storage failure, typed as one.
                raise StorageError(errno.EIO, f"{self.address.location}: {exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)

    def fetch_all(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows ``query`` returns (see ``call``)."""
        return self.call(lambda conn: conn.execute(query, args).fetchall())

    def fetch_one(self, query: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        """The first row ``query`` returns, if any (see ``call``)."""
        return self.call(lambda conn: conn.execute(query, args).fetchone())

    def pages(
        self, query: str, args: Callable[[int], tuple[object, ...]]
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of ``query``, one page (one call) at a time.

        The rows are ordered by their first column, a seq; ``args(after)``
        are the query's arguments for the page of the rows after seq ``after``.
        """
        after = 0
        while True:
            page = self.fetch_all(query, args(after))
            if not page:
                return
            yield from page
            after = int(page[-1][0])

    def close(self, *, detach: bool = False) -> None:
        """Close every connection; ``detach``: without a word to the server.

        A copy of a handle inherited through fork() shares its sockets with
        the parent's: saying goodbye on them would end the parent's sessions.
        Detaching points each copy's descriptor at /dev/null first.
        """
        with self._lock:
            conns, self._all, self._idle = self._all, [], []
        if detach:
            null = os.open(os.devnull, os.O_RDWR)
            try:
                for conn in conns:
                    with contextlib.suppress(OSError, psycopg.Error):
                        os.dup2(null, conn.fileno())
            finally:
                os.close(null)
        for conn in conns:
            with contextlib.suppress(OSError, psycopg.Error):
                conn.close()

    def _connect(self) -> Connection:
        options = self._options
        # lock_timeout 0 is "do not wait" here, "wait forever" to PostgreSQL.
        lock_ms = max(round(options.lock_timeout * 1000), 1)
        settings = {
            "synchronous_commit": "on" if options.durability == "fsync" else "off",
            "lock_timeout": f"{lock_ms}ms",
            "TimeZone": "UTC",
            "default_transaction_read_only": "on" if options.read_only else "off",
        }
        conn = psycopg.connect(
            self.address.conninfo,
            autocommit=True,
            options=" ".join(f"-c {name}={value}" for name, value in settings.items()),
        )
        with self._lock:
            self._all.append(conn)
            self._reached = True
        return conn

    def _discard(self, conn: Connection) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._all.remove(conn)
        with contextlib.suppress(OSError, psycopg.Error):
            conn.close()


def _lost_connection(exc: psycopg.OperationalError) -> bool:
    """Whether ``exc`` says the server went away (try again) rather than refused the call."""
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))
