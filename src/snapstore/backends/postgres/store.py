"""A store in a PostgreSQL schema: snapshots, baseline pins and histories in tables.

Every answer is read from the server when it is asked, so it includes every
commit, by any host, that finished before the call began (PostgreSQL's
snapshot of a new statement). Every write is one call of a server-side
function (see ``schema``), made once more on a new connection if the first
one broke: the identity the client drew for the write lets the server tell a
retry from a new write.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from snapstore._errors import InvalidInputError
from snapstore._report import CheckReport, Finding
from snapstore._values import canonical_json, loads
from snapstore.backends.postgres import cache
from snapstore.backends.postgres.batch import Batcher
from snapstore.backends.postgres.connection import Address, Connections
from snapstore.backends.postgres.history import PostgresHistoryBackend
from snapstore.backends.postgres.schema import (
    SCHEMA_VERSION,
    channel,
    check_rows,
    statements,
    store_identity,
)
from snapstore.snapshot import payload_problem, stored_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from snapstore._options import Options
    from snapstore._records import Origin
    from snapstore.snapshot import NormalizedSnapshot

# How many snapshots one query of a long read brings (a whole store is read
# in pages, so a reader holds one page, never the table).
PAGE_ROWS = 2_000
_NO_BOUND = 2**63 - 1


def content_digest(payload: bytes) -> bytes:
    """What makes two payloads the same content: their canonical JSON, hashed.

    Compared on the server in place of the payloads: key order differs
    between equal snapshots, and 1, 1.0 and true must stay apart.
    """
    return hashlib.blake2b(canonical_json(loads(payload)), digest_size=16).digest()


class PostgresSnapshotBackend:
    """One open handle on the store in one schema of a PostgreSQL database."""

    path = None

    def __init__(self, address: Address, options: Options, *, read_cache: bool = True) -> None:
        self.location = address.location
        self._address = address
        self._conns = Connections(address, options)
        self._schema = schema = address.schema
        self._sql = statements(schema)
        self._cache = cache.acquire(address, channel(schema)) if read_cache else None
        self._saves: Batcher[tuple[object, ...], NormalizedSnapshot] = Batcher(self._save_many)
        try:
            self.identity = self._conns.call(
                lambda conn: store_identity(conn, schema, read_only=options.read_only)
            )
        except BaseException:
            self.close()
            raise

    # -- writing -------------------------------------------------------------

    def save(
        self, snap: NormalizedSnapshot, payload: bytes, origin: Origin | None = None
    ) -> NormalizedSnapshot:
        copy_of = (None, None) if origin is None else origin
        return self._wrote(self._saves.submit((*_identity_of(snap), *_unsaved(payload), *copy_of)))

    def copies(self, store: str) -> dict[int, int]:
        rows = self._conns.fetch_all(self._sql.copies, (store,))
        return {int(origin_seq): int(seq) for origin_seq, seq in rows}

    def establish_baseline(
        self, snap: NormalizedSnapshot, payload: bytes | None
    ) -> NormalizedSnapshot:
        unsaved = (None, None, None) if payload is None else _unsaved(payload)
        (pinned,) = self._rows(
            self._sql.establish, (*_identity_of(snap), *unsaved, snap.snapshot_seq)
        )
        return self._wrote(pinned)

    def pin_baseline(self, snap: NormalizedSnapshot) -> None:
        args = (snap.snapshot_seq, snap.run_id, snap.stage)
        pinned = self._conns.fetch_all(self._sql.pin, args)
        if self._cache is not None:
            self._cache.wrote()
        if not pinned:
            raise InvalidInputError(
                f"snapshot {snap.run_id}:{snap.stage} seq {snap.snapshot_seq} is not stored "
                f"in {self.location}; save it first"
            )

    # -- reading -------------------------------------------------------------

    def get_latest(self, run_id: str, stage: str) -> NormalizedSnapshot | None:
        return self._answer(
            ("latest", run_id, stage),
            (("key", run_id, stage),),
            lambda: self._first(self._sql.latest, (run_id, stage)),
        )

    def get_by_seq(self, seq: int) -> NormalizedSnapshot | None:
        if not 0 < seq < _NO_BOUND:
            return None
        known = None if self._cache is None else self._cache.snapshot(seq)
        if known is not None:
            return known
        found = self._first(self._sql.by_seq, (seq,))
        if found is not None and self._cache is not None:
            self._cache.keep(found)
        return found

    def versions(self, run_id: str, stage: str) -> list[NormalizedSnapshot]:
        return list(self.snapshots(run_id, stage))

    def snapshots(self, run_id: str | None, stage: str | None) -> Iterator[NormalizedSnapshot]:
        # Those committed when the call is made: up to the counter read now.
        end = self._counter()
        rows = self._conns.pages(
            self._sql.page,
            lambda after: (after, end, run_id, run_id, stage, stage, PAGE_ROWS),
        )
        return (_snapshot(*row) for row in rows)

    def count(self) -> int:
        if self._cache is not None:
            return self._cache.count(self._conns, self._sql)
        return self._counter()

    def _counter(self) -> int:
        """The store's snapshot count, as the server has it now."""
        row = self._conns.fetch_one(self._sql.count)
        assert row is not None
        return int(row[0])

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int | None
    ) -> NormalizedSnapshot | None:
        bound = _NO_BOUND if below is None else below
        return self._answer(
            ("previous", stage, comparison_key, run_id, bound),
            (("group", stage, comparison_key),),
            lambda: self._first(self._sql.previous, (stage, comparison_key, run_id, bound)),
        )

    def baseline(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None:
        return self._answer(
            ("baseline", stage, comparison_key),
            (cache.PINS,),
            lambda: self._first(self._sql.baseline, (stage, comparison_key)),
        )

    def baselines(self) -> list[NormalizedSnapshot]:
        return self._rows(self._sql.baselines, ())

    def open_history(self, name: str) -> PostgresHistoryBackend:
        return PostgresHistoryBackend(self._conns, self._schema, name, owns_connections=False)

    def history_names(self) -> list[str]:
        return [str(name) for (name,) in self._conns.fetch_all(self._sql.history_names)]

    def details(self) -> dict[str, str]:
        row = self._conns.fetch_one("SHOW server_version")
        assert row is not None
        return {
            "server": f"PostgreSQL {row[0]}",
            "schema": f"{self._schema} (schema version {SCHEMA_VERSION})",
            "identity": self.identity,
        }

    # -- upkeep --------------------------------------------------------------

    def refresh(self) -> None:
        if self._cache is not None:
            self._cache.catch_up(self._conns, self._sql)

    def checkpoint(self) -> None:
        pass  # the server keeps every index itself

    def verify(self) -> CheckReport:
        """Every row holds a snapshot's JSON, the seqs are 1 .. the counter; so for each history."""
        report = self._verify_snapshots()
        report.files = 1
        for name in self.history_names():
            history = self.open_history(name)
            report.merge(history.verify())
            report.files += 1
        return report

    def _verify_snapshots(self) -> CheckReport:
        end = self._counter()
        rows = self._conns.pages(
            self._sql.page, lambda after: (after, end, None, None, None, None, PAGE_ROWS)
        )
        report = check_rows(
            Path(self.location),
            ((seq, payload) for seq, _, payload in rows),
            lambda payload: payload_problem(loads(payload)),
        )
        if report.records != end:
            report.findings.append(
                Finding(
                    Path(self.location),
                    f"the counter says {end} snapshots; the table holds {report.records}",
                )
            )
        return report

    def repair(self, *, dry_run: bool) -> CheckReport:  # noqa: ARG002 - nothing to set aside
        # The server keeps its tables whole (WAL, checksums of its own): what
        # verify could find here, a row changed by hand, is not for snapstore
        # to delete.
        return self.verify()

    def close(self, *, finish: bool = True) -> None:
        if self._cache is not None:
            cache.release(self._address, self._cache)
            self._cache = None
        self._conns.close(detach=not finish)

    # -- helpers ---------------------------------------------------------------

    def _answer(
        self,
        key: tuple[object, ...],
        groups: tuple[tuple[str, str, str], ...],
        fetch: Callable[[], NormalizedSnapshot | None],
    ) -> NormalizedSnapshot | None:
        """``fetch()``, or the cache's answer to ``key`` (see ``cache.ReadCache.answer``)."""
        if self._cache is None:
            return fetch()
        return self._cache.answer(self._conns, self._sql, key, groups, fetch)

    def _wrote(self, snap: NormalizedSnapshot) -> NormalizedSnapshot:
        """``snap``, just written: the cache catches up before its next answer."""
        if self._cache is not None:
            self._cache.wrote()
            self._cache.keep(snap)
        return snap

    def _save_many(self, saves: list[tuple[object, ...]]) -> list[NormalizedSnapshot]:
        """Commit ``saves`` (each the arguments of one) in one call: one transaction."""
        if len(saves) == 1:
            return self._rows(self._sql.save, saves[0])
        return self._rows(
            self._sql.save_many, tuple(list(column) for column in zip(*saves, strict=True))
        )

    def _rows(self, query: str, args: tuple[object, ...]) -> list[NormalizedSnapshot]:
        return [_snapshot(*row) for row in self._conns.fetch_all(query, args)]

    def _first(self, query: str, args: tuple[object, ...]) -> NormalizedSnapshot | None:
        row = self._conns.fetch_one(query, args)
        return None if row is None else _snapshot(*row)


def _identity_of(snap: NormalizedSnapshot) -> tuple[str, str, str | None]:
    return snap.run_id, snap.stage, snap.comparison_key


def _unsaved(payload: bytes) -> tuple[str, bytes, uuid.UUID]:
    """The arguments of a save of ``payload``: it, its content digest, a new save identity."""
    return payload.decode(), content_digest(payload), uuid.uuid4()


def _snapshot(seq: int, created_at: datetime, payload: str) -> NormalizedSnapshot:
    return stored_snapshot(seq, created_at, loads(payload))
