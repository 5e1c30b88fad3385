"""Counting crash states per subject and operation, and checking a recording's states."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from snapstore.testing.crash import FAMILIES, TORN_CHUNKS, check_crash_states

if TYPE_CHECKING:
    from collections.abc import Callable

    from snapstore.testing.crash import CrashReport, CrashState, Recording

_MEMORY = Path("/dev/shm")
_WIDTH = 44


class CrashTally:
    """Distinct crash states checked per operation of each subject (history, store),
    and how many each family produced."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], Counter[str]] = {}

    def add(self, subject: str, operation: str, report: CrashReport) -> Counter[str]:
        """Count ``report`` for ``operation`` of ``subject``; return its counts."""
        counted = Counter(report.by_family)
        counted["states"] = report.states
        self.counts.setdefault((subject, operation), Counter()).update(counted)
        return counted

    def total(self, subject: str | None = None) -> Counter[str]:
        return sum((c for (s, _), c in self.counts.items() if subject in {None, s}), Counter[str]())

    def table(self) -> list[str]:
        def row(label: str, counts: Counter[str]) -> str:
            cells = "".join(f"{counts[f]:>10}" for f in (*FAMILIES, "states"))
            return f"{label:<{_WIDTH}}{cells}"

        rows = [f"{'operation':<{_WIDTH}}" + "".join(f"{f:>10}" for f in (*FAMILIES, "states"))]
        subjects = sorted({subject for subject, _ in self.counts})
        for subject in subjects:
            for (s, operation), counts in sorted(self.counts.items()):
                if s == subject:
                    rows.append(row(f"{subject}: {operation}", counts))
            rows.append(row(f"{subject}: all", self.total(subject)))
        if len(subjects) > 1:
            rows.append(row("all", self.total()))
        return rows


def check_recorded(
    tmp_path: Path,
    tally: CrashTally,
    subject: str,
    operation: str,
    recording: Recording,
    *,
    check: Callable[[CrashState, Path], None],
    chunks: tuple[int, ...] = TORN_CHUNKS,
) -> Counter[str]:
    """Check every crash state of ``recording`` in a fresh directory; count them for
    ``operation`` of ``subject`` and return the counts: distinct ``states``, and how
    many each family produced.

    The states are materialized in memory (tmpfs) where there is one: a check
    reopens, writes and syncs each state, and on a disk the syncs would cost
    more than the checking; they only have to last for this process. A state
    that fails is left there for inspection.
    """
    base = _MEMORY if _MEMORY.is_dir() else tmp_path
    states = Path(tempfile.mkdtemp(prefix="crash-states-", dir=base))
    report = check_crash_states(recording, states, check, chunks=chunks)
    shutil.rmtree(states)
    return tally.add(subject, operation, report)


def assert_at_least(
    counts: Counter[str], *, states: int, prefix: int, unsynced: int, reordered: int, torn: int
) -> None:
    """Every family produced at least its minimum, and the states their total.

    Per family, not only in total: torn states outnumber the others a hundred
    to one, so a total alone would not notice a family that stopped producing
    states (a sync removed, a reordering no longer generated).
    """
    wanted = {
        "states": states,
        "prefix": prefix,
        "unsynced": unsynced,
        "reordered": reordered,
        "torn": torn,
    }
    short = {name: (counts[name], least) for name, least in wanted.items() if counts[name] < least}
    assert not short, f"too few crash states (found, minimum): {short}"
