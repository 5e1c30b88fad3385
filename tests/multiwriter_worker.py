"""A process of the many-writers soak: writes, reads or checks one store until killed.

Roles (first argument after the store):

- ``writer W FIRST``: saves snapshots, appends keyed records to the shared
  history (and retries some keys), and races the other writers to establish
  the baselines of three shared groups.
- ``reader``: reads snapshots, history records and baselines as they appear,
  and writes a checkpoint after each pass.
- ``checker``: verifies the store over and over, and repairs it now and then.

Every line printed reports something a call returned, so it must hold after
the kill: ``S seq writer n`` (a saved snapshot), ``H seq key`` (a keyed
record), ``B group seq`` (a baseline seen), ``R seq writer n`` (a snapshot a
reader was given), ``V ok`` / ``V bad ...`` (a verify), ``P ok`` / ``P bad ...``
(a repair). ``n`` counts on across rounds (from ``FIRST``), so no content repeats.
"""

from __future__ import annotations

import random
import sys

from snapstore import NormalizedSnapshot, SnapshotStore

GROUPS = 3
HISTORY = "shared"


def group_snapshot(writer: int, n: int, group: int) -> NormalizedSnapshot:
    """A snapshot of baseline group ``group``: groups differ by config, so by comparison key."""
    return NormalizedSnapshot(
        f"run-{writer}-{n}", "EVAL", metrics={"writer": writer, "n": n}, config={"group": group}
    )


def say(line: str) -> None:
    print(line, flush=True)


def writer(store: SnapshotStore, w: int, first: int) -> None:
    history = store.history(HISTORY)
    say("ready")
    n = first
    while True:
        n += 1
        snap = store.save_snapshot(
            NormalizedSnapshot(
                f"run-{w}-{n % 5}",
                ("PREP", "TRAIN")[n % 2],
                metrics={"writer": w, "n": n},
                config={"writer": w},
            )
        )
        say(f"S {snap.snapshot_seq} {w} {n}")
        record = history.append({"writer": w, "n": n}, key=f"{w}-{n}")
        say(f"H {record.seq} {record.key}")
        if n % 4 == 0:  # a retry of an earlier key finds the record stored
            retried = history.append({"writer": w, "n": n - 1}, key=f"{w}-{n - 1}")
            say(f"H {retried.seq} {retried.key}")
        if n % 3 == 0:
            baseline = store.get_or_establish_baseline(group_snapshot(w, n, n // 3 % GROUPS))
            say(f"B {baseline.config['group']} {baseline.snapshot_seq}")


def reader(store: SnapshotStore) -> None:
    rng = random.Random()
    history = store.history(HISTORY)
    say("ready")
    while True:
        count = len(store)
        if count:
            snap = store.get_by_seq(rng.randint(1, count))
            say(f"R {snap.snapshot_seq} {snap.metrics['writer']} {snap.metrics['n']}")
        if len(history):
            for record in history.load_recent(2):
                say(f"H {record.seq} {record.key}")
        for group in range(GROUPS):
            key = group_snapshot(0, 0, group).with_comparison_key().comparison_key
            assert key is not None
            baseline = store.baseline("EVAL", key)
            if baseline is not None:
                say(f"B {group} {baseline.snapshot_seq}")
        # Checkpoints written without the writer lock, at any moment, and
        # often: the checker must never take one at work for damage.
        store.checkpoint()


def checker(store: SnapshotStore) -> None:
    say("ready")
    rounds = 0
    while True:
        rounds += 1
        report = store.repair() if rounds % 4 == 0 else store.verify()
        kind = "P" if rounds % 4 == 0 else "V"
        if report.ok and not any("moved" in action for action in report.actions):
            say(f"{kind} ok")
        else:
            problems = [str(f) for f in report.findings] + report.actions
            say(f"{kind} bad {problems!r}")


def main(root: str, role: str, *args: str) -> None:
    with SnapshotStore(root, checkpoint_every=20) as store:
        if role == "writer":
            writer(store, int(args[0]), int(args[1]))
        elif role == "reader":
            reader(store)
        else:
            checker(store)


if __name__ == "__main__":
    main(*sys.argv[1:])
