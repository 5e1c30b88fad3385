"""The checked append-only log that IterationHistory and SnapshotStore sit on.

A log is a JSONL file of self-checking lines (see ``_record``). Writers append
under the writer lock; readers take no lock and see complete, valid lines only.

Appending, in order, under the writer lock:

1. Catch up: read what other processes appended since we last looked. Bytes
   after the last valid line that no valid line follows are a torn tail left by
   a writer that died mid-write: copy them to quarantine, then truncate, so the
   new record is never glued to garbage.
2. Assign seq = last seq + 1 to each record and write all lines of the batch,
   newlines included, with one write loop.
3. ``fdatasync`` (durability "fsync"), then advance the log's synced mark.
   Only then are the records acknowledged and handed to the owner's index.

Durable before visible: lines another process wrote are taken in (by a reader
or a writer) only once they are on stable storage — the synced mark says so, or
this handle syncs them itself first (see ``_synced``). So no handle counts,
returns, pins or builds on a record that a power cut could still take away.

Threads appending at the same time form a group commit: one of them (the
leader) writes and syncs everyone's records at once; each call returns only
when its own records are durable.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from snapstore import _fork
from snapstore._errors import (
    ClosedError,
    CorruptionError,
    DurabilityError,
    NotAHistoryError,
    ReadOnlyError,
    storage_errors,
)
from snapstore._log.quarantine import quarantine
from snapstore._log.record import (
    RECORD_START,
    Clock,
    LogRecord,
    decode_line,
    decode_record,
    encode_line,
    hidden_records,
    record_at,
)
from snapstore._log.synced import SyncedMark
from snapstore._records import Entry
from snapstore._values import loads

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from snapstore._log.lock import WriterLock
    from snapstore._log.seam import FileSystem
    from snapstore._options import Durability
    from snapstore._progress import TaskProgress
    from snapstore._report import Problem

# Maps an entry to the record already stored for it (a retry), or None. Gets the
# records staged so far in its batch and a reader of the log's records (so the
# owner need not hold the log: see IterationHistory's index).
Resolver = Callable[[Entry, list[LogRecord], Callable[[int, int], LogRecord]], LogRecord | None]

_READ_CHUNK = 1 << 20
# How far into a file that does not start with a record a record is looked for
# before the file is judged not to be a log (see refuse_foreign).
_FOREIGN_SCAN_BYTES = 1 << 20
# How long a queued writer sleeps before it looks again for a leader: only
# matters when a leader was interrupted before it could wake the queue.
_RECHECK_SECONDS = 0.5


class LogPosition(NamedTuple):
    """How far a reader has consumed a log: the last record's end, seq and length."""

    end: int = 0
    seq: int = 0
    length: int = 0


@dataclass(slots=True, eq=False)
class _Request:
    entries: list[Entry]
    records: list[LogRecord] = field(default_factory=list)
    # The line written for each record (None: resolved to a stored record).
    # A leader interrupted after writing hands its batch back to the queue; the
    # next leader finds these lines in the log instead of writing them twice.
    lines: list[bytes | None] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    # A queued request's thread sleeps on ``wake`` (acquired once, so the next
    # acquire blocks) until a leader releases it: its records are done, or it
    # is at the head of the queue and may lead. One lock per waiter, so a
    # leader wakes exactly the threads it has news for.
    wake: threading.Lock | None = None

    def outcome(self) -> list[LogRecord]:
        if self.error is not None:
            raise self.error
        return self.records

    def wake_up(self) -> None:
        """Release the waiter; the caller holds the queue lock, so no two release at once."""
        # A waiter only ever acquires, and every release happens under the queue
        # lock, so an unlocked ``wake`` means the waiter is already awake.
        if self.wake is not None and self.wake.locked():
            self.wake.release()


