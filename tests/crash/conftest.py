"""The tally of crash states checked, kept for the session and printed after the run."""

from __future__ import annotations

import pytest

from .tally import CrashTally

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
