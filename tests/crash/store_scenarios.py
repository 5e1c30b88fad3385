"""Recorded SnapshotStore writes: the operations whose crash states are checked."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore._log import seam
from snapstore._log.record import decode_line, hidden_records
from snapstore.backends.local.layout import SNAPSHOT_LOG
from snapstore.testing.crash import process_crash

from .scenarios import TAILS
from .session import Session
from .store_oracle import (
    DEFAULT_CHECKPOINT_EVERY,
    LOGS,
    STORE,
    Pins,
    StoreWritten,
    group_of,
    seq_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from snapstore.testing.crash import Recording

Recorded = tuple["Recording", StoreWritten]


def snap(run: str, stage: str = "train", i: int = 0) -> NormalizedSnapshot:
    """Snapshots of one stage share a config, so they are comparable across runs."""
    return NormalizedSnapshot(
        f"run-{run}",
        stage,
        metrics={"loss": 1 / (i + 2), "i": i},
        config={"lr": 0.1, "stage": stage},
        data={"note": "naïve\nline"},
    )


class StoreSession(Session[NormalizedSnapshot]):
    """A session on the store at ``STORE``, tracking its baseline pins too."""

    def __init__(
        self,
        root: Path,
        *,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        resume: Recording | None = None,
        records: Iterable[NormalizedSnapshot] = (),
        required: Iterable[int] | None = None,
        pins: Iterable[Pins] = ({},),
    ) -> None:
        super().__init__(root, seq_of, resume=resume, records=records, required=required)
        self.path = root / STORE
        self.checkpoint_every = checkpoint_every
        self.pins = [dict(p) for p in pins]
        self._current = dict(self.pins[-1])

    def open(self) -> SnapshotStore:
        return SnapshotStore(self.path, checkpoint_every=self.checkpoint_every)

    def pin(self, snapshot: NormalizedSnapshot) -> None:
        """The operation in progress pinned ``snapshot`` as its group's baseline."""
        self._current[group_of(snapshot)] = seq_of(snapshot)

    def acknowledged(self) -> None:
        self.pins.append(dict(self._current))

    def finish(
        self, found: dict[str, bytes] | None = None, damage: tuple[int, bytes] | None = None
    ) -> Recorded:
        recording = self.recorder.recording()
        if found is None:
            found = {log: recording.initial_file(f"{STORE}/{log}") or b"" for log in LOGS}
        written = StoreWritten(
            tuple(self.records),
            tuple(self.required),
            tuple(self.pins),
            found,
            damage,
            self.checkpoint_every,
        )
        return recording, written


def setup_store(
    path: Path, saves: Iterable[NormalizedSnapshot], baselines: Iterable[int] = ()
) -> tuple[tuple[NormalizedSnapshot, ...], Pins]:
    """A store holding ``saves`` and pins of the ``baselines`` (indices into them),
    written before recording starts and closed (so checkpointed)."""
    with SnapshotStore(path) as store:
        saved = tuple(store.save_snapshot(s) for s in saves)
        pins: Pins = {}
        for index in baselines:
            store.set_baseline(saved[index])
            pins[group_of(saved[index])] = seq_of(saved[index])
    return saved, pins


# -- the public write operations -------------------------------------------------------


def record_create(root: Path) -> Recorded:
    """The first creation of a store (directories, marker, lock, logs), a save, the close."""
    root.mkdir()
    session = StoreSession(root)
    with session.operation("create"):
        store = session.open()
    with session.operation("first save") as done:
        done.append(store.save_snapshot(snap("a")))
    with session.operation("close"):
        store.close()
    return session.finish()


