"""A store, checked or repaired: its two logs up to one cut, its indices, histories and temps."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

from snapstore._errors import InvalidInputError, StorageError, storage_errors
from snapstore._log import seam
from snapstore._log.synced import BASELINE_SLOT, SNAPSHOT_SLOT, SyncedMark
from snapstore._names import group_key
from snapstore._options import DEFAULT_LOCK_TIMEOUT, check_flag
from snapstore._report import CheckReport, Finding
from snapstore.backends.local.layout import (
    BASELINE_LOG,
    HISTORY_DIR,
    LOCK_FILE,
    MARKER,
    QUARANTINE_DIR,
    SNAPSHOT_LOG,
)
from snapstore.backends.local.repair.history import check_history
from snapstore.backends.local.repair.indices import judge_indices, read_indices, rebuild_indices
from snapstore.backends.local.repair.salvage import Repairing, check_log, consistent_cut
from snapstore.backends.local.snapshot_index import SnapshotIndex
from snapstore.backends.local.store import marker_problem
from snapstore.backends.local.store_index import index_snapshot
from snapstore.snapshot import payload_problem

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore._log.record import LogRecord
    from snapstore._log.seam import FileSystem


def check_store(
    root: Path,
    *,
    repair: bool = False,
    dry_run: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> CheckReport:
    """Verify (or repair) every file of the store at ``root``, beside live writers.

    One consistent view: the snapshot and pin logs are judged up to one cut
    (see ``consistent_cut``), and the checkpoint files are read before it, so
    that they cover no record the check did not scan (a checkpoint only ever
    covers records already in the log). repair decides and acts under the
    writer lock; verify holds it only to take the cut.
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
        indices = None if repair else read_indices(root)
        paths = [path for path, _, _ in logs]
        cut = consistent_cut(fs, root / LOCK_FILE, paths, hold=repair, lock_timeout=lock_timeout)
        with cut as (sizes, lock):
            logs_changed = False
            for (path, slot, on_record), size in zip(logs, sizes, strict=True):
                if path.exists():
                    mark = SyncedMark(fs, lock, slot)
                    repairing = Repairing(quarantine_dir, mark, dry_run) if repair else None
                    part = check_log(fs, path, size, on_record, repairing)
                    report.merge(part)
                    logs_changed = logs_changed or bool(part.actions)
            if repair:
                damaged = judge_indices(root, read_indices(root), replay.index)
                if logs_changed or damaged:
                    # Only then: a dry run of a clean store must have nothing to do.
                    report.actions.extend(rebuild_indices(root, dry_run, lock_timeout))
        if indices is not None:
            report.findings.extend(judge_indices(root, indices, replay.index))
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
        problem = payload_problem(record.data)
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
