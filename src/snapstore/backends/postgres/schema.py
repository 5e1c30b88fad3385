"""The tables and functions of a store in a PostgreSQL schema, created and upgraded once.

Every write is one call of a function defined here, so that what must be
atomic (take the seq counter, check for a retry, insert) happens on the
server in one round trip, with the counter row locked for as short a time as
possible. The counter row is what makes seqs gap-free and visible in order:
a PostgreSQL sequence burns values in rolled-back transactions, and its
values commit out of order, so a reader asking for ``seq > N`` could pass
over a save that commits later with a lower seq. Holding the counter row's
lock until commit serialises the writers of one store (or one history), so
seq order is commit order. Writers queue for it on a transaction-scoped
advisory lock first: the lock manager grants an advisory lock to one waiter
at a time, in order, where every waiter on a row lock wakes at each commit
and races for the row again (16 processes saving: 1,552 saves/s without the
queue, 2,368/s with it, on the benchmark machine).

Identities of a save make retries exact. ``save_id`` is drawn by the client
for each save: when the connection drops after the server committed, the
client's retry finds the committed row by it instead of saving twice.
``origin_store`` and ``origin_seq`` name the record a copy was made from
(``sync``), so a copy is made once, however often it is retried.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from snapstore._errors import NotAStoreError
from snapstore._report import CheckReport, Finding

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    import psycopg

SCHEMA_VERSION = 1

# Taken (per schema name) while a schema is created or upgraded, so that many
# processes opening a new store at once wait for one to create it rather
# than fail on each other's CREATEs.
_LOCK_SPACE = 0x5EED5701
# The queue of a store's (or one history's) writers, per channel name (see above).
_WRITERS_SPACE = 0x5EED5702

_TABLES = """
CREATE TABLE {s}.meta (
    name text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE {s}.counters (
    name text PRIMARY KEY,
    last bigint NOT NULL
);
INSERT INTO {s}.counters VALUES ('snapshots', 0), ('pins', 0);
CREATE TABLE {s}.snapshots (
    seq bigint PRIMARY KEY,
    run_id text NOT NULL,
    stage text NOT NULL,
    comparison_key text NOT NULL,
    created_at timestamptz NOT NULL,
    payload text NOT NULL,
    content bytea NOT NULL,
    save_id uuid UNIQUE,
    origin_store text,
    origin_seq bigint,
    UNIQUE (origin_store, origin_seq)
);
CREATE INDEX snapshots_versions ON {s}.snapshots (run_id, stage, seq);
CREATE INDEX snapshots_groups ON {s}.snapshots (stage, comparison_key, seq);
CREATE TABLE {s}.baselines (
    stage text NOT NULL,
    comparison_key text NOT NULL,
    seq bigint NOT NULL REFERENCES {s}.snapshots (seq),
    PRIMARY KEY (stage, comparison_key)
);
CREATE TABLE {s}.histories (
    name text PRIMARY KEY,
    last bigint NOT NULL,
    last_ts timestamptz
);
CREATE TABLE {s}.history_records (
    name text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    data text NOT NULL,
    key text,
    batch uuid NOT NULL,
    PRIMARY KEY (name, seq)
);
CREATE UNIQUE INDEX history_keys ON {s}.history_records (name, key) WHERE key IS NOT NULL;
CREATE INDEX history_batches ON {s}.history_records (batch);
"""

# The save: under the counter row's lock, a retry (same save_id or origin) or
# content equal to the latest version of (run_id, stage) returns the stored
# row; anything else is inserted with the next seq. A copy (origin given) is
# matched by its origin only: it is made once per source record, whatever
# the destination holds besides. Times never go backwards along the seqs.
_SAVE = """
CREATE FUNCTION {s}.save_snapshot(
    p_run_id text, p_stage text, p_comparison_key text, p_payload text, p_content bytea,
    p_save_id uuid, p_origin_store text, p_origin_seq bigint
) RETURNS SETOF {s}.snapshots LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
    latest {s}.snapshots%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock({writers}, hashtext({channel}));
    SELECT last + 1 INTO next_seq FROM {s}.counters WHERE name = 'snapshots' FOR UPDATE;
    IF p_save_id IS NOT NULL THEN
        RETURN QUERY SELECT * FROM {s}.snapshots WHERE save_id = p_save_id;
        IF FOUND THEN RETURN; END IF;
    END IF;
    IF p_origin_store IS NOT NULL THEN
        RETURN QUERY SELECT * FROM {s}.snapshots
            WHERE origin_store = p_origin_store AND origin_seq = p_origin_seq;
        IF FOUND THEN RETURN; END IF;
    ELSE
        SELECT * INTO latest FROM {s}.snapshots
            WHERE run_id = p_run_id AND stage = p_stage ORDER BY seq DESC LIMIT 1;
        IF FOUND AND latest.content = p_content THEN
            RETURN NEXT latest;
            RETURN;
        END IF;
    END IF;
    UPDATE {s}.counters SET last = next_seq WHERE name = 'snapshots';
    PERFORM pg_notify({channel}, next_seq::text);
    RETURN QUERY INSERT INTO {s}.snapshots VALUES (
        next_seq, p_run_id, p_stage, p_comparison_key,
        greatest(clock_timestamp(),
                 (SELECT created_at FROM {s}.snapshots WHERE seq = next_seq - 1)),
        p_payload, p_content, p_save_id, p_origin_store, p_origin_seq
    ) RETURNING *;
END $$;
"""

# Many saves in one transaction (one WAL flush), in order: what threads of
# one process saving at once send together (see ``batch``).
_SAVE_MANY = """
CREATE FUNCTION {s}.save_snapshots(
    p_run_ids text[], p_stages text[], p_comparison_keys text[], p_payloads text[],
    p_contents bytea[], p_save_ids uuid[], p_origin_stores text[], p_origin_seqs bigint[]
) RETURNS SETOF {s}.snapshots LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. array_length(p_run_ids, 1) LOOP
        RETURN QUERY SELECT * FROM {s}.save_snapshot(
            p_run_ids[i], p_stages[i], p_comparison_keys[i], p_payloads[i], p_contents[i],
            p_save_ids[i], p_origin_stores[i], p_origin_seqs[i]);
    END LOOP;
END $$;
"""

# The baseline of a group, or, if it has none, p_seq (or a new save) pinned
# as it: decided under the counter row's lock, which every save and pin of
# the store takes first, so racing handles on any host agree.
_ESTABLISH = """
CREATE FUNCTION {s}.establish_baseline(
    p_run_id text, p_stage text, p_comparison_key text, p_payload text, p_content bytea,
    p_save_id uuid, p_seq bigint
) RETURNS SETOF {s}.snapshots LANGUAGE plpgsql AS $$
DECLARE
    pinned bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({writers}, hashtext({channel}));
    PERFORM 1 FROM {s}.counters WHERE name = 'snapshots' FOR UPDATE;
    SELECT seq INTO pinned FROM {s}.baselines
        WHERE stage = p_stage AND comparison_key = p_comparison_key;
    IF NOT FOUND THEN
        IF p_payload IS NULL THEN
            pinned := p_seq;
        ELSE
            SELECT seq INTO pinned FROM {s}.save_snapshot(
                p_run_id, p_stage, p_comparison_key, p_payload, p_content, p_save_id, NULL, NULL);
        END IF;
        INSERT INTO {s}.baselines VALUES (p_stage, p_comparison_key, pinned);
        UPDATE {s}.counters SET last = last + 1 WHERE name = 'pins';
        PERFORM pg_notify({channel}, 'pin');
    END IF;
    RETURN QUERY SELECT * FROM {s}.snapshots WHERE seq = pinned;
END $$;
"""

# Pins the stored snapshot p_seq (of p_run_id, p_stage) as its group's
# baseline; returns nothing if there is no such snapshot.
_PIN = """
CREATE FUNCTION {s}.pin_baseline(p_seq bigint, p_run_id text, p_stage text)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    pinned {s}.snapshots%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock({writers}, hashtext({channel}));
    PERFORM 1 FROM {s}.counters WHERE name = 'snapshots' FOR UPDATE;
    SELECT * INTO pinned FROM {s}.snapshots
        WHERE seq = p_seq AND run_id = p_run_id AND stage = p_stage;
    IF FOUND THEN
        INSERT INTO {s}.baselines VALUES (pinned.stage, pinned.comparison_key, pinned.seq)
            ON CONFLICT (stage, comparison_key) DO UPDATE SET seq = excluded.seq;
        UPDATE {s}.counters SET last = last + 1 WHERE name = 'pins';
        PERFORM pg_notify({channel}, 'pin');
        RETURN NEXT pinned.seq;
    END IF;
END $$;
"""

# One append: the entries, in order, under the history's counter row lock.
# A keyed entry whose key is stored (by an earlier append, or earlier in this
# one) is not written; the stored record stands in its place. A retry of the
# whole append (same batch) returns what the first attempt committed. Every
# record of one append gets one time, as one commit.
_APPEND = """
CREATE FUNCTION {s}.append_history(p_name text, p_data text[], p_keys text[], p_batch uuid)
RETURNS SETOF {s}.history_records LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
    first_seq bigint;
    commit_ts timestamptz;
    found_seq bigint;
    seqs bigint[] := '{{}}';
BEGIN
    PERFORM pg_advisory_xact_lock({writers}, hashtext({channel} || '/' || p_name));
    INSERT INTO {s}.histories VALUES (p_name, 0, NULL) ON CONFLICT (name) DO NOTHING;
    SELECT last, greatest(clock_timestamp(), last_ts) INTO next_seq, commit_ts
        FROM {s}.histories WHERE name = p_name FOR UPDATE;
    first_seq := next_seq;
    IF EXISTS (SELECT 1 FROM {s}.history_records WHERE batch = p_batch) THEN
        RETURN QUERY SELECT * FROM {s}.history_records WHERE batch = p_batch ORDER BY seq;
        RETURN;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_data, 1), 0) LOOP
        found_seq := NULL;
        IF p_keys[i] IS NOT NULL THEN
            SELECT seq INTO found_seq FROM {s}.history_records
                WHERE name = p_name AND key = p_keys[i];
        END IF;
        IF found_seq IS NULL THEN
            next_seq := next_seq + 1;
            found_seq := next_seq;
            INSERT INTO {s}.history_records
                VALUES (p_name, next_seq, commit_ts, p_data[i], p_keys[i], p_batch);
        END IF;
        seqs := seqs || found_seq;
    END LOOP;
    IF next_seq > first_seq THEN
        UPDATE {s}.histories SET last = next_seq, last_ts = commit_ts WHERE name = p_name;
    END IF;
    RETURN QUERY SELECT r.* FROM unnest(seqs) WITH ORDINALITY AS wanted (seq, position)
        JOIN {s}.history_records r ON r.name = p_name AND r.seq = wanted.seq
        ORDER BY wanted.position;