def record_saves(root: Path) -> Recorded:
    """Saves on a store of two: a new run, a comparable one, then that one unchanged
    (a retry: nothing is written)."""
    base, _ = setup_store(root / STORE, [snap("a"), snap("b", i=1)])
    session = StoreSession(root, records=base)
    with seam.installed(session.recorder), session.open() as store:
        for label, s in (
            ("save", snap("c", i=2)),
            ("save comparable", snap("d", i=3)),
            ("save unchanged", snap("d", i=3)),
        ):
            with session.operation(label) as done:
                done.append(store.save_snapshot(s))
    return session.finish()


def record_auto_checkpoints(root: Path) -> Recorded:
    """Three saves with a checkpoint every two: the second writes the derived indices."""
    base, _ = setup_store(root / STORE, [snap("a")])
    session = StoreSession(root, records=base, checkpoint_every=2)
    with seam.installed(session.recorder), session.open() as store:
        for i in range(3):
            with session.operation("save") as done:
                done.append(store.save_snapshot(snap(f"r{i}", i=i)))
    return session.finish()


def record_checkpoint(root: Path) -> Recorded:
    """A save in another stage, then checkpoint(): the derived indices catch up."""
    base, _ = setup_store(root / STORE, [snap("a")])
    session = StoreSession(root, records=base)
    with seam.installed(session.recorder), session.open() as store:
        with session.operation("save") as done:
            done.append(store.save_snapshot(snap("a", "eval", i=1)))
        with session.operation("checkpoint"):
            store.checkpoint()
    return session.finish()


def record_close(root: Path) -> Recorded:
    """A save, then close(), which checkpoints what is new."""
    base, _ = setup_store(root / STORE, [snap("a")])
    session = StoreSession(root, records=base)
    with seam.installed(session.recorder):
        store = session.open()
        with session.operation("save") as done:
            done.append(store.save_snapshot(snap("b", i=1)))
        with session.operation("close"):
            store.close()
    return session.finish()


def record_establish(root: Path) -> Recorded:
    """get_or_establish_baseline: on an empty group with a saved snapshot (a pin), with an
    unsaved one (a save and a pin), then on the pinned group (nothing written)."""
    base, _ = setup_store(root / STORE, [snap("a"), snap("b", i=1)])
    session = StoreSession(root, records=base)
    with seam.installed(session.recorder), session.open() as store:
        for label, s in (
            ("establish saved", base[0]),
            ("establish unsaved", snap("c", "eval", i=2)),
            ("establish pinned group", snap("d", i=3)),
        ):
            with session.operation(label) as done:
                baseline = store.get_or_establish_baseline(s)
                done.append(baseline)
                session.pin(baseline)
    return session.finish()


def record_set_baseline(root: Path) -> Recorded:
    """set_baseline twice on a group whose baseline is pinned."""
    base, pins = setup_store(root / STORE, [snap("a"), snap("b", i=1), snap("c", i=2)], [0])
    session = StoreSession(root, records=base, pins=[pins])
    with seam.installed(session.recorder), session.open() as store:
        for s in base[1:]:
            with session.operation("set_baseline"):
                store.set_baseline(s)
                session.pin(s)
    return session.finish()


# -- recovery and repair ----------------------------------------------------------------


def make_torn_store(root: Path, tail: str, log: str) -> tuple[tuple[NormalizedSnapshot, ...], Pins]:
    """A checkpointed store of two snapshots and a pin, then ``tail`` made from the next
    line of ``log`` (a third snapshot, or a second pin), as a crashed writer leaves it."""
    scratch = root.parent / f"{root.name}-scratch"
    base, pins = setup_store(scratch, [snap("a"), snap("b", i=1)], [0])
    shutil.copytree(scratch, root / STORE)
    with SnapshotStore(scratch) as store:
        store.set_baseline(store.save_snapshot(snap("c", i=2)))
    line = (scratch / log).read_bytes().splitlines(keepends=True)[-1]
    with (root / STORE / log).open("ab") as file:
        file.write(TAILS[tail](line))
    return base, pins


