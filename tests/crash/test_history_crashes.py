"""Every crash state of every IterationHistory write keeps the history's promises."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from snapstore.testing.crash import TORN_CHUNKS, crash_states

from .oracle import Written, check_history, valid_prefix
from .scenarios import (
    LOG,
    TAILS,
    make_torn,
    record_appends,
    record_create,
    record_extends,
    record_recovery,
    record_resumed,
)
from .tally import check_recorded

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore.testing.crash import Recording

    from .tally import CrashTally


def check_all(
    tmp_path: Path,
    tally: CrashTally,
    operation: str,
    recorded: tuple[Recording, Written],
    chunks: tuple[int, ...] = TORN_CHUNKS,
) -> int:
    recording, written = recorded
    check = check_history(recording, written)
    return check_recorded(
        tmp_path, tally, "history", operation, recording, check=check, chunks=chunks
    )


def test_create(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert (
        check_all(tmp_path, crash_tally, "create + first append", record_create(tmp_path / "r"))
        >= 300
    )


def test_append(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert check_all(tmp_path, crash_tally, "append (fsync)", record_appends(tmp_path / "r")) >= 900


def test_extend(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert check_all(tmp_path, crash_tally, "extend", record_extends(tmp_path / "r")) >= 600


@pytest.mark.parametrize("tail", sorted(TAILS))
def test_recovery(tmp_path: Path, crash_tally: CrashTally, tail: str) -> None:
    root = tmp_path / "r"
    recorded = record_recovery(root, make_torn(root, tail))
    assert check_all(tmp_path, crash_tally, "recovery (torn tail)", recorded) >= 400


def test_crash_in_recovery_after_power_loss(tmp_path: Path, crash_tally: CrashTally) -> None:
    """Power loss tore an append; the recovering append is itself cut at every point."""
    recording, written = record_appends(tmp_path / "first")
    torn = [
        state
        for state in crash_states(recording)
        if "torn" in state.families and valid_prefix(log := state.file(LOG) or b"")[1] < len(log)
    ]
    checked = 0
    for number, seed in enumerate(torn[:: len(torn) // 4][:4]):
        root = tmp_path / f"seed-{number}"
        seed.materialize(root)
        visible, _ = valid_prefix(seed.file(LOG) or b"")
        checked += check_all(
            tmp_path,
            crash_tally,
            "recovery after power loss",
            record_recovery(root, written.records[:visible]),
            chunks=(4096,),
        )
    assert checked >= 50


@pytest.mark.parametrize("first", ["create", "recovery"])
def test_crash_after_process_crash(tmp_path: Path, crash_tally: CrashTally, first: str) -> None:
    """A process dies at any point; the next one appends on its page cache; then power fails.

    What the dead process left unsynced is still volatile: the survivor must
    make durable whatever its acknowledged append depends on.
    """
    root = tmp_path / "first"
    if first == "create":
        recording, written = record_create(root)
    else:
        recording, written = record_recovery(root, make_torn(root, "cut-line"))
    checked = 0
    for point in range(len(recording.effects)):
        resumed = record_resumed(tmp_path / f"resumed-{point}", recording, written, point)
        checked += check_all(
            tmp_path, crash_tally, f"append after crashed {first}", resumed, chunks=(4096,)
        )
    assert checked >= 5 * len(recording.effects)
