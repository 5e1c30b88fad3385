"""``index.sqlite``: where each snapshot is and how snapshots relate, queried in place.

A short process asks its two or three questions of this file instead of
loading an index of the whole log: each is one B-tree lookup in SQLite,
whatever the store's size. The file is a cache of the snapshot log, which
stays the truth:

- It records the log position it covers (seq, end offset, line length) and
  a SHA-256 of the line there, in the same transaction as its rows, so it
  never holds a row its position does not cover. At open, and before each
  addition, that line is compared with the log: an index of another log (or
  of this log before repair rewrote it) is emptied and rebuilt, never used.
- Rows are added only for records the log already holds durably (the
  caller's duty; see ``LocalStore``): a power loss may leave the index
  behind the log, never ahead of it.
- SQLite writes it in WAL mode with ``synchronous=NORMAL``: no sync per
  transaction, and a power loss may roll back the latest transactions but
  never corrupt the file. What was rolled back is read from the log again.
- Every change goes through SQLite, inside transactions, so processes that
  have the file open at the same time stay consistent. The file is never
  renamed or deleted while it may be open (a database unlinked under a
  connection, or parted from its ``-wal`` file, is how SQLite files get
  corrupted), except one SQLite itself calls no database at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from itertools import islice
from typing import TYPE_CHECKING, NamedTuple

from snapstore._fork import index_barrier
from snapstore._log.checked import LogPosition, read_lines
from snapstore._log.record import decode_line

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from snapstore._log.seam import FileSystem
    from snapstore._progress import TaskProgress

INDEX_DB = "index.sqlite"
# The files SQLite keeps beside the database in WAL mode.
SIDE_FILES = ("-wal", "-shm")
SHARED_MEMORY = f"{INDEX_DB}-shm"
INDEX_FORMAT = 1

_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "format INTEGER NOT NULL, seq INTEGER NOT NULL, end_offset INTEGER NOT NULL, "
        "length INTEGER NOT NULL, line_sha256 TEXT, count INTEGER NOT NULL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, "
        "stage TEXT NOT NULL, comparison_key TEXT NOT NULL, created_at TEXT NOT NULL, "
        "log_offset INTEGER NOT NULL, log_length INTEGER NOT NULL)"
    ),
)
# The two lookups a pipeline makes: the versions of one (run, stage), and a
# (stage, comparison key) group. Each index ends in the rowid (the seq), so
# "the newest below" is a walk down one B-tree.
_INDICES = (
    "CREATE INDEX IF NOT EXISTS by_key ON snapshots (stage, run_id)",
    "CREATE INDEX IF NOT EXISTS by_group ON snapshots (stage, comparison_key)",
)
# How long a read-only connection opened beside a writer waits for a lock.
_IDLE_TIMEOUT = 1.0
_INSERT = "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)"
# Rows handed to SQLite at once by a bulk catch-up: bounds the memory it holds.
_BATCH = 20_000


class Row(NamedTuple):
    """One snapshot as the index holds it (``created_at`` as the log's own text)."""

    seq: int
    run_id: str
    stage: str
    comparison_key: str
    created_at: str
    offset: int
    length: int


class Covered(NamedTuple):
    """What an index file holds: every snapshot up to ``position``, ``size`` rows."""

    position: LogPosition
    line_sha256: str | None
    size: int


class DiskIndex:
    """One connection to a store's ``index.sqlite``.

    ``covered``: what the file holds, as opened (or caught up in bulk).

    Not thread-safe: ``StoreIndex`` serializes calls under its lock. Every
    query takes ``upto``, the last seq its caller has taken from the file,
    so that rows other processes add later never mix with what the caller
    holds in memory about the same records.
    """

    def __init__(
        self, connection: sqlite3.Connection, path: Path, covered: Covered, *, idle: bool
    ) -> None:
        self.path = path
        self.covered = covered
        self._db = connection
        # Opened read-only as an immutable file, no writer having it open (see
        # open_index): the file as it was then, which a connection replaces.
        self._idle = _file_state(path) if idle else None

    def _query(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        if self._idle is not None and _file_state(self.path) != self._idle:
            self._reconnect()
        return self._db.execute(sql, args)

    def _reconnect(self) -> None:
        """A writer connected, or came and went, since the immutable open.

        Its changes reach the main file through checkpoints, which only a
        connection that takes part in SQLite's locking may read (and pages the
        immutable one cached may be stale). With a writer connected, the side
        files exist, and a read-only connection creates nothing; without one,
        the file is opened as immutable again, as it is now.
        """
        state = _file_state(self.path)
        connection = _connect(
            self.path, writable=False, busy_timeout=_IDLE_TIMEOUT, immutable=not state[2]
        )
        self._db.close()
        self._db, self._idle = connection, state if not state[2] else None

    # -- lookups ----------------------------------------------------------------

    def latest(self, run_id: str, stage: str, upto: int) -> tuple[int, int, int] | None:
        """``(seq, offset, length)`` of the newest version of ``(run_id, stage)``."""
        found: tuple[int, int, int] | None = self._query(
            "SELECT seq, log_offset, log_length FROM snapshots "
            "WHERE stage = ? AND run_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            (stage, run_id, upto),
        ).fetchone()
        return found

    def place(self, seq: int) -> tuple[int, int, int] | None:
        """``(seq, offset, length)`` of snapshot ``seq``."""
        found: tuple[int, int, int] | None = self._query(
            "SELECT seq, log_offset, log_length FROM snapshots WHERE seq = ?", (seq,)
        ).fetchone()
        return found

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int
    ) -> tuple[int, int, int] | None:
        """The newest member of the group below seq ``below`` from another run."""
        found: tuple[int, int, int] | None = self._query(
            "SELECT seq, log_offset, log_length FROM snapshots WHERE stage = ? "
            "AND comparison_key = ? AND seq < ? AND run_id <> ? ORDER BY seq DESC LIMIT 1",
            (stage, comparison_key, below, run_id),
        ).fetchone()
        return found

    def seqs(self, run_id: str | None, stage: str | None, upto: int) -> list[int]:
        """Seqs up to ``upto`` in increasing order, filtered by run id and/or stage."""
        where = ["seq <= ?"]
        args: list[object] = [upto]
        for column, value in (("stage", stage), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        query = f"SELECT seq FROM snapshots WHERE {' AND '.join(where)} ORDER BY seq"  # noqa: S608 - fixed column names
        return [seq for (seq,) in self._query(query, tuple(args))]

    # -- additions ------------------------------------------------------------

    def add(self, rows: list[Row], after: LogPosition, to: LogPosition, log: Path) -> bool:
        """Add the rows of every record of ``log`` after ``after`` up to ``to``.

        False, with nothing changed, when the file cannot take them: it does
        not reach ``after`` (it was emptied since: the rows before ours are
        missing), it describes another log, or SQLite refused (busy past its
        timeout, out of space). The index then lags, which it may.
        """
        try:
            with _transaction(self._db):
                covered = _covering(self._db, log)
                if covered is None or covered.position.seq < after.seq:
                    return False
                if covered.position.seq >= to.seq:
                    return True  # another process added them first
                fresh = [row for row in rows if row.seq > covered.position.seq]
                self._db.executemany(_INSERT, fresh)
                _write_covered(
                    self._db, Covered(to, line_digest(log, to), covered.size + len(fresh))
                )
        except sqlite3.Error:
            return False
        return True

    def catch_up(self, fs: FileSystem, log: Path, *, sync: bool) -> None:
        """Add every record the log holds after the covered position, in bulk.

        For a large lag (an index lost, emptied, or left behind by processes
        that died): rows are read straight from the log's lines, faster than
        through the store's own catch-up, and inserted a batch at a time.
        ``sync``: make the log durable first, so the index never holds a
        record a power loss could still take from the log.
        """
        # Only here: a process that finds its index in place never needs it.
        from snapstore._progress import TaskProgress, file_task  # noqa: PLC0415

        fd = fs.open_read(log)
        try:
            if sync:
                fs.sync(fd)
            size = fs.size(fd)
            with _transaction(self._db):
                covered = _covering(self._db, log)
                if covered is None:
                    return  # emptied by another process meanwhile: left to it
                if covered.position.end >= size:
                    return  # nothing to add (caught up meanwhile): no task to show
                empty = covered.position.seq == 0
                if empty:
                    # Built whole, the B-trees of the two lookups are made in
                    # one sorted pass each, not one insert at a time.
                    self._db.execute("DROP INDEX IF EXISTS by_key")
                    self._db.execute("DROP INDEX IF EXISTS by_group")
                start = covered.position
                # The bytes read of the log; the B-trees built at the end are
                # the last part of the task.
                with TaskProgress(file_task("indexing", log), size - start.end) as progress:
                    rows = _log_rows(fs, fd, start, size, progress)
                    count, last = covered.size, None
                    while batch := list(islice(rows, _BATCH)):
                        self._db.executemany(_INSERT, batch)
                        count += len(batch)
                        last = batch[-1]
                    if empty:
                        for statement in _INDICES:
                            self._db.execute(statement)
                if last is not None:
                    position = LogPosition(last.offset + last.length, last.seq, last.length)
                    self.covered = Covered(position, line_digest(log, position), count)
                    _write_covered(self._db, self.covered)
        finally:
            fs.close(fd)

    def close(self) -> None:
        self._db.close()


def open_index(root: Path, log: Path, *, writable: bool, busy_timeout: float) -> DiskIndex | None:
    """The store's index file, checked against ``log``; None when there is none to use.

    A writable open creates the file, and empties one that describes
    another log. A read-only open uses the file only as it is: missing,
    unreadable or of another log, it is not used (the store then reads the
    log, which answers the same). ``busy_timeout``: how long a transaction
    waits for another process's.
    """
    path = root / INDEX_DB
    if not writable and not path.exists():
        return None
    # Read-only with no connection open (no shared memory): a usual read-only
    # connection would create SQLite's side files, and a read-only open
    # creates nothing. The file is read as immutable instead, which no writer
    # is changing: in WAL mode a writer changes the main file only through its
    # log, and the connection is replaced before any query once one connects.
    idle = not writable and not (root / SHARED_MEMORY).exists()
    try:
        connection = _connect(path, writable=writable, busy_timeout=busy_timeout, immutable=idle)
    except sqlite3.Error as exc:
        if not writable or not _damaged(exc):
            return None  # busy past the timeout, or no access: the log answers
        _remove(root)
        try:
            connection = _connect(path, writable=True, busy_timeout=busy_timeout)
        except sqlite3.Error:
            return None
    try:
        covered = _covering(connection, log)
        if covered is None and writable:
            covered = _emptied(connection, log)
        if covered is not None:
            return DiskIndex(connection, path, covered, idle=idle)
    except sqlite3.Error:
        pass
    connection.close()
    return None


def empty_index(root: Path, *, busy_timeout: float) -> None:
    """Empty the store's index file, if it has one: repair rebuilds it from nothing."""
    path = root / INDEX_DB
    if not path.exists():
        return
    try:
        connection = _connect(path, writable=True, busy_timeout=busy_timeout)
        try:
            _emptied(connection, None)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        if not _damaged(exc):
            raise
        # Too damaged for SQLite to open or empty: removed (see _remove).
        _remove(root)


def _file_state(path: Path) -> tuple[int, int, bool]:
    """What tells an idle index file changed: its mtime, its size, and a writer connected."""
    try:
        stat = path.stat()
    except OSError as exc:  # gone: to its users, a file that fails its query
        raise sqlite3.OperationalError(f"{path}: {exc.strerror}") from exc
    return stat.st_mtime_ns, stat.st_size, (path.parent / SHARED_MEMORY).exists()


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused the file itself (not a database, or a damaged one).

    Anything else (busy, locked, no access, I/O) says nothing about the file.
    """
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code
    return code in {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _remove(root: Path) -> None:
    # Garbage where the index should be (a torn copy, a foreign file): SQLite
    # will not open it, so no connection can be using it.
    for suffix in ("", *SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            (root / f"{INDEX_DB}{suffix}").unlink()


def read_index_file(root: Path) -> tuple[Covered, list[Row]] | str | None:
    """One reading of the store's index file: what it covers and its rows up to there.

    None when it is absent (or cannot be opened read-only here: see
    open_index); a string saying why when it cannot be read. SQLite keeps no
    checksums: a changed byte can leave the file readable with a row or an
    index entry that disagrees with the log. Its integrity check finds index
    entries that disagree with their rows; the caller compares the rows with
    the log.
    """
    path = root / INDEX_DB
    if not path.exists():
        return None
    try:
        # With no connection open (no shared memory), read as an immutable
        # file: nothing is created beside it. A writer that opens it during
        # the check can make it report a problem that a second check clears.
        idle = not (root / SHARED_MEMORY).exists()
        connection = _connect(path, writable=False, busy_timeout=_IDLE_TIMEOUT, immutable=idle)
    except sqlite3.Error as exc:
        if _damaged(exc):
            return f"not an index file SQLite can read: {exc}"
        return None  # no access from here (a read-only mount, say): not judged
    try:
        return _read_whole(connection)
    except sqlite3.Error as exc:
        return f"unreadable: {exc}"
    finally:
        connection.close()


def _read_whole(db: sqlite3.Connection) -> tuple[Covered, list[Row]] | str:
    # One read transaction: the rows are those of the position read.
    db.execute("BEGIN")
    checked = [line for (line,) in db.execute("PRAGMA integrity_check")]
    if checked != ["ok"]:
        return f"SQLite's integrity check: {'; '.join(checked[:3])}"
    covered = _read_covered(db)
    if covered is None:
        return f"holds no position of index format {INDEX_FORMAT}"
    return covered, [Row(*row) for row in db.execute("SELECT * FROM snapshots ORDER BY seq")]


def read_rows(path: Path, upto: int) -> Iterator[Row]:
    """The rows of the index file at ``path`` up to seq ``upto``, on a connection of its own."""
    connection = _connect(path, writable=False, busy_timeout=0)
    try:
        for row in connection.execute(
            "SELECT * FROM snapshots WHERE seq <= ? ORDER BY seq", (upto,)
        ):
            yield Row(*row)
    finally:
        connection.close()


def line_digest(log: Path, position: LogPosition) -> str | None:
    """SHA-256 of the log line ``position`` ends at: ties an index to this very log.

    The position alone (offset, seq, length) also fits any log whose lines
    have the same lengths: a sibling store of the same pipeline, or an older
    copy of this one. Its line differs (content, microsecond timestamp,
    checksum). None when the position holds no valid record of its seq, and
    for the empty position.
    """
    if position.seq == 0 or position.length <= 0 or position.end < position.length:
        return None
    try:
        with log.open("rb") as file:
            file.seek(position.end - position.length)
            line = file.read(position.length)
    except OSError:
        return None
    record = decode_line(line[:-1]) if line.endswith(b"\n") else None
    if record is None or record["seq"] != position.seq:
        return None
    return hashlib.sha256(line).hexdigest()


def _connect(
    path: Path, *, writable: bool, busy_timeout: float, immutable: bool = False
) -> sqlite3.Connection:
    # A file URI names an absolute path: a store opened by a relative one
    # (verify STORE from its parent directory) would fail here otherwise.
    uri = (
        f"{path.absolute().as_uri()}?mode={'rwc' if writable else 'ro'}"
        f"{'&immutable=1' if immutable else ''}"
    )
    # Autocommit (isolation_level None): each read is its own snapshot, and
    # writes open their transactions explicitly. The store serializes its
    # threads' calls, so one connection serves them all.
    connection = sqlite3.connect(
        uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        if writable:
            connection.execute("PRAGMA journal_mode=WAL")
            # A WAL file grown by a rebuild is cut back after its checkpoint.
            connection.execute("PRAGMA journal_size_limit=4194304")
            for statement in (*_SCHEMA, *_INDICES):
                connection.execute(statement)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        connection.close()
        raise
    return connection


def _read_covered(db: sqlite3.Connection) -> Covered | None:
    """The position row; None when absent or of another format."""
    found = db.execute(
        "SELECT format, seq, end_offset, length, line_sha256, count FROM position WHERE id = 1"
    ).fetchone()
    if found is None or found[0] != INDEX_FORMAT:
        return None
    _, seq, end, length, digest, count = found
    return Covered(LogPosition(end, seq, length), digest, count)


def _write_covered(db: sqlite3.Connection, covered: Covered) -> None:
    end, seq, length = covered.position
    db.execute(
        "INSERT OR REPLACE INTO position VALUES (1, ?, ?, ?, ?, ?, ?)",
        (INDEX_FORMAT, seq, end, length, covered.line_sha256, covered.size),
    )


def _covering(db: sqlite3.Connection, log: Path) -> Covered | None:
    """What the index covers, if it describes ``log``."""
    covered = _read_covered(db)
    if covered is None or covered.line_sha256 != line_digest(log, covered.position):
        return None
    return covered


def _emptied(db: sqlite3.Connection, log: Path | None) -> Covered:
    """Empty an index that does not describe ``log`` (None: any index), unless a peer did.

    Decided again inside the transaction: a peer may have emptied it and
    added this log's rows since our first look, which must not be lost.
    """
    with _transaction(db):
        covered = None if log is None else _covering(db, log)
        if covered is None:
            covered = Covered(LogPosition(), None, 0)
            db.execute("DELETE FROM snapshots")
            _write_covered(db, covered)
    return covered


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE: the write lock is taken before the position is read, so two
    # processes adding at once never both decide from one reading. Inside the
    # fork barrier: a fork waits for the transaction's end (see _fork).
    with index_barrier:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _log_rows(
    fs: FileSystem, fd: int, start: LogPosition, stop: int, progress: TaskProgress
) -> Iterator[Row]:
    """The index rows of the log's records after ``start``, up to its first damage.

    Stops at a line that is not the next record (a torn tail, damage, or an
    older seq): what follows is for the store's own catch-up to judge, which
    reports or recovers it.
    """
    seq = start.seq
    for offset, line, complete in read_lines(fs, fd, start.end, stop, progress=progress):
        record = decode_line(line) if complete else None
        if record is None or record["seq"] <= seq:
            return
        seq = record["seq"]
        data = record["data"]
        try:
            yield Row(
                seq,
                data["run_id"],
                data["stage"],
                data["comparison_key"],
                record["ts"],
                offset,
                len(line) + 1,
            )
        except KeyError:
            return  # not a snapshot: the store's catch-up reports it
