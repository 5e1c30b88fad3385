"""Crash states that broke a promise, each kept by name.

The first three are the same ordering: a process creates a directory entry (a
directory, a log), dies before syncing the directory that holds it, and the
next process finds the entry and builds on it as if it were durable. Its
acknowledged append (or its quarantine copy) then hangs on a name that a
power loss still removes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from snapstore.backends.local.layout import SNAPSHOT_LOG
from snapstore.testing.crash import Create, MakeDir, Rename, crash_states, process_crash

from .oracle import check_history
from .scenarios import LOG, make_torn, record_create, record_recovery, record_resumed
from .store_oracle import STORE, check_store
from .store_scenarios import record_repair

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from snapstore.testing.crash import Effect, Recording

    from .oracle import Written


def check_power_loss_after_process_crash(
    tmp_path: Path, first: tuple[Recording, Written], died_after: Callable[[Effect], bool]
) -> None:
    """The first process dies right after the effect ``died_after`` picks; the next
    one opens the history and appends; then the power fails and only what was
    synced survives."""
    recording, written = first
    point = next(i for i, effect in enumerate(recording.effects) if died_after(effect)) + 1
    resumed, resumed_written = record_resumed(tmp_path / "resumed", recording, written, point)
    state = next(
        s
        for s in crash_states(resumed)
        if "unsynced" in s.families and s.crash_point == len(resumed.effects)
    )
    assert state.acknowledged == len(resumed.operations)
    state.materialize(tmp_path / "state")
    check_history(resumed, resumed_written)(state, tmp_path / "state")


def test_history_directory_left_unsynced_by_a_crashed_creator(tmp_path: Path) -> None:
    check_power_loss_after_process_crash(
        tmp_path, record_create(tmp_path / "first"), lambda e: isinstance(e, MakeDir)
    )


def test_log_left_unsynced_by_a_crashed_creator(tmp_path: Path) -> None:
    check_power_loss_after_process_crash(
        tmp_path,
        record_create(tmp_path / "first"),
        lambda e: isinstance(e, Create) and e.path == LOG,
    )


def test_quarantine_directory_left_unsynced_by_a_crashed_recovery(tmp_path: Path) -> None:
    root = tmp_path / "first"
    check_power_loss_after_process_crash(
        tmp_path,
        record_recovery(root, make_torn(root, "cut-line")),
        lambda e: isinstance(e, MakeDir),
    )


@pytest.mark.usefixtures("index_file_at_every_step")
def test_checkpoint_of_a_log_that_a_crashed_repair_replaced(tmp_path: Path) -> None:
    """repair renamed the rewritten snapshot log into place and died before rebuilding
    the derived indices, so the checkpoint describes the old log. Opening rejected its
    position but kept the index loaded from it and replayed the whole log on top:
    every snapshot counted twice, and a version chain looped on itself. Once that
    was fixed, the wrong checkpoint still stayed on disk (verify reported every row)
    until the store was closed: the next save now replaces it."""
    recording, written = record_repair(tmp_path / "first", "flipped-bit")
    renamed = next(
        i
        for i, effect in enumerate(recording.effects)
        if isinstance(effect, Rename) and effect.target == f"{STORE}/{SNAPSHOT_LOG}"
    )
    state = process_crash(recording, renamed + 1)
    state.materialize(tmp_path / "state")
    check_store(recording, written)(state, tmp_path / "state")
