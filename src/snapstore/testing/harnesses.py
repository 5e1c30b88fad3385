"""Harnesses of the built-in backends for the conformance suites (see ``conformance``).

A harness opens handles on one store (or history) and takes a picture of
everything stored in it, so a suite can check "nothing was written" without
knowing whether the store is a directory or a dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlencode

from snapstore.backends.local.disk_index import SHARED_MEMORY
from snapstore.backends.memory import MemoryHistory, MemoryStore
from snapstore.history import IterationHistory
from snapstore.store import SnapshotStore

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore._options import Durability

_Handle = TypeVar("_Handle", SnapshotStore, IterationHistory)


def file_state(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), but SQLite's shared memory.

    ``index.sqlite-shm`` holds no data: it is where connections to the index
    file coordinate, readers included (they mark what they read there).
    """
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != SHARED_MEMORY
    }


class _Harness(Generic[_Handle]):
    """Opens handles with the harness's durability; closes them all at teardown."""

    def __init__(self, durability: Durability) -> None:
        self.durability: Durability = durability
        self._opened: list[_Handle] = []

    def _kept(self, handle: _Handle) -> _Handle:
        self._opened.append(handle)
        return handle

    def close_all(self) -> None:
        for handle in self._opened:
            handle.close()
        self._opened.clear()


class LocalStoreHarness(_Harness[SnapshotStore]):
    """A store directory ``root``; its picture is every file's bytes."""

    def __init__(self, root: Path, durability: Durability = "fsync") -> None:
        super().__init__(durability)
        self.root = root

    def open(self, **options: Any) -> SnapshotStore:
        options.setdefault("durability", self.durability)
        return self._kept(SnapshotStore(self.root, **options))

    def state(self) -> dict[str, bytes]:
        return file_state(self.root)


class MemoryStoreHarness(_Harness[SnapshotStore]):
    """One in-memory store; its picture is everything it holds."""

    def __init__(self, durability: Durability = "fsync") -> None:
        super().__init__(durability)
        self.target = MemoryStore()

    def open(self, **options: Any) -> SnapshotStore:
        options.setdefault("durability", self.durability)
        return self._kept(SnapshotStore(self.target, **options))

    def state(self) -> object:
        return self.target.dump()


class LocalHistoryHarness(_Harness[IterationHistory]):
    """A history file ``path``; its picture is the bytes of every file in its directory."""

    def __init__(self, path: Path, durability: Durability = "fsync") -> None:
        super().__init__(durability)
        self.path = path

    def open(self, **options: Any) -> IterationHistory:
        options.setdefault("durability", self.durability)
        return self._kept(IterationHistory(self.path, **options))

    def state(self) -> dict[str, bytes]:
        return file_state(self.path.parent)


class MemoryHistoryHarness(_Harness[IterationHistory]):
    """One in-memory history; its picture is every record it holds."""

    def __init__(self, durability: Durability = "fsync") -> None:
        super().__init__(durability)
        self.target = MemoryHistory()

    def open(self, **options: Any) -> IterationHistory:
        options.setdefault("durability", self.durability)
        return self._kept(IterationHistory(self.target, **options))

    def state(self) -> object:
        return self.target.dump()


class _PostgresHarness(_Harness[_Handle]):
    """A store in its own schema of a PostgreSQL database; its picture is every row.

    ``dsn`` names the database; ``drop()`` drops the schema. Needs psycopg
    (the ``postgres`` extra).
    """

    def __init__(
        self, dsn: str, schema: str, durability: Durability = "fsync", **query: str
    ) -> None:
        super().__init__(durability)
        self.dsn = dsn
        self.schema = schema
        self.url = with_query(dsn, schema=schema, **query)

    def state(self) -> object:
        return postgres_rows(self.dsn, self.schema)

    def drop(self) -> None:
        drop_schema(self.dsn, self.schema)


class PostgresStoreHarness(_PostgresHarness[SnapshotStore]):
    """The store in one schema of a PostgreSQL database."""

    def open(self, **options: Any) -> SnapshotStore:
        options.setdefault("durability", self.durability)
        return self._kept(SnapshotStore(self.url, **options))


class PostgresHistoryHarness(_PostgresHarness[IterationHistory]):
    """The history ``h`` of the store in one schema of a PostgreSQL database."""

    def __init__(self, dsn: str, schema: str, durability: Durability = "fsync") -> None:
        super().__init__(dsn, schema, durability, history="h")

    def open(self, **options: Any) -> IterationHistory:
        options.setdefault("durability", self.durability)
        return self._kept(IterationHistory(self.url, **options))


def with_query(dsn: str, **params: str) -> str:
    """``dsn`` with ``params`` added to its query string."""
    return f"{dsn}{'&' if '?' in dsn else '?'}{urlencode(params)}"


def postgres_rows(dsn: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``schema``, in key order."""
    import psycopg  # noqa: PLC0415 - the postgres extra, for the PostgreSQL harnesses only

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            str(name)
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                (schema,),
            )
        ]
        return {
            table: conn.execute(
                psycopg.sql.SQL("SELECT * FROM {}.{} AS r ORDER BY r").format(
                    psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
                )
            ).fetchall()
            for table in tables
        }


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg  # noqa: PLC0415 - see postgres_rows

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(schema)
            )
        )
