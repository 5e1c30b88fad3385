"""verify and repair: find every damaged byte, and move it aside without losing a valid record.

verify reads everything and reports each problem with its path, line and byte
offset. repair, under the writer lock:

1. copies each damaged region of a log to quarantine (with a note of why);
2. recovers valid records from inside a damaged region (a bit flip in a newline
   glues two records into one bad line: both are found again by their
   ``{"seq":`` start);
3. writes the log anew from its valid records (temp, sync, rename, directory
   sync) — or, when the only damage is a torn tail, truncates it off;
4. removes temp files left by crashed writers and rebuilds the derived indices.
"""

from __future__ import annotations

import contextlib
import stat
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import (
    CorruptionError,
    DurabilityError,
    InvalidInputError,
    StorageError,
    storage_errors,
)
from snapstore._log import seam
from snapstore._log.checked import LogPosition, check_flag, read_lines, refuse_foreign
from snapstore._log.lock import WriterLock, lock_file_of
from snapstore._log.quarantine import quarantine
from snapstore._log.record import LogRecord, decode_record, hidden_records
from snapstore._log.synced import BASELINE_SLOT, SNAPSHOT_SLOT, SyncedMark
from snapstore._names import group_key
from snapstore._report import CheckReport, Finding, Problem
from snapstore.backends.local.checkpoint import (
    INDEX_JSON,
    INDEX_PARQUET,
    load_checkpoint,
    read_position,
)
from snapstore.backends.local.layout import (
    BASELINE_LOG,
    HISTORY_DIR,
    LOCK_FILE,
    MARKER,
    QUARANTINE_DIR,
    SNAPSHOT_LOG,
    store_of_history,
)
from snapstore.backends.local.snapshot_index import IndexRow, SnapshotIndex
from snapstore.backends.local.store import (
    LocalBackend,
    index_snapshot,
    marker_problem,
    snapshot_problem,
)
from snapstore.history import DEFAULT_LOCK_TIMEOUT, default_quarantine_dir, refuse_store_log

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from snapstore._log.seam import FileSystem


# Damage as found: where it is and why, and its bytes (for the quarantine copy).
_Damaged = tuple[Problem, bytes]


@dataclass(slots=True)
class _LogScan:
    path: Path
    size: int
    good: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, line with newline)
    damage: list[_Damaged] = field(default_factory=list)  # one per damaged region

    def only_tail_damage(self) -> bool:
        """Whether cutting the file at its damage removes nothing but damage.

        Not so when a record was salvaged from inside it: a whole last record
        whose newline was flipped or never written is valid and must be kept.
        """
        if len(self.damage) != 1:
            return False
        damage, _ = self.damage[0]
        salvaged = bool(self.good) and self.good[-1][0] >= damage.offset
        return damage.offset + damage.length == self.size and not salvaged


# -- scanning one log ------------------------------------------------------------


def _scan_log(
    fs: FileSystem, path: Path, size: int, on_record: Callable[[LogRecord], str | None]
) -> _LogScan:
    """Classify every byte of ``path`` up to ``size`` as a valid record or damage.

    ``on_record`` sees each valid record in order and may reject it (returning
    why), which makes it damage too.
    """
    scan = _LogScan(path, size)
    fd = fs.open_read(path)
    try:
        last_seq = 0
        region: list[_Damaged] = []  # consecutive bad lines
        for line_no, (offset, line, complete) in enumerate(read_lines(fs, fd, 0, size), 1):
            raw = line + b"\n" if complete else line
            record = decode_record(line, offset) if complete else None
            if record is not None and region:
                # Records salvaged from the damage come before this one: take
                # them first, so that seqs stay in order and on_record sees
                # the records in the order they were written.
                last_seq = _settle(scan, region, last_seq, on_record)
                region = []
            problem = _problem(record, last_seq, on_record)
            if problem is None:
                assert record is not None
                scan.good.append((offset, raw))
                last_seq = record.seq
            else:
                region.append((Problem(offset, len(raw), line_no, problem), raw))
        if region:
            _settle(scan, region, last_seq, on_record)
    finally:
        fs.close(fd)
    return scan


def _problem(
    record: LogRecord | None, last_seq: int, on_record: Callable[[LogRecord], str | None]
) -> str | None:
    """Why a line is not a valid next record (None when it is one)."""
    if record is None:
        return "checksum mismatch: not a complete, valid record"
    if record.seq <= last_seq:
        return f"seq {record.seq} does not follow seq {last_seq}"
    return on_record(record)


