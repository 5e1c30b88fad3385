"""A small real workload for the system-call test, run under strace.

After each call returns it writes ``ACK <step>`` to stdout with one
``write(1, ...)``: the trace then shows exactly which system calls a call made
before it was acknowledged. The store and histories live under ``root``; the
torn history ``torn`` is prepared by the test, before tracing starts, so the
damage it writes is not mistaken for the library's own writes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore.backends.local.repair import check_path


def ack(step: str) -> None:
    # One unbuffered write per step: a buffered print could join two steps
    # into one write, or hold a step's marker back past the next step's calls.
    os.write(1, f"ACK {step}\n".encode())


def main(root: Path, torn: Path, damaged: Path, damaged_store: Path) -> None:
    history = IterationHistory(root / "h.jsonl")
    ack("history-open")
    for i in range(3):
        history.append({"i": i})
        ack(f"history-append-{i}")
    history.append({"i": "keyed"}, key="once")
    ack("history-keyed-append")
    history.append({"i": "keyed"}, key="once")
    ack("history-keyed-retry")
    history.extend([{"batch": j} for j in range(4)])
    ack("history-extend")
    history.close()
    ack("history-close")

    store = SnapshotStore(root / "store")
    ack("store-open")
    saved = []
    for run in range(3):
        snap = NormalizedSnapshot(f"run-{run}", "TRAINING", metrics={"auc": 0.7 + run / 10})
        saved.append(store.save_snapshot(snap))
        ack(f"store-save-{run}")
    store.get_or_establish_baseline(saved[0])
    ack("store-baseline-pin")
    store.checkpoint()
    ack("store-checkpoint")
    store.history("run-0.TRAINING").append({"loss": 0.5})
    ack("store-history-append")
    store.save_snapshot(NormalizedSnapshot("run-3", "SCORING"))
    ack("store-save-after-checkpoint")
    store.close()
    ack("store-close")

    with IterationHistory(torn) as recovering:
        ack("torn-open")
        recovering.append({"after": "the tear"})
        ack("torn-append")
    ack("torn-close")

    # What `snapstore repair PATH` runs: a damaged log cannot be opened until
    # it is repaired (a replay refuses the line that fails its checksum).
    assert check_path(damaged, repair=True).findings
    ack("history-repair")
    with IterationHistory(damaged) as repaired:
        repaired.append({"after": "the repair"})
        ack("history-append-after-repair")
    assert check_path(damaged_store, repair=True).findings
    ack("store-repair")
    with SnapshotStore(damaged_store) as repaired_store:
        repaired_store.save_snapshot(NormalizedSnapshot("run-9", "TRAINING"))
        ack("store-save-after-repair")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:5]))
