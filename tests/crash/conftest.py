"""The tally of crash states checked per operation, printed after the run."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from snapstore.testing.crash import FAMILIES

if TYPE_CHECKING:
    from snapstore.testing.crash import CrashReport


class CrashTally:
    """Distinct crash states checked per operation, and how many each family produced."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}

    def add(self, operation: str, report: CrashReport) -> int:
        """Count ``report`` for ``operation``; return how many states it checked."""
        counts = self.counts.setdefault(operation, Counter())
        counts.update(report.by_family)
        counts["states"] += report.states
        return report.states

    def table(self) -> list[str]:
        header = f"{'operation':<36}" + "".join(f"{f:>10}" for f in FAMILIES) + f"{'states':>10}"
        rows = [header]
        for operation, counts in sorted(self.counts.items()):
            cells = "".join(f"{counts[f]:>10}" for f in FAMILIES)
            rows.append(f"{operation:<36}{cells}{counts['states']:>10}")
        total = sum((c for c in self.counts.values()), Counter[str]())
        cells = "".join(f"{total[f]:>10}" for f in FAMILIES)
        rows.append(f"{'all':<36}{cells}{total['states']:>10}")
        return rows


_TALLY = pytest.StashKey[CrashTally]()


@pytest.fixture(scope="session")
def crash_tally(request: pytest.FixtureRequest) -> CrashTally:
    return request.config.stash.setdefault(_TALLY, CrashTally())


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    tally = config.stash.get(_TALLY, None)
    if tally is None or not tally.counts:
        return
    terminalreporter.section("crash states checked")
    for row in tally.table():
        terminalreporter.write_line(row)
