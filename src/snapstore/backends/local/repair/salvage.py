"""One log, checked or repaired: every byte a valid record or damage, the damage moved aside.

A scan classifies each line up to a consistent cut of the log (see
``consistent_cut``); consecutive damaged lines make one damaged region, and
whole records hidden inside a region (a flipped newline glues two records into
one bad line) are salvaged. Repair copies each region to quarantine, then
truncates a torn tail off or writes the log anew from its valid records.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from snapstore._log.checked import read_lines
from snapstore._log.lock import WriterLock
from snapstore._log.quarantine import quarantine
from snapstore._log.record import LogRecord, decode_record, hidden_records
from snapstore._progress import TaskProgress, file_task
from snapstore._report import CheckReport, Finding, Problem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from snapstore._log.seam import FileSystem
    from snapstore._log.synced import SyncedMark

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


@dataclass(frozen=True, slots=True)
class Repairing:
    """What repair of one log needs besides the scan: where damage goes, the log's mark."""

    quarantine_dir: Path
    mark: SyncedMark
    dry_run: bool


@contextlib.contextmanager
def consistent_cut(
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


def check_log(
    fs: FileSystem,
    path: Path,
    size: int,
    on_record: Callable[[LogRecord], str | None],
    repairing: Repairing | None,
) -> CheckReport:
    """Check ``path`` up to ``size``; with ``repairing`` (under the lock), move its damage aside.

    ``on_record`` sees each valid record in order and may reject it (returning
    why), which makes it damage too.
    """
    report = CheckReport(files=1)
    scan = _scan_log(fs, path, size, on_record)
    if repairing is not None:
        report.actions = _repair_log(fs, scan, repairing)
    report.findings = [
        Finding(path, problem.reason, problem.offset, problem.line) for problem, _ in scan.damage
    ]
    report.records = len(scan.good)
    return report


# -- scanning ------------------------------------------------------------------


def _scan_log(
    fs: FileSystem, path: Path, size: int, on_record: Callable[[LogRecord], str | None]
) -> _LogScan:
    """Classify every byte of ``path`` up to ``size`` as a valid record or damage."""
    scan = _LogScan(path, size)
    fd = fs.open_read(path)
    try:
        last_seq = 0
        region: list[_Damaged] = []  # consecutive bad lines
        with TaskProgress(file_task("checking", path), size) as progress:
            lines = read_lines(fs, fd, 0, size, progress=progress)
            for line_no, (offset, line, complete) in enumerate(lines, 1):
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


# -- fixing --------------------------------------------------------------------


def _repair_log(fs: FileSystem, scan: _LogScan, repairing: Repairing) -> list[str]:
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