def record_recovery(
    root: Path, base: tuple[NormalizedSnapshot, ...], pins: Pins, log: str
) -> Recorded:
    """Open a store whose ``log`` has a torn tail and write to it: quarantine, truncate,
    write (a save for the snapshot log, a new baseline for the pin log)."""
    session = StoreSession(root, records=base, pins=[pins])
    with session.operation("recover + write") as done:
        store = session.open()
        if log == SNAPSHOT_LOG:
            done.append(store.save_snapshot(snap("r", i=9)))
        else:
            baseline = store.get_or_establish_baseline(snap("r", "eval", i=9))
            done.append(baseline)
            session.pin(baseline)
    store.close()
    return session.finish()


# Damage to the second of four lines of a snapshot log, and whether repair finds
# that line's snapshot again.
DAMAGE: dict[str, tuple[Callable[[list[bytes]], list[bytes]], bool]] = {
    # A flipped bit in the payload: the line fails its checksum; its snapshot is lost.
    "flipped-bit": (
        lambda lines: [lines[0], lines[1].replace(b'"i":1', b'"i":3', 1), *lines[2:]],
        False,
    ),
    # A flipped newline glues two lines into one bad line: repair finds both records.
    "glued-lines": (lambda lines: [lines[0], lines[1][:-1] + b" " + lines[2], *lines[3:]], True),
}


def make_damaged_store(
    root: Path, damage: str
) -> tuple[tuple[NormalizedSnapshot, ...], Pins, tuple[int, bytes]]:
    """A checkpointed store of four snapshots and a pin whose snapshot log is damaged
    in the middle (the checkpoint lets it open). Returns the snapshots repair keeps,
    the pins, and the damaged region (offset, bytes)."""
    base, pins = setup_store(root / STORE, [snap(r, i=i) for i, r in enumerate("abcd")], [0])
    log = root / STORE / SNAPSHOT_LOG
    damaged, recovered = DAMAGE[damage]
    lines = damaged(log.read_bytes().splitlines(keepends=True))
    log.write_bytes(b"".join(lines))
    return base if recovered else (base[0], *base[2:]), pins, (len(lines[0]), lines[1])


def record_repair(root: Path, damage: str) -> Recorded:
    """repair() on a store whose snapshot log is damaged in the middle, then a save."""
    records, pins, region = make_damaged_store(root, damage)
    session = StoreSession(root, records=records, pins=[pins])
    with seam.installed(session.recorder), session.open() as store:
        with session.operation("repair"):
            store.repair()
        with session.operation("save after repair") as done:
            done.append(store.save_snapshot(snap("e", i=5)))
    return session.finish(damage=region)


# -- crashes during recovery from a crash ---------------------------------------------


def record_resumed(
    root: Path,
    first: Recording,
    written: StoreWritten,
    crash_point: int,
    then: Callable[[SnapshotStore], NormalizedSnapshot],
) -> Recorded:
    """``first`` crashed (the process, not the machine) at ``crash_point``; a new
    process, on the same page cache, opens the store and does ``then``, which saves."""
    # The new process would have to learn which pins it sees.
    assert all(p == written.pins[0] for p in written.pins), "first may not change the pins"
    cut = first.cut(crash_point)
    crashed = process_crash(first, crash_point)
    crashed.materialize(root)
    found = {log: crashed.file(f"{STORE}/{log}") or b"" for log in LOGS}
    # Every record in the log, even one a damaged line hides until repair finds it.
    stored = {
        obj["seq"] for _, line in hidden_records(found[SNAPSHOT_LOG]) if (obj := decode_line(line))
    }
    acknowledged = len(cut.operations) + 1
    session = StoreSession(
        root,
        resume=cut,
        records=[r for r in written.records if seq_of(r) in stored],
        required=written.required[:acknowledged],
        pins=written.pins[:acknowledged],
    )
    with session.operation("reopen + save") as done:
        store = session.open()
        done.append(then(store))
    store.close()
    return session.finish(found=found, damage=written.damage)