END $$;
"""


# The statements of the handles, by what they do; {s} is the schema.
_STATEMENTS = {
    "save": (
        "SELECT seq, created_at, payload FROM {s}.save_snapshot(%s, %s, %s, %s, %s, %s, %s, %s)"
    ),
    "save_many": (
        "SELECT seq, created_at, payload FROM {s}.save_snapshots(%s, %s, %s, %s, %s, %s, %s, %s)"
    ),
    "copies": "SELECT origin_seq, seq FROM {s}.snapshots WHERE origin_store = %s",
    "establish": (
        "SELECT seq, created_at, payload FROM {s}.establish_baseline(%s, %s, %s, %s, %s, %s, %s)"
    ),
    "pin": "SELECT * FROM {s}.pin_baseline(%s, %s, %s)",
    "latest": (
        "SELECT seq, created_at, payload FROM {s}.snapshots WHERE run_id = %s AND stage = %s "
        "ORDER BY seq DESC LIMIT 1"
    ),
    "by_seq": "SELECT seq, created_at, payload FROM {s}.snapshots WHERE seq = %s",
    "page": (
        "SELECT seq, created_at, payload FROM {s}.snapshots WHERE seq > %s AND seq <= %s "
        "AND (%s::text IS NULL OR run_id = %s) AND (%s::text IS NULL OR stage = %s) "
        "ORDER BY seq LIMIT %s"
    ),
    "count": "SELECT last FROM {s}.counters WHERE name = 'snapshots'",
    # What a read cache needs to catch up: the pin count, the snapshot count,
    # and the identities of (at most %s) snapshots after a seq.
    "changes": (
        "SELECT p.last, c.last, s.seq, s.run_id, s.stage, s.comparison_key "
        "FROM {s}.counters p CROSS JOIN {s}.counters c LEFT JOIN LATERAL ("
        "SELECT seq, run_id, stage, comparison_key FROM {s}.snapshots WHERE seq > %s "
        "ORDER BY seq LIMIT %s) s ON true WHERE p.name = 'pins' AND c.name = 'snapshots' "
        "ORDER BY s.seq"
    ),
    "previous": (
        "SELECT seq, created_at, payload FROM {s}.snapshots WHERE stage = %s "
        "AND comparison_key = %s AND run_id <> %s AND seq < %s ORDER BY seq DESC LIMIT 1"
    ),
    "baseline": (
        "SELECT seq, created_at, payload FROM {s}.snapshots WHERE seq = "
        "(SELECT seq FROM {s}.baselines WHERE stage = %s AND comparison_key = %s)"
    ),
    # Ordered by code point, as Python sorts, whatever the database's collation.
    "baselines": (
        "SELECT s.seq, s.created_at, s.payload FROM {s}.baselines b JOIN {s}.snapshots s "
        'USING (seq) ORDER BY b.stage COLLATE "C", b.comparison_key COLLATE "C"'
    ),
    "history_names": ('SELECT name FROM {s}.histories WHERE last > 0 ORDER BY name COLLATE "C"'),
    "append": "SELECT seq, ts, data, key FROM {s}.append_history(%s, %s, %s, %s)",
    "history_count": "SELECT last FROM {s}.histories WHERE name = %s",
    "history_page": (
        "SELECT seq, ts, data, key FROM {s}.history_records "
        "WHERE name = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s"
    ),
    "history_get": (
        "SELECT seq, ts, data, key FROM {s}.history_records WHERE name = %s AND seq = %s"
    ),
    "history_recent": (
        "SELECT seq, ts, data, key FROM {s}.history_records WHERE name = %s "
        "ORDER BY seq DESC LIMIT %s"
    ),
}


@dataclass(frozen=True, slots=True)
class Statements:
    """The statements of the handles on the store in one schema (see ``statements``)."""

    save: str
    save_many: str
    copies: str
    establish: str
    pin: str
    latest: str
    by_seq: str
    page: str
    count: str
    changes: str
    previous: str
    baseline: str
    baselines: str
    history_names: str
    append: str
    history_count: str
    history_page: str
    history_get: str
    history_recent: str


@functools.cache
def statements(schema: str) -> Statements:
    """The statements on the store in ``schema``, rendered once for every handle on it."""
    return Statements(**{what: _render(text, schema) for what, text in _STATEMENTS.items()})


def _render(text: str, schema: str) -> str:
    return (
        sql.SQL(text)
        .format(
            s=sql.Identifier(schema),
            channel=sql.Literal(channel(schema)),
            writers=sql.Literal(_WRITERS_SPACE),
        )
        .as_string()
    )


def channel(schema: str) -> str:
    """The channel the store in ``schema`` notifies its commits on (see ``cache``)."""
    return f"snapstore.{schema}"


# The DDL of each schema version, applied in order to bring a store up to
# SCHEMA_VERSION: version 1 creates it. An upgrade adds the next version.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (_TABLES, _SAVE, _SAVE_MANY, _ESTABLISH, _PIN, _APPEND)
}


def store_identity(
    conn: psycopg.Connection[tuple[object, ...]], schema: str, *, read_only: bool
) -> str:
    """What an open does first: the identity of the store in ``schema``.

    A writable open creates or upgrades the store if it must; a read-only one
    creates nothing. A current store is read in two statements, without the
    advisory lock: only creating and upgrading take it.
    """
    meta = _meta(conn, schema)
    if read_only or _version(meta, schema) == SCHEMA_VERSION:
        return _identity(meta, schema)
    return ensure_schema(conn, schema)


def ensure_schema(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> str:
    """Create or upgrade the store in ``schema``; return its identity.

    Under an advisory lock: the first opener creates (or upgrades), every
    other waits and then finds the work done. A schema that
    holds other tables, or a store of a newer version, is left untouched.
    """
    name = sql.Identifier(schema)
    # The lock is the session's, taken before the transaction begins: a
    # transaction that began before the creator committed would go on
    # looking the tables up in this session's catalog cache as it was then
    # (an open that found no store a moment ago would still find none).
    lock = (_LOCK_SPACE, schema)
    conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", lock)
    try:
        with conn.transaction():
            version = _version(_meta(conn, schema), schema)
            if version == 0 and schema_holds_tables(conn, schema):
                raise NotAStoreError(
                    f"schema {schema} holds tables but no snapstore store; "
                    "name another schema with ?schema="
                )
            if version < SCHEMA_VERSION:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            for upgrade in range(version + 1, SCHEMA_VERSION + 1):
                for ddl in _MIGRATIONS[upgrade]:
                    conn.execute(_render(ddl, schema))
            if version == 0:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.meta VALUES ('identity', gen_random_uuid()::text)"
                    ).format(name)
                )
            if version < SCHEMA_VERSION:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.meta VALUES ('schema_version', %s) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
                    ).format(name),
                    (str(SCHEMA_VERSION),),
                )
            return _identity(_meta(conn, schema), schema)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", lock)


def _meta(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> dict[str, str]:
    """The store's ``meta`` rows (name -> value); empty if ``schema`` holds no store."""
    found = conn.execute(
        "SELECT to_regclass(format('%%I.meta', %s::text)) IS NOT NULL", (schema,)
    ).fetchone()
    if not found or not found[0]:
        return {}
    rows = conn.execute(
        sql.SQL("SELECT name, value FROM {}.meta").format(sql.Identifier(schema))
    ).fetchall()
    return {str(name): str(value) for name, value in rows}