def _settle(
    scan: _LogScan,
    region: list[_Damaged],
    last_seq: int,
    on_record: Callable[[LogRecord], str | None],
) -> int:
    """Record a damaged region, recovering any whole records hidden inside it."""
    first, _ = region[0]
    start = first.offset
    data = b"".join(raw for _, raw in region)
    if start + len(data) == scan.size and not data.endswith(b"\n") and len(region) == 1:
        reason = "torn tail: an incomplete last record, left by an interrupted append"
    else:
        more = f" (and {len(region) - 1} more damaged lines)" if len(region) > 1 else ""
        reason = first.reason + more
    scan.damage.append((Problem(start, len(data), first.line, reason), data))
    for position, line in hidden_records(data):
        offset = start + position
        record = decode_record(line, offset)
        if record is not None and _problem(record, last_seq, on_record) is None:
            scan.good.append((offset, line + b"\n"))
            last_seq = record.seq
    return last_seq


def _findings(scan: _LogScan) -> list[Finding]:
    return [Finding(scan.path, p.reason, p.offset, p.line) for p, _ in scan.damage]


@contextlib.contextmanager
def _cut(
    fs: FileSystem, lock_path: Path, logs: list[Path], *, hold: bool, lock_timeout: float
) -> Iterator[tuple[list[int], WriterLock]]:
    """The sizes of ``logs`` at one moment no writer is mid-commit: one consistent cut.

    Taken under the writer lock, so every record below a cut is whole, and a
    pin below the pin log's cut names a snapshot below the snapshot log's
    (a pin is committed after the snapshot it names). Below the cut the logs
    only grow, so a check can scan them after the lock is released; repair
    (``hold``) keeps the lock until it is done, so that nothing it judged can
    change before it acts.
    """
    # A check only reads: it opens an existing lock file read-only and creates none.
    lock = WriterLock(lock_path, fs, lock_timeout, create=hold)
    try:
        lock.acquire()
        try:
            sizes = [path.stat().st_size if path.exists() else 0 for path in logs]
            if hold:
                yield sizes, lock
        finally:
            lock.release()
        if not hold:
            yield sizes, lock
    finally:
        lock.close()


def _check_log(
    fs: FileSystem,
    path: Path,
    size: int,
    on_record: Callable[[LogRecord], str | None],
    repairing: _Repairing | None,
) -> CheckReport:
    """Check ``path`` up to ``size``; with ``repairing`` (under the lock), move its damage aside."""
    report = CheckReport(files=1)
    scan = _scan_log(fs, path, size, on_record)
    if repairing is not None:
        report.actions = _repair_log(fs, scan, repairing)
    report.findings = _findings(scan)
    report.records = len(scan.good)
    return report


@dataclass(frozen=True, slots=True)
class _Repairing:
    """What repair of one log needs besides the scan: where damage goes, the log's mark."""

    quarantine_dir: Path
    mark: SyncedMark
    dry_run: bool


# -- fixing one log --------------------------------------------------------------


def _repair_log(fs: FileSystem, scan: _LogScan, repairing: _Repairing) -> list[str]:
    """Move the damage of a scanned log aside; the caller holds the log's writer lock."""
    if not scan.damage:
        return []
    kept = len(scan.good)
    quarantine_dir, mark = repairing.quarantine_dir, repairing.mark
    if repairing.dry_run:
        return [
            f"would move {d.length} bytes at {scan.path} byte {d.offset} to quarantine"
            for d, _ in scan.damage
        ] + [f"would keep {kept} valid records of {scan.path}"]
    actions = []
    for damage, data in scan.damage:
        moved = quarantine(
            fs,
            quarantine_dir,
            source=scan.path,
            offset=damage.offset,
            data=data,
            reason=damage.reason,
        )
        actions.append(
            f"moved {damage.length} bytes at {scan.path} byte {damage.offset} to {moved}"
        )
    # The copies are durable before the log changes: nothing exists only in memory.
    if scan.only_tail_damage():
        fd, _ = fs.open_log(scan.path)
        try:
            end, identity = scan.damage[0][0].offset, fs.fd_identity(fd)
            # Lowered first: the mark must never claim bytes the file may not hold.
            mark.publish(identity, end)
            fs.truncate(fd, end)
            fs.sync(fd)
        finally:
            fs.close(fd)
        actions.append(f"truncated the torn tail of {scan.path}; kept {kept} valid records")
    else:
        fs.write_atomic(scan.path, b"".join(line for _, line in scan.good))
        # The new file is synced and its entry too: say so, or every handle
        # that switches to it syncs it once more.
        mark.publish(*fs.identity(scan.path))
        actions.append(f"rewrote {scan.path} with its {kept} valid records")
    return actions


