"""Every crash state of every IterationHistory write keeps the history's promises."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from snapstore import IterationHistory
from snapstore._log import seam
from snapstore.backends.local.repair import check_history as check_history_file
from snapstore.testing.crash import TORN_CHUNKS, crash_states

from .oracle import Written, check_history, valid_prefix
from .scenarios import (
    LOG,
    TAILS,
    HistorySession,
    make_torn,
    payload,
    record_appends,
    record_create,
    record_extends,
    record_recovery,
    record_resumed,
    setup_history,
)
from .tally import assert_at_least, check_recorded

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore.testing.crash import CrashState, Recording

    from .tally import CrashTally


def check_all(
    tmp_path: Path,
    tally: CrashTally,
    operation: str,
    recorded: tuple[Recording, Written],
    chunks: tuple[int, ...] = TORN_CHUNKS,
) -> Counter[str]:
    recording, written = recorded
    check = check_history(recording, written)
    return check_recorded(
        tmp_path, tally, "history", operation, recording, check=check, chunks=chunks
    )


def test_create(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert_at_least(
        check_all(tmp_path, crash_tally, "create + first append", record_create(tmp_path / "r")),
        states=300,
        prefix=5,
        unsynced=3,
        reordered=4,
        torn=459,
    )


def test_append(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert_at_least(
        check_all(tmp_path, crash_tally, "append (fsync)", record_appends(tmp_path / "r")),
        states=900,
        prefix=6,
        unsynced=3,
        reordered=8,
        torn=1236,
    )


def test_extend(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert_at_least(
        check_all(tmp_path, crash_tally, "extend", record_extends(tmp_path / "r")),
        states=600,
        prefix=4,
        unsynced=2,
        reordered=5,
        torn=1427,
    )


@pytest.mark.parametrize("tail", sorted(TAILS))
def test_recovery(tmp_path: Path, crash_tally: CrashTally, tail: str) -> None:
    root = tmp_path / "r"
    recorded = record_recovery(root, make_torn(root, tail))
    assert_at_least(
        check_all(tmp_path, crash_tally, "recovery (torn tail)", recorded),
        states=400,
        prefix=12,
        unsynced=5,
        reordered=13,
        torn=427,
    )


def test_crash_in_recovery_after_power_loss(tmp_path: Path, crash_tally: CrashTally) -> None:
    """Power loss tore an append; the recovering append is itself cut at every point."""
    recording, written = record_appends(tmp_path / "first")
    torn = [
        state
        for state in crash_states(recording)
        if "torn" in state.families and valid_prefix(log := state.file(LOG) or b"")[1] < len(log)
    ]
    checked: Counter[str] = Counter()
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
    assert_at_least(checked, states=50, prefix=54, unsynced=21, reordered=90, torn=43)


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
    checked: Counter[str] = Counter()
    for point in range(len(recording.effects)):
        resumed = record_resumed(tmp_path / f"resumed-{point}", recording, written, point)
        checked += check_all(
            tmp_path, crash_tally, f"append after crashed {first}", resumed, chunks=(4096,)
        )
    assert_at_least(
        checked, states=5 * len(recording.effects), prefix=32, unsynced=24, reordered=29, torn=48
    )


def test_repair(tmp_path: Path, crash_tally: CrashTally) -> None:
    """repair() of a history whose middle record is damaged, then an append.

    Every state, repaired again (an interrupted repair is finished by running
    it again), keeps every valid record with its seq, holds the damaged line
    in quarantine once the first repair returned, and takes the next append.
    """
    root = tmp_path / "r"
    base = setup_history(root, 4)
    path = root / LOG
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = bytearray(lines[1])
    damaged[30] ^= 0x01  # inside the JSON body: the checksum no longer matches
    path.write_bytes(lines[0] + bytes(damaged) + b"".join(lines[2:]))
    kept = [record for record in base if record.seq != 2]
    session = HistorySession(root)
    # The handle that repairs goes on appending: it opened before the repair,
    # so only the repair's own directory sync makes the new log's name durable.
    with seam.installed(session.recorder), IterationHistory(path, tolerant=True) as history:
        with session.operation("repair"):
            history.repair()
        with session.operation("append after repair"):
            appended = history.append(payload(9), key="after-repair")

    def check(state: CrashState, where: Path) -> None:
        log = where / LOG
        check_history_file(log, repair=True)
        with IterationHistory(log) as history:
            records = list(history)
            assert records[: len(kept)] == kept, "repair lost or changed a valid record"
            if state.acknowledged >= 2:
                assert records[len(kept) :] == [appended]
            history.append({"probe": True})
            assert history.verify().ok
        if state.acknowledged >= 1:
            copies = {p.read_bytes() for p in log.parent.rglob("*.bin")}
            assert bytes(damaged) in copies, "the damaged line left the log unquarantined"

    counts = check_recorded(
        tmp_path,
        crash_tally,
        "history",
        "repair (damaged middle line)",
        session.recorder.recording(),
        check=check,
    )
    assert_at_least(counts, states=450, prefix=14, unsynced=5, reordered=15, torn=440)
