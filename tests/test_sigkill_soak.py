"""SIGKILL soak: writers killed at random moments lose no acknowledged record.

Each round starts writer processes on one store, lets them save and append as
fast as they can, kills them all with SIGKILL at a random moment, then reopens
the store and checks every record a writer reported as acknowledged. Rounds
default to 200 (CI); ``SNAPSTORE_SOAK_ROUNDS=2000`` runs the long soak.
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

from snapstore import NormalizedSnapshot, SnapshotStore

ROUNDS = int(os.environ.get("SNAPSTORE_SOAK_ROUNDS", "200"))
WRITERS = 2
WRITER_SCRIPT = Path(__file__).with_name("soak_writer.py")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


@dataclass
class Acks:
    snapshots: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (writer, n)
    history: dict[int, dict[int, int]] = field(default_factory=dict)  # writer -> {seq: n}

    def take(self, line: str) -> None:
        kind, seq, writer, n = line.split()
        if kind == "S":
            assert int(seq) not in self.snapshots, f"snapshot seq {seq} acknowledged twice"
            self.snapshots[int(seq)] = (int(writer), int(n))
        else:
            self.history.setdefault(int(writer), {})[int(seq)] = int(n)


def run_round(root: Path, rng: random.Random, durability: str, first: int) -> Acks:
    acks = Acks()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER_SCRIPT), str(root), str(w), durability, str(first)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(WRITERS)
    ]
    try:
        # Kill once every writer is writing, at a random moment after that.
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.15))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
    for proc in procs:
        # Read through the same buffered stream as "ready" was: communicate()
        # would read the pipe beneath it and miss what the buffer holds.
        assert proc.stdout is not None
        with proc.stdout:
            out = proc.stdout.read()
        assert proc.wait(timeout=30) == -signal.SIGKILL
        for line in out.splitlines():
            if line and line[0] in "SH":
                acks.take(line)
    return acks


def check_store(root: Path, acks: Acks) -> None:
    """Every record acknowledged in this round is stored, and the seqs have no gap."""
    with SnapshotStore(root) as store:
        count = len(store)
        # Seqs only grow, so count == highest seq means 1..count without a gap.
        assert store.get_by_seq(count).snapshot_seq == count
        with pytest.raises(KeyError):
            store.get_by_seq(count + 1)
        for seq, (writer, n) in acks.snapshots.items():
            got = store.get_by_seq(seq)
            assert dict(got.metrics) == {"writer": writer, "n": n}, f"acknowledged seq {seq} lost"
        for writer, records in acks.history.items():
            history = store.history(f"writer-{writer}")
            assert len(history) == history.last_seq
            for seq, n in records.items():
                assert history.get(seq).data["n"] == n, f"history {writer} lost seq {seq}"
        # The next write succeeds on whatever the kill left behind.
        check = store.save_snapshot(NormalizedSnapshot("check", "AFTER", metrics={"n": count}))
        assert check.snapshot_seq == count + 1


def test_sigkill_soak(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    root = tmp_path / "store"
    started = time.monotonic()
    acked_snapshots = acked_history = 0
    for round_no in range(ROUNDS):
        acks = run_round(root, rng, ("fsync", "write")[round_no % 2], acked_snapshots)
        check_store(root, acks)
        acked_snapshots += len(acks.snapshots)
        acked_history += sum(len(records) for records in acks.history.values())
    with SnapshotStore(root) as store:
        report = store.verify()
        assert report.ok, [str(f) for f in report.findings]
        total = len(store)
    print(
        f"\nSIGKILL soak: {ROUNDS} rounds x {WRITERS} writers; {acked_snapshots} snapshots "
        f"and {acked_history} history records acknowledged, 0 lost; {total} snapshots stored; "
        f"{time.monotonic() - started:.1f} s"
    )