# -- histories ---------------------------------------------------------------


def check_history(
    path: Path,
    *,
    repair: bool = False,
    dry_run: bool = False,
    quarantine_dir: Path | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> CheckReport:
    """Verify (or repair) the history file ``path``, waiting up to ``lock_timeout`` for its lock."""
    check_flag("dry_run", dry_run)
    fs = seam.current()
    keys: set[str] = set()

    def unique_key(record: LogRecord) -> str | None:
        if record.key is None:
            return None
        if record.key in keys:
            return f"key {record.key!r} appears twice"
        keys.add(record.key)
        return None

    refuse_store_log(path)
    with storage_errors(path):
        refuse_foreign(fs, path, lock_file_of(path))
    if quarantine_dir is None:
        store = store_of_history(path)
        quarantine_dir = default_quarantine_dir(path) if store is None else store / QUARANTINE_DIR
    lock_path = lock_file_of(path)
    with (
        storage_errors(path),
        _cut(fs, lock_path, [path], hold=repair, lock_timeout=lock_timeout) as ((size,), lock),
    ):
        repairing = _Repairing(quarantine_dir, SyncedMark(fs, lock), dry_run) if repair else None
        return _check_log(fs, path, size, unique_key, repairing)


# -- stores ------------------------------------------------------------------


def check_store(
    root: Path,
    *,
    repair: bool = False,
    dry_run: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> CheckReport:
    """Verify (or repair) every file of the store at ``root``, beside live writers.

    One consistent view: the snapshot and pin logs are judged up to one cut
    (see ``_cut``), and the checkpoint files are read before it, so that they
    cover no record the check did not scan (a checkpoint only ever covers
    records already in the log). repair decides and acts under the writer
    lock; verify holds it only to take the cut.
    """
    check_flag("dry_run", dry_run)
    fs = seam.current()
    if not (root / MARKER).is_file():
        raise InvalidInputError(f"{root} is not a snapstore store (no {MARKER} file)")
    problem = marker_problem(root)
    if problem is not None:
        # Nothing else is touched: a store that cannot be opened is not
        # repaired on a guess of what it holds.
        return CheckReport(findings=[Finding(root / MARKER, problem)], files=1)
    report = CheckReport()
    replay = _Replay()
    quarantine_dir = root / QUARANTINE_DIR
    logs = [
        (root / SNAPSHOT_LOG, SNAPSHOT_SLOT, replay.snapshot),
        (root / BASELINE_LOG, BASELINE_SLOT, replay.pin),
    ]
    with storage_errors(root):
        indices = None if repair else _read_indices(root)
        paths = [path for path, _, _ in logs]
        cut = _cut(fs, root / LOCK_FILE, paths, hold=repair, lock_timeout=lock_timeout)
        with cut as (sizes, lock):
            logs_changed = False
            for (path, slot, on_record), size in zip(logs, sizes, strict=True):
                if path.exists():
                    mark = SyncedMark(fs, lock, slot)
                    repairing = _Repairing(quarantine_dir, mark, dry_run) if repair else None
                    part = _check_log(fs, path, size, on_record, repairing)
                    report.merge(part)
                    logs_changed = logs_changed or bool(part.actions)
            if repair:
                damaged = _judge_indices(root, _read_indices(root), replay.index)
                if logs_changed or damaged:
                    # Only then: a dry run of a clean store must have nothing to do.
                    report.actions.extend(_rebuild_indices(root, dry_run, lock_timeout))
        if indices is not None:
            report.findings.extend(_judge_indices(root, indices, replay.index))
        for history in sorted((root / HISTORY_DIR).glob("*.jsonl")):
            report.merge(
                check_history(
                    history,
                    repair=repair,
                    dry_run=dry_run,
                    quarantine_dir=quarantine_dir,
                    lock_timeout=lock_timeout,
                )
            )
        for directory in (root, root / HISTORY_DIR, quarantine_dir):
            report.merge(_check_temps(fs, directory, repair=repair, dry_run=dry_run))
    return report


class _Replay:
    """Rebuilds a store's index from its logs while they are scanned."""

    def __init__(self) -> None:
        self.index = SnapshotIndex()

    def snapshot(self, record: LogRecord) -> str | None:
        problem = snapshot_problem(record.data)
        if problem is None:
            index_snapshot(self.index, record)
        return problem

    def pin(self, record: LogRecord) -> str | None:
        seq = record.data.get("snapshot_seq")
        if not isinstance(seq, int) or not self.index.has(seq):
            return f"baseline pin names snapshot_seq {seq!r}, which is not stored"
        expected = group_key(self.index.stages[seq], self.index.comparison_keys[seq])
        found = group_key(str(record.data.get("stage")), str(record.data.get("comparison_key")))
        return None if found == expected else f"baseline pin {found} does not match seq {seq}"


def check_path(
    path: Path,
    *,
    repair: bool = False,
    dry_run: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> CheckReport:
    """Verify (or repair) a store directory or a standalone history file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise StorageError(exc.errno, f"{path}: no such file or directory") from exc
    except OSError as exc:
        # Not a directory, permission denied, a name too long: said as the OS says it.
        reason = exc.strerror or str(exc)
        raise StorageError(exc.errno, f"{path}: {reason[:1].lower()}{reason[1:]}") from exc
    if stat.S_ISDIR(mode):
        return check_store(path, repair=repair, dry_run=dry_run, lock_timeout=lock_timeout)
    if path.suffix == ".jsonl" and stat.S_ISREG(mode):
        return check_history(path, repair=repair, dry_run=dry_run, lock_timeout=lock_timeout)
    raise InvalidInputError(f"{path} is neither a snapstore store nor a history (.jsonl) file")


def _check_temps(fs: FileSystem, directory: Path, *, repair: bool, dry_run: bool) -> CheckReport:
    report = CheckReport()
    if not directory.is_dir():
        return report
    # Only what repair would remove: a live writer's temp is work in progress,
    # and reporting one that repair must leave would make a store never clean.
    stale = seam.stale_temps(directory)
    if not repair:
        report.findings.extend(
            Finding(p, "temp file of an interrupted atomic write (repair removes it)")
            for p in stale
        )
    elif dry_run:
        report.actions.extend(f"would remove stale temp file {p}" for p in stale)
    else:
        report.actions.extend(
            f"removed stale temp file {p}" for p in fs.remove_stale_temps(directory)
        )
    return report


def _rebuild_indices(root: Path, dry_run: bool, lock_timeout: float) -> list[str]:
    if dry_run:
        return [f"would rebuild {INDEX_PARQUET} and {INDEX_JSON} from {SNAPSHOT_LOG}"]
    # The old derived files may describe the log as it was before repair
    # rewrote it. Remove them first (they are caches), so that a crash between
    # the two writes below leaves a missing file, never one of another log.
    fs = seam.current()
    stale = [root / name for name in (INDEX_JSON, INDEX_PARQUET) if (root / name).exists()]
    for path in stale:
        fs.unlink(path)
    if stale:
        fs.sync_dir(root)
    try:
        backend = LocalBackend(
            root,
            durability="fsync",
            lock_timeout=lock_timeout,
            max_record_bytes=1,
            checkpoint_every=1,
            use_checkpoint=False,
        )
    except DurabilityError as exc:
        # The handle that failed its sync is this one, already gone: the
        # caller's own handles have not failed, and must not be told to reopen.
        raise StorageError(exc.errno, f"{root}: rebuilding the indices failed: {exc}") from exc
    try:
        backend.checkpoint()
    finally:
        backend.close()
    return [f"rebuilt {INDEX_PARQUET} and {INDEX_JSON} from {SNAPSHOT_LOG}"]


@dataclass(frozen=True, slots=True)
class _Indices:
    """One reading of the derived files: each loaded, or why it could not be, or None (absent).

    Other processes replace them at any time (atomically, one after the
    other): each is read once, and judged as read.
    """

    parquet: tuple[SnapshotIndex, LogPosition] | str | None
    parquet_crc: str | None
    document: dict[str, Any] | str | None


def _read_indices(root: Path) -> _Indices:
    try:
        data: bytes | None = (root / INDEX_PARQUET).read_bytes()
    except FileNotFoundError:
        data = None
    parquet: tuple[SnapshotIndex, LogPosition] | str | None = None
    if data is not None:
        try:
            parquet = load_checkpoint(root, root / SNAPSHOT_LOG, strict=True, data=data)
        except (CorruptionError, OSError) as exc:
            parquet = f"unreadable checkpoint: {exc}"
    document: dict[str, Any] | str | None
    try:
        body = orjson.loads((root / INDEX_JSON).read_bytes())
        read_position(body)
        document = body
    except FileNotFoundError:
        document = None
    except (orjson.JSONDecodeError, OSError, ValueError) as exc:
        document = f"not a snapstore index document: {exc}"
    crc = None if data is None else f"{zlib.crc32(data):08x}"
    return _Indices(parquet, crc, document)


def _judge_indices(root: Path, indices: _Indices, replay: SnapshotIndex) -> list[Finding]:
    """Derived files must agree with the log as it stood at the position each covers.

    Either may be absent, or stale (covering an earlier position): both are
    legitimate after a crash. Content that disagrees with the log is not.
    """
    findings: list[Finding] = []
    parquet_seq: int | None = None
    if indices.parquet is not None:
        found, parquet_seq = _judge_parquet(root / INDEX_PARQUET, indices.parquet, replay)
        findings.extend(found)
    if indices.document is not None:
        findings.extend(_judge_index_json(root, indices, parquet_seq, replay))
    return findings


def _judge_parquet(
    parquet: Path, loaded: tuple[SnapshotIndex, LogPosition] | str, replay: SnapshotIndex
) -> tuple[list[Finding], int | None]:
    """Findings about index.parquet, and the seq it covers (None if unreadable)."""
    if isinstance(loaded, str):
        return [Finding(parquet, loaded)], None
    index, position = loaded
    # The position must name a record of the log exactly: its seq, where it
    # ends and its length (a changed digit of the offset is damage too).
    if not _is_log_position(replay, position):
        return [Finding(parquet, _not_in_log(position))], position.seq
    expected = _replay_prefix(replay, position.seq)
    found = [
        Finding(parquet, f"row of snapshot_seq {seq} disagrees with the log")
        for seq in range(1, max(index.last_seq(), expected.last_seq()) + 1)
        if _row(index, seq) != _row(expected, seq)
    ]
    return found, position.seq


def _judge_index_json(
    root: Path, indices: _Indices, parquet_seq: int | None, replay: SnapshotIndex
) -> list[Finding]:
    """The document must agree with the log at the position it covers.

    It may lag behind index.parquet (a crash between the two atomic writes),
    or be newer than the parquet file read (a checkpoint written between the
    two readings), which is harmless; content that disagrees with the log is not.
    """
    document = root / INDEX_JSON
    body = indices.document
    if isinstance(body, str):
        return [Finding(document, body)]
    assert body is not None
    covered = read_position(body)
    if not _is_log_position(replay, covered):
        return [Finding(document, _not_in_log(covered))]
    expected = _replay_prefix(replay, covered.seq)
    findings = []
    if body.get("latest") != expected.flat_latest() or body.get("groups") != expected.flat_groups():
        findings.append(Finding(document, "latest or group entries disagree with the log"))
    # Written as a pair: when both cover one position, the document records
    # the parquet file's CRC, so any changed byte of it is detected (also one
    # that leaves it readable, in the copy of the schema in its footer, say).
    if parquet_seq == covered.seq and body.get("parquet_crc32") != indices.parquet_crc:
        findings.append(
            Finding(
                root / INDEX_PARQUET,
                f"CRC {indices.parquet_crc} differs from the one {INDEX_JSON} holds",
            )
        )
    return findings


def _row(index: SnapshotIndex, seq: int) -> IndexRow | None:
    return index.row(seq) if index.has(seq) else None


def _is_log_position(replay: SnapshotIndex, position: LogPosition) -> bool:
    if position.seq == 0:
        return position == LogPosition()
    seq = position.seq
    return (
        replay.has(seq)
        and position.length == replay.lengths[seq]
        and position.end == replay.offsets[seq] + replay.lengths[seq]
    )


def _not_in_log(position: LogPosition) -> str:
    return (
        f"covers seq {position.seq} ending at byte {position.end}, which is not a record of the log"
    )


def _replay_prefix(replay: SnapshotIndex, last: int) -> SnapshotIndex:
    """The index as it stood after snapshot ``last`` (a seq the log holds, or 0)."""
    prefix = SnapshotIndex()
    for seq in range(1, last + 1):
        if replay.has(seq):
            row = replay.row(seq)
            prefix.add(
                seq,
                row.run_id,
                row.stage,
                row.comparison_key,
                row.created_us,
                row.offset,
                row.length,
            )
    return prefix
