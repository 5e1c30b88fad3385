"""Recorded IterationHistory writes: the operations whose crash states are checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snapstore import HistoryRecord, IterationHistory
from snapstore._log import seam
from snapstore.testing.crash import Recording, process_crash

from .oracle import Written, valid_prefix
from .session import Session

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


LOG = "runs/h.jsonl"


def payload(i: int) -> dict[str, Any]:
    return {"iteration": i, "loss": 1 / (i + 1), "note": "naïve\nline"}


class HistorySession(Session[HistoryRecord]):
    """A session on the history at ``LOG``."""

    def __init__(
        self,
        root: Path,
        *,
        resume: Recording | None = None,
        records: tuple[HistoryRecord, ...] = (),
        required: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(root, lambda r: r.seq, resume=resume, records=records, required=required)
        self.path = root / LOG

    def finish(self, found: bytes | None = None) -> tuple[Recording, Written]:
        recording = self.recorder.recording()
        if found is None:
            found = recording.initial_file(LOG) or b""
        return recording, Written(LOG, tuple(self.records), tuple(self.required), found)


def setup_history(root: Path, count: int) -> tuple[HistoryRecord, ...]:
    """A history with ``count`` records, written before recording starts."""
    with IterationHistory(root / LOG) as history:
        return tuple(history.append(payload(i), key=f"setup-{i}") for i in range(1, count + 1))


def record_create(root: Path) -> tuple[Recording, Written]:
    """The first creation of a history (its directory, lock and log) and its first append."""
    root.mkdir()
    session = HistorySession(root)
    with session.operation("create") as done:
        history = IterationHistory(session.path)
        done.append(history.append(payload(1), key="first"))
    history.close()
    return session.finish()


def record_appends(root: Path) -> tuple[Recording, Written]:
    """Three appends, keyed and not, to a history holding two records."""
    base = setup_history(root, 2)
    session = HistorySession(root, records=base)
    with seam.installed(session.recorder), IterationHistory(session.path) as history:
        for i, key in ((3, "a"), (4, None), (5, "b")):
            with session.operation(f"append {i}") as done:
                done.append(history.append(payload(i), key=key))
    return session.finish()


def record_extends(root: Path) -> tuple[Recording, Written]:
    """Two batches (one write and one sync each) on a history holding one record."""
    base = setup_history(root, 1)
    session = HistorySession(root, records=base)
    with seam.installed(session.recorder), IterationHistory(session.path) as history:
        for first, size in ((2, 3), (5, 2)):
            with session.operation(f"extend {size}") as done:
                done.extend(history.extend([{"i": i} for i in range(first, first + size)]))
    return session.finish()


# Torn tails a crashed writer can leave after two complete records.
TAILS: dict[str, Callable[[bytes], bytes]] = {
    "cut-line": lambda line: line[:40],
    "no-newline": lambda line: line[:-1],
    "zeros": lambda line: bytes(len(line)),
    "garbage-lines": lambda line: line[:30] + b"\n\x00garbage\n" + line[50:70],
}


def make_torn(root: Path, tail: str) -> tuple[HistoryRecord, ...]:
    """Two records, then ``tail`` made from a third record's line."""
    base = setup_history(root, 3)
    path = root / LOG
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2]) + TAILS[tail](lines[2]))
    return base[:2]


def record_recovery(root: Path, records: tuple[HistoryRecord, ...]) -> tuple[Recording, Written]:
    """Open a history whose log has a torn tail and append: quarantine, truncate, write."""
    session = HistorySession(root, records=records)
    with session.operation("recover + append") as done:
        history = IterationHistory(session.path)
        done.append(history.append(payload(9), key="recovered"))
    history.close()
    return session.finish()


def record_resumed(
    root: Path, first: Recording, written: Written, crash_point: int
) -> tuple[Recording, Written]:
    """``first`` crashed (the process, not the machine) at ``crash_point``; a new
    process, on the same page cache, opens the history and appends."""
    cut = first.cut(crash_point)
    crashed = process_crash(first, crash_point)
    crashed.materialize(root)
    log = crashed.file(LOG) or b""
    visible, _ = valid_prefix(log)
    session = HistorySession(
        root,
        resume=cut,
        records=written.records[:visible],
        required=written.required[: len(cut.operations) + 1],
    )
    with session.operation("reopen + append") as done:
        history = IterationHistory(session.path)
        done.append(history.append(payload(7), key=f"after-{crash_point}"))
    history.close()
    return session.finish(found=log)
