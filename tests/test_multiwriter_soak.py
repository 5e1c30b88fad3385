"""Many writers, one truth: a SIGKILL soak with writers, a reader and verify/repair at once.

Each round starts three writer processes (snapshots, keyed history appends
with retries, racing baselines, checkpoints every 20 saves), a reader (that
also writes a checkpoint after each pass) and a checker that verifies the
store over and over and repairs it now and then, all on one store; then
kills them all with SIGKILL at a random moment and checks, on a fresh handle:

- every acknowledged snapshot and keyed record is stored, seqs gap-free, and
  every snapshot a reader was given still holds what it was given;
- each key is stored once, at the seq every process that asked was told;
- each baseline group has one baseline, the one every process saw;
- verify reported nothing, ever, and repair moved nothing, on a store that
  was being written all along.

Rounds default to 30 (CI); ``SNAPSTORE_MULTI_SOAK_ROUNDS`` runs more.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from multiwriter_worker import GROUPS, HISTORY, group_snapshot
from snapstore import SnapshotStore

ROUNDS = int(os.environ.get("SNAPSTORE_MULTI_SOAK_ROUNDS", "30"))
WRITERS = 3
WORKER = Path(__file__).with_name("multiwriter_worker.py")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


@dataclass
class Seen:
    """Everything the processes of the soak were told, across rounds."""

    snapshots: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (writer, n)
    keys: dict[str, int] = field(default_factory=dict)  # key -> seq
    baselines: dict[int, int] = field(default_factory=dict)  # group -> seq
    checks: int = 0
    repairs: int = 0

    def take(self, line: str) -> None:
        kind, *fields = line.split(maxsplit=1 if line[0] in "VP" else 3)
        if kind in {"S", "R"}:
            seq, writer, n = map(int, fields)
            told = self.snapshots.setdefault(seq, (writer, n))
            assert told == (writer, n), f"seq {seq} was {told}, then {(writer, n)}"
        elif kind == "H":
            seq, key = int(fields[0]), fields[1]
            assert self.keys.setdefault(key, seq) == seq, f"key {key} at two seqs"
        elif kind == "B":
            group, pinned = map(int, fields)
            first = self.baselines.setdefault(group, pinned)
            assert first == pinned, f"group {group}: baseline seq {first}, then {pinned}"
        else:
            assert fields == ["ok"], f"{'verify' if kind == 'V' else 'repair'}: {fields}"
            self.checks += kind == "V"
            self.repairs += kind == "P"


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(root), *args], stdout=subprocess.PIPE, text=True, env=env
    )


def run_round(root: Path, rng: random.Random, first: int, seen: Seen) -> int:
    procs = [start(root, "writer", str(w), str(first)) for w in range(WRITERS)]
    procs += [start(root, "reader"), start(root, "checker")]
    checker = procs[-1]
    early: list[str] = []  # the checker's lines read before the kill
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        # The kill waits for the checker's first report: its first verify
        # (which imports pyarrow to read the checkpoint) can take longer than
        # a round on a loaded machine, and the checker must run every round.
        assert checker.stdout is not None
        while not early or early[-1][:1] not in ("V", "P", ""):
            early.append(checker.stdout.readline())
        time.sleep(rng.uniform(0.05, 0.4))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
    highest = first
    for proc in procs:
        # Read through the same buffered stream as "ready" was: communicate()
        # would read the pipe beneath it and lose what the buffer holds.
        assert proc.stdout is not None
        with proc.stdout:
            out = "".join(early if proc is checker else []) + proc.stdout.read()
        assert proc.wait(timeout=30) == -signal.SIGKILL, out[-2000:]
        # The last line may be cut by the kill: only whole lines were acknowledged.
        for line in out.splitlines(keepends=True):
            if line.endswith("\n") and line.strip():
                seen.take(line.strip())
                if line[0] == "S":
                    highest = max(highest, int(line.split()[3]))
    return highest


def check_store(root: Path, seen: Seen) -> None:
    with SnapshotStore(root) as store:
        count = len(store)
        assert [s.snapshot_seq for s in store.snapshots()] == list(range(1, count + 1))
        for seq, (writer, n) in seen.snapshots.items():
            metrics = dict(store.get_by_seq(seq).metrics)
            assert metrics == {"writer": writer, "n": n}, f"seq {seq} lost or changed"
        history = store.history(HISTORY)
        records = list(history)
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        stored_keys = [r.key for r in records]
        assert len(stored_keys) == len(set(stored_keys)), "a key is stored twice"
        at = {r.key: r.seq for r in records}
        for key, seq in seen.keys.items():
            assert at.get(key) == seq, f"key {key}: told seq {seq}, stored at {at.get(key)}"
        for group in range(GROUPS):
            comparison_key = group_snapshot(0, 0, group).with_comparison_key().comparison_key
            assert comparison_key is not None
            baseline = store.baseline("EVAL", comparison_key)
            if group in seen.baselines:
                assert baseline is not None, f"group {group} lost its baseline"
                assert baseline.snapshot_seq == seen.baselines[group]


def test_many_writers_a_reader_and_verify_repair_under_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    root = tmp_path / "store"
    SnapshotStore(root).close()
    seen = Seen()
    first = 0
    started = time.monotonic()
    for _ in range(ROUNDS):
        first = run_round(root, rng, first, seen) + 1
        check_store(root, seen)
    with SnapshotStore(root) as store:
        report = store.verify()
        assert report.ok, [str(f) for f in report.findings]
        quarantined = list((root / "quarantine").glob("*.bin"))
    assert seen.checks > ROUNDS, "the checker barely ran"
    print(
        f"\nmany-writers soak: {ROUNDS} rounds x ({WRITERS} writers, a reader, a checker); "
        f"{len(seen.snapshots)} snapshots and {len(seen.keys)} keyed records acknowledged, "
        f"0 lost; {len(seen.baselines)} baselines, each seen alike by every process; "
        f"{seen.checks} verifies and {seen.repairs} repairs under load, all clean; "
        f"{len(quarantined)} torn tails quarantined; {time.monotonic() - started:.1f} s"
    )
