"""Every crash state of every SnapshotStore write keeps the store's promises.

Log lines are torn at every byte (1-, 3- and 4096-byte chunks) for the first
creation and for plain saves; the other operations write the same kind of
line through the same log, so their lines are torn in 3- and 4096-byte chunks
(recovery and the crashes during recovery from a crash, which vary what they
start from instead, in 4096-byte chunks only). This keeps the store's states
checkable in about a minute; the history suite tears every log write at every
byte.

Each test asserts a minimum number of distinct states, a little below what it
checks today: with the history suite's, they add up to more than 10,000.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from snapstore.backends.local.layout import BASELINE_LOG, SNAPSHOT_LOG
from snapstore.testing.crash import TORN_CHUNKS, crash_states

from .oracle import valid_prefix
from .scenarios import TAILS
from .store_oracle import STORE, check_store
from .store_scenarios import (
    DAMAGE,
    make_torn_store,
    record_auto_checkpoints,
    record_checkpoint,
    record_close,
    record_create,
    record_establish,
    record_recovery,
    record_repair,
    record_resumed,
    record_saves,
    record_set_baseline,
    snap,
)
from .tally import assert_at_least, check_recorded

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from snapstore import NormalizedSnapshot, SnapshotStore

    from .store_scenarios import Recorded
    from .tally import CrashTally

COARSE = (4096, 3)
WHOLE = (4096,)


# Stores open through their checkpoint however small (as large stores do), so
# every crash state also exercises loading, validating and discarding one.
pytestmark = pytest.mark.usefixtures("index_file_at_every_step")


def check_all(
    tmp_path: Path,
    tally: CrashTally,
    operation: str,
    recorded: Recorded,
    chunks: tuple[int, ...] = COARSE,
) -> Counter[str]:
    recording, written = recorded
    check = check_store(recording, written)
    return check_recorded(
        tmp_path, tally, "store", operation, recording, check=check, chunks=chunks
    )


def test_create(tmp_path: Path, crash_tally: CrashTally) -> None:
    recorded = record_create(tmp_path / "r")
    operation = "create + first save + close"
    assert_at_least(
        check_all(tmp_path, crash_tally, operation, recorded, TORN_CHUNKS),
        states=830,
        prefix=12,
        unsynced=7,
        reordered=11,
        torn=832,
    )


def test_save(tmp_path: Path, crash_tally: CrashTally) -> None:
    recorded = record_saves(tmp_path / "r")
    assert_at_least(
        check_all(tmp_path, crash_tally, "save_snapshot (fsync)", recorded, TORN_CHUNKS),
        states=1630,
        prefix=5,
        unsynced=3,
        reordered=6,
        torn=1551,
    )


def test_automatic_checkpoint(tmp_path: Path, crash_tally: CrashTally) -> None:
    recorded = record_auto_checkpoints(tmp_path / "r")
    assert_at_least(
        check_all(tmp_path, crash_tally, "save + automatic checkpoint", recorded),
        states=850,
        prefix=13,
        unsynced=6,
        reordered=21,
        torn=804,
    )


def test_checkpoint(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert_at_least(
        check_all(tmp_path, crash_tally, "checkpoint()", record_checkpoint(tmp_path / "r")),
        states=290,
        prefix=8,
        unsynced=3,
        reordered=12,
        torn=275,
    )


def test_close(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert_at_least(
        check_all(tmp_path, crash_tally, "close()", record_close(tmp_path / "r")),
        states=295,
        prefix=3,
        unsynced=2,
        reordered=2,
        torn=278,
    )


def test_establish_baseline(tmp_path: Path, crash_tally: CrashTally) -> None:
    recorded = record_establish(tmp_path / "r")
    assert_at_least(
        check_all(tmp_path, crash_tally, "get_or_establish_baseline", recorded),
        states=680,
        prefix=7,
        unsynced=4,
        reordered=12,
        torn=671,
    )


def test_set_baseline(tmp_path: Path, crash_tally: CrashTally) -> None:
    assert_at_least(
        check_all(tmp_path, crash_tally, "set_baseline", record_set_baseline(tmp_path / "r")),
        states=385,
        prefix=4,
        unsynced=2,
        reordered=5,
        torn=372,
    )


@pytest.mark.parametrize("log", [SNAPSHOT_LOG, BASELINE_LOG])
@pytest.mark.parametrize("tail", sorted(TAILS))
def test_recovery(tmp_path: Path, crash_tally: CrashTally, tail: str, log: str) -> None:
    root = tmp_path / "r"
    recorded = record_recovery(root, *make_torn_store(root, tail, log), log)
    assert_at_least(
        check_all(tmp_path, crash_tally, f"recovery (torn {log})", recorded, WHOLE),
        states=20,
        prefix=15,
        unsynced=6,
        reordered=29,
        torn=12,
    )


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_repair(tmp_path: Path, crash_tally: CrashTally, damage: str) -> None:
    recorded = record_repair(tmp_path / "r", damage)
    assert_at_least(
        check_all(tmp_path, crash_tally, "repair (damaged middle line)", recorded),
        states=320,
        prefix=22,
        unsynced=8,
        reordered=29,
        torn=294,
    )


# -- crashes during recovery from a crash -------------------------------------------


def save_after(crash_point: int) -> Callable[[SnapshotStore], NormalizedSnapshot]:
    return lambda store: store.save_snapshot(snap(f"after-{crash_point}", i=7))


def repair_and_save_after(crash_point: int) -> Callable[[SnapshotStore], NormalizedSnapshot]:
    def then(store: SnapshotStore) -> NormalizedSnapshot:
        store.repair()
        return save_after(crash_point)(store)

    return then


def test_crash_in_recovery_after_power_loss(tmp_path: Path, crash_tally: CrashTally) -> None:
    """Power loss tore a save; the recovering open + save is itself cut at every point."""
    recording, written = record_saves(tmp_path / "first")
    log = f"{STORE}/{SNAPSHOT_LOG}"
    torn = [
        state
        for state in crash_states(recording)
        if "torn" in state.families and valid_prefix(data := state.file(log) or b"")[1] < len(data)
    ]
    checked: Counter[str] = Counter()
    for number, seed in enumerate(torn[:: len(torn) // 4][:4]):
        root = tmp_path / f"seed-{number}"
        seed.materialize(root)
        visible, _ = valid_prefix(seed.file(log) or b"")
        recorded = record_recovery(root, written.records[:visible], {}, SNAPSHOT_LOG)
        checked += check_all(tmp_path, crash_tally, "recovery after power loss", recorded, WHOLE)
    assert_at_least(checked, states=100, prefix=60, unsynced=24, reordered=116, torn=48)


def test_crash_after_crashed_create(tmp_path: Path, crash_tally: CrashTally) -> None:
    """The creating process dies at any point; the next one saves on its page cache;
    then the power fails. What the dead process left unsynced is still volatile."""
    recording, written = record_create(tmp_path / "first")
    checked: Counter[str] = Counter()
    for point in range(len(recording.effects)):
        root = tmp_path / f"resumed-{point}"
        recorded = record_resumed(root, recording, written, point, save_after(point))
        checked += check_all(tmp_path, crash_tally, "save after crashed create", recorded, WHOLE)
    assert_at_least(checked, states=260, prefix=141, unsynced=91, reordered=145, torn=144)


def test_crash_after_crashed_repair(tmp_path: Path, crash_tally: CrashTally) -> None:
    """repair dies at every third point; the next process repairs again and saves;
    then the power fails."""
    recording, written = record_repair(tmp_path / "first", "flipped-bit")
    repair = recording.operations[0]
    checked: Counter[str] = Counter()
    for point in range(repair.start, repair.end, 3):
        root = tmp_path / f"resumed-{point}"
        recorded = record_resumed(root, recording, written, point, repair_and_save_after(point))
        checked += check_all(tmp_path, crash_tally, "repair after crashed repair", recorded, WHOLE)
    assert_at_least(checked, states=377, prefix=171, unsynced=64, reordered=240, torn=164)