def _version(meta: dict[str, str], schema: str) -> int:
    """The schema version ``meta`` names; 0 for no store. A newer one than ours is refused.

    Its tables may mean what this code does not know.
    """
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise NotAStoreError(
            f"schema {schema} holds a store of schema version {version}, newer than "
            f"this snapstore's {SCHEMA_VERSION}: upgrade snapstore to open it"
        )
    return version


def _identity(meta: dict[str, str], schema: str) -> str:
    """The identity ``meta`` holds, if it is a store of this version: NotAStoreError if not."""
    version = _version(meta, schema)
    if version != SCHEMA_VERSION:
        raise NotAStoreError(
            f"schema {schema} holds no snapstore store"
            if version == 0
            else f"schema {schema} holds a store of schema version {version}; "
            f"this snapstore reads version {SCHEMA_VERSION} (open it writable to upgrade)"
        )
    return meta["identity"]


def schema_holds_tables(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> bool:
    found = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
    ).fetchone()
    return bool(found and found[0])


def check_rows(
    where: Path, rows: Iterable[tuple[int, str]], problem_of: Callable[[str], str | None]
) -> CheckReport:
    """What verify finds in stored ``(seq, JSON)`` rows: gaps in the seqs, rows not records.

    ``problem_of(text)`` says why a row's JSON is no record (it may raise
    ValueError, for text that is no JSON at all).
    """
    report = CheckReport()
    for seq, text in rows:
        report.records += 1
        if seq != report.records:
            problem: str | None = f"seq {seq} follows seq {report.records - 1}: a gap"
        else:
            try:
                problem = problem_of(text)
            except ValueError as exc:
                problem = f"not JSON: {exc}"
        if problem is not None:
            report.findings.append(Finding(where, f"seq {seq}: {problem}", line=seq))
    return report
