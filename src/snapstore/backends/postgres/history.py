"""A history of a PostgreSQL store: its records are rows of ``history_records``.

An append is one call of ``append_history`` (see ``schema``): the history's
counter row locked, keyed entries already stored passed over, the rest
inserted with the next seqs, all in one transaction. It carries an identity
drawn by the client, so a retry on a new connection, after the server
committed but before the client heard, returns the records the first
attempt stored instead of storing them again.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapstore._records import HistoryRecord
from snapstore._values import loads
from snapstore.backends.postgres.schema import check_rows, statements

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from snapstore._records import Entry
    from snapstore._report import CheckReport, Problem
    from snapstore.backends.postgres.connection import Connections

PAGE_ROWS = 5_000


class PostgresHistoryBackend:
    """One open handle on the history ``name`` of the store in ``schema``."""

    path = None

    def __init__(
        self, conns: Connections, schema: str, name: str, *, owns_connections: bool
    ) -> None:
        self.location = f"{conns.address.location}&history={name}"
        self._conns = conns
        self._owns_connections = owns_connections
        self._sql = statements(schema)
        self._name = name
        self._last_seq = 0
        self.count()  # an open reads how far the history goes, as a file's reader does

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def problems(self) -> list[Problem]:
        return []  # the server hands back whole rows or none: nothing to skip

    def append(self, entries: list[Entry]) -> list[HistoryRecord]:
        data = [entry.data_json.decode() for entry in entries]
        keys = [entry.key for entry in entries]
        return self._records(self._sql.append, (self._name, data, keys, uuid.uuid4()))

    def count(self) -> int:
        row = self._conns.fetch_one(self._sql.history_count, (self._name,))
        count = 0 if row is None else int(row[0])
        self._saw(count)
        return count

    def records(self) -> Iterator[HistoryRecord]:
        # Those committed when iteration begins, a page at a time.
        return (_record(*row) for row in self._page_rows(self.count()))

    def get(self, seq: int) -> HistoryRecord | None:
        if not 0 < seq < 2**63:
            return None
        found = self._records(self._sql.history_get, (self._name, seq))
        return found[0] if found else None

    def recent(self, n: int) -> list[HistoryRecord]:
        return self._records(self._sql.history_recent, (self._name, n))[::-1]

    def refresh(self) -> None:
        self.count()  # every answer is read from the server; this moves last_seq

    def verify(self) -> CheckReport:
        """Every record's data is JSON, and the seqs are 1 .. the counter."""
        rows = self._page_rows(self.count())
        return check_rows(
            Path(self.location), ((seq, data) for seq, _, data, _ in rows), _json_problem
        )

    def repair(self, *, dry_run: bool) -> CheckReport:  # noqa: ARG002 - nothing to set aside
        return self.verify()  # see PostgresSnapshotBackend.repair

    def close(self) -> None:
        if self._owns_connections:
            self._conns.close()

    def _page_rows(self, end: int) -> Iterator[tuple[Any, ...]]:
        return self._conns.pages(
            self._sql.history_page, lambda after: (self._name, after, end, PAGE_ROWS)
        )

    def _records(self, query: str, args: tuple[object, ...]) -> list[HistoryRecord]:
        records = [_record(*row) for row in self._conns.fetch_all(query, args)]
        if records:
            self._saw(max(record.seq for record in records))
        return records

    def _saw(self, seq: int) -> None:
        self._last_seq = max(self._last_seq, seq)


def _record(seq: int, ts: datetime, data: str, key: str | None) -> HistoryRecord:
    return HistoryRecord(seq, ts, loads(data), key)


def _json_problem(data: str) -> str | None:
    loads(data)
    return None
