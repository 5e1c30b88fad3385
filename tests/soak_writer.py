"""A writer process for the SIGKILL soak: saves and appends as fast as it can.

After each call returns it prints what was acknowledged, one line per record:
``S <seq> <writer> <n>`` for a snapshot, ``H <seq> <writer> <n>`` for a history
record. Anything printed was acknowledged, so it must survive the kill. ``n``
counts on across rounds (from the ``first`` argument), so no content repeats
and no save is an idempotent retry of an earlier one.
"""

from __future__ import annotations

import sys

from snapstore import NormalizedSnapshot, SnapshotStore


def main(root: str, writer: int, durability: str, first: int) -> None:
    out = sys.stdout
    with SnapshotStore(root, durability=durability, checkpoint_every=25) as store:  # type: ignore[arg-type]
        history = store.history(f"writer-{writer}")
        print("ready", file=out, flush=True)
        n = first
        while True:
            n += 1
            snap = store.save_snapshot(
                NormalizedSnapshot(
                    f"run-{writer}-{n % 7}",
                    ("PREP", "TRAIN")[n % 2],
                    metrics={"writer": writer, "n": n},
                    config={"writer": writer},
                )
            )
            print(f"S {snap.snapshot_seq} {writer} {n}", file=out, flush=True)
            record = history.append({"writer": writer, "n": n})
            print(f"H {record.seq} {writer} {n}", file=out, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