class CheckedLog:
    """One append-only log file, its reader position and its group commit."""

    def __init__(
        self,
        path: Path,
        *,
        fs: FileSystem,
        lock: WriterLock,
        quarantine_dir: Path,
        durability: Durability,
        on_record: Callable[[LogRecord], None],
        on_reset: Callable[[], None],
        resolve: Resolver | None = None,
        start: LogPosition | None = None,
        tolerant: bool = False,
        mark_slot: int = 0,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.read_only = read_only
        self.durability: Durability = durability
        self.problems: list[Problem] = []
        self._fs = fs
        self._lock = lock
        self._mark = SyncedMark(fs, lock, mark_slot)
        self._quarantine_dir = quarantine_dir
        self._on_record = on_record
        self._on_reset = on_reset
        self._resolve = resolve
        self._tolerant = tolerant
        self._storage_errors = storage_errors(path)  # stateless: one for every commit
        self._clock = Clock()
        self._state = threading.Lock()  # guards the position and the owner's index
        self._queue = threading.Lock()  # guards the group-commit queue and the leader flag
        self._pending: list[_Request] = []  # non-empty only while there is a leader
        self._leader_active = False
        self._company = 0  # how many other writers shared the last batch
        self._sync_seconds = 0.0  # how long the last sync took
        self._failure: BaseException | None = None
        self._closed = False
        self._opened_at = _fork.forks()

        self._position = LogPosition()
        self._line_count: int | None = 0
        with storage_errors(path):
            if not read_only:
                fs.make_dirs(path.parent)
            self._fd = self._open_file()
            try:
                # The log is not durable until its directory entry is. Sync it
                # even when the log already existed: its creator may have died
                # between creating it and syncing the directory, and our
                # acknowledged appends would then hang on an entry a power loss
                # removes. (A read-only handle acknowledges nothing.)
                if not read_only:
                    fs.sync_dir(path.parent)
                self._identity = fs.fd_identity(self._fd)
                if start is not None and start.seq > 0:
                    if self._starts_at(start):
                        self._position = start
                        self._line_count = None  # unknown: the lines before start were not read
                    else:
                        # The checkpoint describes another file (cut short, or
                        # rewritten by a repair that crashed before rebuilding the
                        # indices): the owner drops what it loaded from it, or the
                        # replay from the start would add every record a second time.
                        on_reset()
                with self._state:
                    self._catch_up(fs.size(self._fd), writer=False)
            except BaseException:
                # The caller gets no handle to close (a corrupt file, a failed
                # sync): release the descriptor here or it leaks.
                with contextlib.suppress(OSError):
                    fs.close(self._fd)
                raise

    # -- reading -------------------------------------------------------------

    @property
    def position(self) -> LogPosition:
        return self._position

    @property
    def last_seq(self) -> int:
        return self._position.seq

    def refresh(self) -> None:
        """Take in what other processes appended since the last look."""
        self.check_open()
        try:
            seen = self._fs.identity(self.path)
        except OSError as exc:
            self._storage_errors.reraise(exc)
            raise
        # Nothing new (the usual answer for a reader) needs no lock: the same
        # file, ending where our last record ends. Anything else is looked at
        # again under the lock, where the file is followed as it is by then.
        if seen != (self._identity, self._position.end):
            with self._state, self._storage_errors:
                self._follow(writer=False)

    def read(self, offset: int, length: int) -> LogRecord:
        """Read the record stored at ``offset`` (one pread)."""
        return record_at(self.read_line(offset, length), offset, length)

    def read_line(self, offset: int, length: int) -> dict[str, Any]:
        """The line stored at ``offset``, checked and decoded (one pread), as a dict."""
        self.check_open()
        try:
            line = self._fs.read(self._fd, length, offset)
        except OSError as exc:
            self._storage_errors.reraise(exc)
            raise
        obj = decode_line(line[:-1]) if line.endswith(b"\n") else None
        if obj is None:
            raise CorruptionError(self.path, offset, None, "record fails its checksum")
        return obj

    def scan(self, end: int | None = None) -> Iterator[LogRecord]:
        """Every valid record from the start of the file up to ``end``, in order."""
        self.check_open()
        stop = self._position.end if end is None else end
        with storage_errors(self.path), _reading_task(self.path, stop) as progress:
            for line_no, (offset, line, complete) in enumerate(
                read_lines(self._fs, self._fd, 0, stop, progress=progress), start=1
            ):
                record = decode_record(line, offset) if complete else None
                if record is not None:
                    yield record
                elif not self._tolerant:
                    raise CorruptionError(self.path, offset, line_no, "record fails its checksum")

    # -- writing -------------------------------------------------------------

    def append(self, entries: list[Entry]) -> list[LogRecord]:
        """Append ``entries`` durably (per ``durability``); return their records.

        An entry that ``resolve`` maps to an existing record is not written;
        that record is returned in its place.
        """
        self.check_writable()
        request = _Request(entries)
        if self._lock.held_by_me():
            # The caller decides something under the lock (a baseline pin): the
            # leader may be waiting for that very lock, so commit directly,
            # within the caller's hold.
            self._commit([request], held=True)
            return request.outcome()
        with self._queue:
            self._pending.append(request)
        while not request.done:
            if not self._lead(request):
                self._wait(request)
        return request.outcome()

    def catch_up_locked(self) -> None:
        """Take in everything committed so far; the caller holds the writer lock."""
        assert self._lock.held_by_me()
        self.check_writable()
        with self._state, storage_errors(self.path):
            self._follow(writer=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fs.close(self._fd)

    # -- internals -----------------------------------------------------------

    def _lead(self, request: _Request) -> bool:
        """Commit every queued request, unless another thread leads (then False).

        Interrupt-safe: a KeyboardInterrupt (or any exception a signal handler
        raises) can strike anywhere here. It belongs to this thread alone: the
        other requests of the batch go back to the head of the queue, unfailed,
        and the lead is released first thing in ``finally`` (a plain store, no
        call that could be interrupted) so no waiter is stranded behind it.
        """
        leading = False
        batch: list[_Request] = []
        try:
            with self._queue:
                if self._leader_active:
                    if request.wake is None:
                        request.wake = threading.Lock()
                        request.wake.acquire()
                    return False
                self._leader_active = leading = True
            if request.wake is None and self._company:  # a new leader, not a woken one
                self._gather()
            with self._queue:
                batch, self._pending = self._pending, []
            if not request.done and request not in batch:
                batch.append(request)  # dropped by an interrupted leader: ours to finish
            self._company = len(batch) - 1
            self._commit(batch)
        except BaseException:
            if leading:
                with self._queue:
                    self._pending[:0] = [r for r in batch if r is not request and not r.done]
            raise
        finally:
            if leading:
                self._leader_active = False
                self._wake(batch)
        return True

    def _wait(self, request: _Request) -> None:
        """Sleep until a leader has news for ``request``: done, or ours to lead.

        The wait is bounded: should a leader be interrupted before it woke us,
        we look again (and lead, if nobody does) instead of sleeping forever.
        """
        assert request.wake is not None
        try:
            request.wake.acquire(timeout=_RECHECK_SECONDS)
        except BaseException:  # interrupted while queued: nobody will miss it
            with self._queue:
                if request in self._pending:
                    self._pending.remove(request)
            raise

    def _gather(self) -> None:
        """Give the writers of the last batch a moment to queue again before committing.

        Their wakeups were only just issued: without a pause the new leader
        (still running) would sync alone while they queue for the next batch,
        and batches of 1 and N-1 would alternate, halving what a sync is shared
        by. The pause yields the interpreter until they are back, for at most
        half the last sync (waiting w < one sync to share it beats a sync of its
        own), and a writer without company never pauses.
        """
        deadline = time.perf_counter() + self._sync_seconds / 2
        # The queue holds our own request too: wait for it and our company.
        while len(self._pending) <= self._company and time.perf_counter() < deadline:
            time.sleep(0)

    def _wake(self, batch: list[_Request]) -> None:
        """Wake the finished requests of ``batch``, and the head of the queue to lead next.

        Waking one successor, not every waiter, keeps a crowd of writers from
        all waking to find that one of them got the lead. Its batch is taken
        when it runs, so everyone who queues until then shares its sync.
        """
        with self._queue:
            for other in batch:
                if other.done:
                    other.wake_up()
            if self._pending:
                self._pending[0].wake_up()

    def _commit(self, batch: list[_Request], *, held: bool = False) -> None:
        lock = self._lock
        try:
            if held:
                with self._state, self._storage_errors:
                    self._commit_locked(batch)
            else:
                # See WriterLock: no interrupt leaves this half-released.
                with lock.threads, lock.processes, self._state, self._storage_errors:
                    self._commit_locked(batch)
        except Exception as exc:  # an error of the commit: every caller of the batch learns it
            for request in batch:
                if not request.done:
                    request.error, request.done = exc, True
            raise
        # An interrupt (a BaseException that is not an Exception) is the
        # interrupted thread's alone: _lead hands the others back to the queue.

    def _commit_locked(self, batch: list[_Request]) -> None:
        self.check_writable()
        self._follow(writer=True)
        self._write_batch(batch)

    def _write_batch(self, batch: list[_Request]) -> None:
        staged, lines = self._stage(batch)
        if lines:
            start = self._position.end
            try:
                self._fs.write(self._fd, b"".join(lines))
            except BaseException:
                self._undo_partial_write(start)
                raise
            if self.durability == "fsync":
                self._sync(f"records from seq {staged[0].seq} may not be durable")
                self._advance_mark(start + sum(map(len, lines)))
            # The index first, the position last: interrupted in between, the
            # next catch-up offers these records again, and the index (which
            # ignores seqs it holds) takes in the rest.
            for record in staged:
                self._on_record(record)
            self._advance(staged[-1], len(staged))
        for request in batch:
            request.done = True

    def _stage(self, batch: list[_Request]) -> tuple[list[LogRecord], list[bytes]]:
        """Give the batch's new entries their seqs and lines; resolve the rest."""
        ts = self._clock.now()
        staged: list[LogRecord] = []
        lines: list[bytes] = []
        seq = self._position.seq
        offset = self._position.end
        resolve = self._resolve
        read = self.read
        for request in batch:
            if request.records:  # staged by a leader that was interrupted
                if self._written(request):
                    request.done = True
                    continue
                request.records.clear()
                request.lines.clear()
            for entry in request.entries:
                existing = resolve(entry, staged, read) if resolve is not None else None
                if existing is not None:
                    request.records.append(existing)
                    request.lines.append(None)
                    continue
                seq += 1
                line = encode_line(seq, ts, entry)
                record = LogRecord(seq, ts, entry.key, loads(entry.data_json), offset, len(line))
                offset += len(line)
                lines.append(line)
                staged.append(record)
                request.records.append(record)
                request.lines.append(line)
        return staged, lines

    def _written(self, request: _Request) -> bool:
        """Whether the lines staged for ``request`` are in the log we have taken in."""
        end = self._position.end
        for record, line in zip(request.records, request.lines, strict=True):
            if line is not None and (
                record.offset + record.length > end
                or self._fs.read(self._fd, record.length, record.offset) != line
            ):
                return False
        return True

    def _undo_partial_write(self, start: int) -> None:
        # Our own unacknowledged bytes: cut them so the file stays valid. If even
        # that fails, the next writer finds a torn tail and quarantines it.
        try:
            if self._fs.size(self._fd) > start:
                self._fs.truncate(self._fd, start)
        except OSError:
            return

    def _advance(self, last: LogRecord, count: int) -> None:
        self._position = LogPosition(last.offset + last.length, last.seq, last.length)
        if self._line_count is not None:
            self._line_count += count

    def _follow(self, *, writer: bool) -> None:
        """Take in the file as it is now: a replacement, then new lines, then a torn tail."""
        # One stat of the path answers both questions: was the file replaced,
        # and (when it was not, so the path is our file) how far does it reach.
        identity, size = self._fs.identity(self.path)
        if identity != self._identity:
            # repair() publishes a rewritten log with an atomic rename; a handle
            # still reading the old inode starts over from the new file.
            self._switch_to_replacement()
            size = self._fs.size(self._fd)
        self._catch_up(size, writer=writer)

    def _open_file(self) -> int:
        """Open the log: read-only, or for appending (created if absent)."""
        if self.read_only:
            return self._fs.open_read(self.path)
        fd, _ = self._fs.open_log(self.path)
        return fd

    def _switch_to_replacement(self) -> None:
        fd = self._open_file()
        try:
            identity = self._fs.fd_identity(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                self._fs.close(fd)
            raise
        # Switch to the new file and start over before closing the old one, so a
        # failing close leaves neither a leaked descriptor nor a stale position.
        old, self._fd, self._identity = self._fd, fd, identity
        self._reset()
        self._fs.close(old)

    def _catch_up(self, size: int, *, writer: bool) -> None:
        """Consume complete valid lines after our position; deal with the tail.

        A damaged line followed by a valid one is corruption (an error, or a
        reported problem in tolerant mode). Damage that nothing valid follows is
        a torn tail: readers ignore it; a writer (holding the lock, so no live
        writer is mid-write) moves it to quarantine and truncates.
        """
        if size == self._position.end:
            return  # nothing new: the common case of a writer with no rivals
        if size < self._position.end:
            self._reset()
        if self.durability == "fsync":
            self._make_durable(size, writer=writer)
        damaged: list[Problem] = []
        for offset, line, complete in read_lines(self._fs, self._fd, self._position.end, size):
            if complete:
                self._take_line(line, offset, damaged)
        tail = damaged[0].offset if damaged else self._position.end
        if tail < size and writer:
            self._recover_tail(tail, size)

    def _take_line(self, line: bytes, offset: int, damaged: list[Problem]) -> None:
        record = decode_record(line, offset)
        line_no = None if self._line_count is None else self._line_count + len(damaged) + 1
        if record is None or record.seq <= self._position.seq:
            reason = (
                "record fails its checksum"
                if record is None
                else (f"seq {record.seq} does not follow seq {self._position.seq}")
            )
            from snapstore._report import Problem  # noqa: PLC0415 - only damage needs it

            damaged.append(Problem(offset, len(line) + 1, line_no, reason))
            return
        if damaged:
            # Valid data after damage: not a torn tail but corruption.
            first = damaged[0]
            if not self._tolerant:
                raise CorruptionError(self.path, first.offset, first.line, first.reason)
            self.problems.extend(damaged)
            damaged.clear()
        # The index first, then the position (see _write_batch).
        self._on_record(record)
        self._advance(record, 1)

    def _recover_tail(self, tail: int, size: int) -> None:
        """Move the damaged tail ``[tail, size)`` to quarantine, keeping whole records in it.

        An interrupted append leaves a prefix of its lines, so a tail is normally
        all damage. But a flipped newline can glue an acknowledged record to the
        one before it, both then hidden inside one damaged line. Records found
        inside that continue the seqs without a gap are kept (after the
        quarantine copy, re-appended byte for byte), so no acknowledged record
        leaves the log and no seq is used twice. A record after a gap is not
        kept: a power loss can drop an unsynced write yet keep a later one, and
        neither was acknowledged. The unterminated last fragment is never kept:
        it is an interrupted write.
        """
        data = self._fs.read(self._fd, size - tail, tail)
        kept: list[bytes] = []
        last_seq = self._position.seq
        for _, line in hidden_records(data[: data.rfind(b"\n") + 1]):
            obj = decode_line(line)
            if obj is None or obj["seq"] != last_seq + 1:
                break
            kept.append(line + b"\n")
            last_seq = obj["seq"]
        quarantine(
            self._fs,
            self._quarantine_dir,
            source=self.path,
            offset=tail,
            data=data,
            reason="torn tail: bytes after the last complete record, left by an interrupted "
            f"append ({len(kept)} whole record(s) inside were kept in the log)",
        )
        # The mark must not claim the bytes about to go: a record written in
        # their place is not durable until its writer syncs it.
        self._mark.publish(self._identity, tail)
        # Only once the copy is durable may the bytes leave the log.
        self._fs.truncate(self._fd, tail)
        if kept:
            self._fs.write(self._fd, b"".join(kept))
        self._sync("the recovery of a torn tail may not be durable")
        self._advance_mark(tail + sum(len(line) for line in kept))
        offset = tail
        for line in kept:
            self._take_line(line[:-1], offset, [])
            offset += len(line)

    def _make_durable(self, size: int, *, writer: bool) -> None:
        """Make bytes up to ``size``, which other handles wrote, durable before taking them in.

        Their writer syncs them before it acknowledges them, but it may have
        died between its write and its sync, or written in "write" mode. A
        retry acknowledged from such a record, a pin naming it, a reader
        returning it: each would be undone by a power cut. Unless the mark
        already vouches for them, one sync of our own makes every byte
        written so far durable (a sync flushes the file, not one writer's part).
        """
        if self._mark.covers(self._identity, size):
            return
        self._sync("records other processes appended may not be durable")
        if writer:  # only the lock holder moves the mark: a reader could race a truncation
            self._advance_mark(size)

    def _advance_mark(self, end: int) -> None:
        """Tell other handles that ``[0, end)`` is durable; the caller holds the writer lock."""
        try:
            self._mark.publish(self._identity, end)
        except OSError:
            # The records are durable whatever happens here: a mark left behind
            # only makes the next handle that takes them in sync for itself.
            return

    def _sync(self, consequence: str) -> None:
        started = time.perf_counter()
        try:
            self._fs.sync(self._fd)
        except OSError as exc:
            # The kernel may have dropped the dirty pages and cleared the error:
            # a second fsync could "succeed" with the data gone. Never retry.
            self._failure = exc
            raise DurabilityError(
                exc.errno,
                f"fsync of {self.path} failed ({exc.strerror}): {consequence}; "
                "reopen to write again",
            ) from exc
        self._sync_seconds = time.perf_counter() - started

    def _reset(self) -> None:
        self._position = LogPosition()
        self._line_count = 0
        self.problems.clear()
        self._on_reset()

    def _starts_at(self, start: LogPosition) -> bool:
        """Whether the record ending at ``start.end`` is the one a checkpoint names."""
        if start.length <= 0 or start.end < start.length or start.end > self._fs.size(self._fd):
            return False
        line = self._fs.read(self._fd, start.length, start.end - start.length)
        obj = decode_line(line[:-1]) if line.endswith(b"\n") else None
        return obj is not None and obj["seq"] == start.seq

    @property
    def inherited(self) -> bool:
        """Whether this handle was opened in the parent of a fork (see _fork)."""
        return self._opened_at != _fork.forks()

    def check_open(self) -> None:
        """Raise unless this handle is open and was opened in this process (see _fork)."""
        if self._closed:
            raise ClosedError(f"{self.path} is closed")
        _fork.check_not_inherited(self._opened_at, self.path)

    def check_not_read_only(self) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{self.path} was opened with read_only=True: it is not written")

    @property
    def failed(self) -> bool:
        """Whether a sync failed: the handle then refuses writes until reopened."""
        return self._failure is not None

    def check_writable(self) -> None:
        self.check_open()
        self.check_not_read_only()
        if self._failure is not None:
            raise ClosedError(
                f"{self.path}: an earlier sync failed ({self._failure}); "
                "this handle refuses writes until the file is reopened"
            )


def refuse_foreign(fs: FileSystem, path: Path, lock: Path) -> None:
    """Raise NotAHistoryError if ``path`` holds bytes that snapstore did not write.

    Called before anything is created beside the file or changed in it: a
    user's JSON Lines file must never have its lines taken for a torn tail and
    moved to quarantine. A log's writer creates its lock file ``lock`` (and
    syncs that directory entry) before it creates the log, and never deletes
    it, so a log with its lock file beside it is ours, whatever a crash left
    in it. Without one (copied elsewhere, say), a file is still a log if it
    holds a valid record in its first MiB, or if it is a first record cut
    short (no complete line, starting as a record does). Anything else is
    someone else's file, even one whose lines start like ours. A missing or
    empty file is a log to be.
    """
    if lock.exists():
        return
    try:
        fd = fs.open_read(path)
    except FileNotFoundError:
        return
    try:
        size = fs.size(fd)
        if size == 0:
            return
        lines = 0
        for _, line, complete in read_lines(fs, fd, 0, min(size, _FOREIGN_SCAN_BYTES)):
            if complete and decode_line(line) is not None:
                return
            lines += complete
        head = fs.read(fd, 16, 0)
        if not lines and head[: len(RECORD_START)] == RECORD_START[: len(head)]:
            return
    finally:
        fs.close(fd)
    raise NotAHistoryError(
        f"{path} is not a snapstore history: it has no lock file beside it and no "
        f"snapstore record in its first MiB (it starts with {head!r}). Nothing was "
        f"changed. To record its JSON lines in a history, use `snapstore import {path} "
        "NEW.jsonl` or IterationHistory.import_jsonl()"
    )


def _reading_task(path: Path, size: int) -> contextlib.AbstractContextManager[TaskProgress | None]:
    """The progress of reading ``path`` whole, if anyone listens; else nothing to tell.

    A listener is installed only through ``snapstore._progress``: in a process
    that never imported it, nobody listens, and a short process that reads a
    history is spared the import.
    """
    progress = sys.modules.get("snapstore._progress")
    if progress is None:
        return contextlib.nullcontext()
    return progress.TaskProgress(progress.file_task("reading", path), size)  # type: ignore[no-any-return]


def read_lines(
    fs: FileSystem, fd: int, start: int, stop: int, *, progress: TaskProgress | None = None
) -> Iterator[tuple[int, bytes, bool]]:
    """Split bytes ``[start, stop)`` of a file into lines: ``(offset, line, complete)``.

    Complete lines come without their newline; bytes after the last newline
    come last, with ``complete=False``. Reads in chunks, so memory stays bounded
    by the longest line. ``progress`` is told how many bytes after ``start``
    the caller has taken, before each chunk: once a MiB, not once a line.
    """
    offset = start
    chunk_size = _READ_CHUNK
    while offset < stop:
        if progress is not None:
            progress.advance_to(offset - start)
        chunk = fs.read(fd, min(chunk_size, stop - offset), offset)
        if not chunk:
            return  # the file shrank under us
        pos = 0
        while (newline := chunk.find(b"\n", pos)) >= 0:
            yield offset + pos, chunk[pos:newline], True
            pos = newline + 1
        if pos == 0:
            if offset + len(chunk) >= stop:
                yield offset, chunk, False
                return
            chunk_size *= 2  # a line longer than the chunk: read more at once
        offset += pos
