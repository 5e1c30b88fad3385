"""Every I/O call of a store write fails in turn: typed errors, and the store stays whole.

Each operation runs once to count its I/O calls, then once per call with that
call failing (EIO, ENOSPC; once, or from then on as on a dead or full disk).
The call must raise a SnapstoreError, a failed sync must make the handle
refuse writes, and a fresh handle on the real file system must find every
acknowledged snapshot and pin, seqs in order, and a store the next writer
can use.
"""

from __future__ import annotations

import errno
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from crash.store_oracle import (
    DEFAULT_CHECKPOINT_EVERY,
    STORE,
    Pins,
    Queries,
    ask,
    check_next_writes,
    check_readable,
    check_rebuilt,
    group_of,
    pins_shown,
    seq_of,
)
from crash.store_scenarios import make_damaged_store, make_torn_store, setup_store, snap
from helpers import harmless, open_fds
from snapstore import (
    CheckpointWarning,
    ClosedError,
    DurabilityError,
    NormalizedSnapshot,
    SnapshotStore,
    SnapstoreError,
    StorageError,
)
from snapstore._log.seam import FileSystem, installed
from snapstore.backends.local.layout import BASELINE_LOG, SNAPSHOT_LOG
from snapstore.testing import FaultInjector
from store_fixtures import remove_checkpoint

if TYPE_CHECKING:
    from collections.abc import Callable

Snaps = tuple[NormalizedSnapshot, ...]


# Stores open through their checkpoint however small (as large stores do), so
# every crash state also exercises loading, validating and discarding one.
# Descriptor counts are compared with the collector paused: see helpers.open_fds.
pytestmark = pytest.mark.usefixtures("index_file_at_every_step", "gc_paused")


@dataclass(frozen=True)
class Stored:
    """What a store holds before the operation: its snapshots (acknowledged), its pins,
    and seqs that repair quarantines."""

    snaps: Snaps
    pins: Pins
    lost: frozenset[int] = frozenset()


def plain(root: Path) -> Stored:
    return Stored(*setup_store(root / STORE, [snap("a"), snap("b", i=1)], [0]))


def without_checkpoint(root: Path) -> Stored:
    stored = plain(root)
    remove_checkpoint(root / STORE)
    return stored


def damaged(root: Path) -> Stored:
    snaps, pins, _ = make_damaged_store(root, "flipped-bit")
    return Stored(snaps, pins, frozenset({2}))


def torn(log: str) -> Callable[[Path], Stored]:
    return lambda root: Stored(*make_torn_store(root, "cut-line", log))


def nothing(root: Path) -> Stored:
    root.mkdir()  # the store's directory is created with it
    return Stored((), {})


@dataclass(frozen=True)
class Operation:
    """``call`` on a store prepared by ``prepare``; with ``opens``, faults start before
    the store is opened. ``saves``: the snapshot the call saves (None: none).
    ``pins``: the baseline it pins, as an index into the prepared snapshots (-1: the
    one it saves)."""

    prepare: Callable[[Path], Stored]
    call: Callable[[SnapshotStore, Stored], object]
    opens: bool = False
    saves: NormalizedSnapshot | None = None
    pins: int | None = None
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY


NEW = snap("new", i=5)
NEW_GROUP = snap("new", "eval", i=6)

OPERATIONS = {
    "create": Operation(nothing, lambda store, _: None, opens=True),
    "save": Operation(plain, lambda store, _: store.save_snapshot(NEW), saves=NEW),
    "save + automatic checkpoint": Operation(
        plain, lambda store, _: store.save_snapshot(NEW), saves=NEW, checkpoint_every=1
    ),
    "establish baseline": Operation(
        plain, lambda store, _: store.get_or_establish_baseline(NEW_GROUP), saves=NEW_GROUP, pins=-1
    ),
    "set_baseline": Operation(plain, lambda store, s: store.set_baseline(s.snaps[1]), pins=1),
    "checkpoint": Operation(plain, lambda store, _: store.checkpoint()),
    "close": Operation(without_checkpoint, lambda store, _: store.close()),
    "repair": Operation(damaged, lambda store, _: store.repair()),
    "recovery (torn snapshot log)": Operation(
        torn(SNAPSHOT_LOG), lambda store, _: store.save_snapshot(NEW), opens=True, saves=NEW
    ),
    "recovery (torn pin log)": Operation(
        torn(BASELINE_LOG),
        lambda store, _: store.get_or_establish_baseline(NEW_GROUP),
        opens=True,
        saves=NEW_GROUP,
        pins=-1,
    ),
}

FAULTS = {
    "EIO": FaultInjector(error=errno.EIO),
    "ENOSPC": FaultInjector(error=errno.ENOSPC),
    "EIO-persistent": FaultInjector(error=errno.EIO, persistent=True),
    "ENOSPC-persistent": FaultInjector(error=errno.ENOSPC, persistent=True),
}


@dataclass
class Outcome:
    """How the operation ended, and what it acknowledged."""

    error: SnapstoreError | None = None
    handle: SnapshotStore | None = None
    saved: list[NormalizedSnapshot] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # the I/O calls made, in order
    faults: int = 0
    warnings: list[warnings.WarningMessage] = field(default_factory=list)


def run(
    root: Path, operation: Operation, stored: Stored, fs: FaultInjector, k: int | None
) -> Outcome:
    """Open the store and run the operation with call ``k`` failing (None: none)."""
    outcome = Outcome()
    path = root / STORE
    with installed(fs), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if operation.opens:
            fs.arm(k)
        try:
            outcome.handle = SnapshotStore(path, checkpoint_every=operation.checkpoint_every)
            if not operation.opens:
                fs.arm(k)
            result = operation.call(outcome.handle, stored)
        except SnapstoreError as exc:
            outcome.error = exc
        else:
            if isinstance(result, NormalizedSnapshot) and operation.saves is not None:
                outcome.saved.append(result)
        finally:
            outcome.calls, outcome.faults = fs.calls, fs.faults
            fs.arm(None)
    outcome.warnings = caught
    return outcome


def calls_of(root: Path, operation: Operation, stored: Stored) -> int:
    """How many I/O calls the operation makes when nothing fails."""
    fs = FaultInjector()
    outcome = run(root, operation, stored, fs, None)
    assert outcome.error is None, outcome.error
    assert outcome.handle is not None
    outcome.handle.close()
    return len(outcome.calls)


def fail_call(root: Path, operation: Operation, stored: Stored, fs: FaultInjector, k: int) -> None:
    """Fail the k-th call of the operation; check the handle and the store after it."""
    fds = open_fds()
    outcome = run(root, operation, stored, fs, k)
    assert outcome.faults >= 1
    if outcome.error is None:
        # Only work after the commit may fail without failing the call (see
        # harmless), or an automatic checkpoint: a warning, and the save stands.
        checkpoint_failed = [w for w in outcome.warnings if w.category is CheckpointWarning]
        assert harmless(outcome.calls, k) or checkpoint_failed, outcome.calls
        assert not checkpoint_failed or outcome.saved, "a checkpoint failed a save"
    else:
        assert isinstance(outcome.error, StorageError), outcome.error
        assert outcome.error.errno == fs.error, outcome.error
    acknowledged = [*stored.snaps, *outcome.saved]
    if outcome.handle is not None:
        acknowledged += check_handle(outcome.handle, outcome.error)
    assert open_fds() == fds, "a descriptor leaked"
    check_store(root / STORE, operation, stored, acknowledged, outcome)


def check_handle(store: SnapshotStore, error: SnapstoreError | None) -> list[NormalizedSnapshot]:
    """After a failed sync the handle refuses writes; otherwise it goes on. Returns
    the snapshots it saved; closes it."""
    saved = []
    try:
        if isinstance(error, DurabilityError):
            # The kernel may have dropped the pages: no write may claim success now.
            writes: list[Callable[[], object]] = [
                lambda: store.save_snapshot(snap("after", i=8)),
                lambda: store.get_or_establish_baseline(snap("after", "test", i=8)),
                store.checkpoint,
            ]
            for write in writes:
                with pytest.raises(ClosedError, match="reopen"):
                    write()
        elif not store._closed:
            saved.append(store.save_snapshot(snap("after", i=8)))
    finally:
        store.close()
    return saved


def check_store(
    directory: Path,
    operation: Operation,
    stored: Stored,
    acknowledged: list[NormalizedSnapshot],
    outcome: Outcome,
) -> None:
    """A fresh handle on the real file system finds every acknowledged snapshot and pin,
    and what the failed call wrote either whole or not at all."""
    with SnapshotStore(directory) as store:
        if stored.lost:
            store.repair()  # an interrupted repair is finished by running it again
        seen = list(store.snapshots())
        gap_free = range(1, len(seen) + len(stored.lost) + 1)
        assert [seq_of(s) for s in seen] == [n for n in gap_free if n not in stored.lost]
        for snapshot in acknowledged:
            assert snapshot in seen, f"acknowledged seq {seq_of(snapshot)} is lost"
        # The snapshot of a failed call may or may not be stored; nothing else may.
        extra = [s for s in seen if s not in acknowledged]
        assert len(extra) <= 1, extra
        assert all(operation.saves is not None and same_content(s, operation.saves) for s in extra)
        check_readable(store, seen)
        candidates = pins_of(operation, stored, [*outcome.saved, *extra], outcome.error is None)
        queries = Queries.about(seen, candidates)
        pins = pins_shown(seen, candidates, ask(store, queries), queries)
        after, answers = check_next_writes(store, seen, pins, 0)
    check_rebuilt(directory, after, answers)


def pins_of(
    operation: Operation, stored: Stored, saved: list[NormalizedSnapshot], acknowledged: bool
) -> list[Pins]:
    """The pins the store may show: with the operation's pin if it was acknowledged,
    with or without it if the operation failed. ``saved``: the snapshot the operation
    stored, if any."""
    if operation.pins is None:
        return [stored.pins]
    pinned = stored.snaps[operation.pins] if operation.pins >= 0 else next(iter(saved), None)
    if pinned is None:  # the snapshot to pin was not stored, so neither was the pin
        return [stored.pins]
    with_pin = {**stored.pins, group_of(pinned): seq_of(pinned)}
    return [with_pin] if acknowledged else [stored.pins, with_pin]


def same_content(a: NormalizedSnapshot, b: NormalizedSnapshot) -> bool:
    def content(s: NormalizedSnapshot) -> tuple[object, ...]:
        return s.run_id, s.stage, dict(s.metrics), dict(s.config), dict(s.data)

    return content(a) == content(b)


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_each_call_of_a_store_write_fails(
    tmp_path: Path, operation: Operation, fault: FaultInjector
) -> None:
    template = tmp_path / "template"
    stored = operation.prepare(template)
    shutil.copytree(template, tmp_path / "probe")
    count = calls_of(tmp_path / "probe", operation, stored)
    assert count >= 3
    for k in range(1, count + 1):
        shutil.copytree(template, tmp_path / f"k-{k}")
        fail_call(tmp_path / f"k-{k}", operation, stored, fault, k)


# -- the failures that escaped, each kept by name ---------------------------------------


def test_a_store_that_fails_to_open_releases_its_files(tmp_path: Path) -> None:
    # The second log opened is the pin log, after the snapshot log (and the
    # lock file, which is opened with open_lock).
    fs = FaultInjector(2, only={"open_log"})
    fds = open_fds()
    with installed(fs), pytest.raises(StorageError):
        SnapshotStore(tmp_path / "store")
    assert open_fds() == fds


def test_close_reports_a_failing_close_and_releases_every_file(tmp_path: Path) -> None:
    fs = FaultInjector(only={"close"})
    fds = open_fds()
    with installed(fs):
        store = SnapshotStore(tmp_path / "store")
    store.save_snapshot(NEW)
    store.checkpoint()  # so that close() has only files to close, the snapshot log first
    fs.arm(1)
    with pytest.raises(StorageError):
        store.close()
    assert open_fds() == fds
    with SnapshotStore(tmp_path / "store") as reopened:
        assert reopened.get_by_seq(1).run_id == NEW.run_id


def test_a_failed_sync_of_the_pin_log_makes_the_store_refuse_every_write(tmp_path: Path) -> None:
    stored = plain(tmp_path)
    fs = FaultInjector(only={"sync"})
    with installed(fs):
        store = SnapshotStore(tmp_path / STORE)
    fs.arm(1)
    with pytest.raises(DurabilityError):
        store.set_baseline(stored.snaps[1])
    fs.arm(None)
    for write in (lambda: store.save_snapshot(NEW), store.checkpoint):
        with pytest.raises(ClosedError, match="reopen"):
            write()
    store.close()
    assert fs.calls == [], "the failed handle wrote on"
    with SnapshotStore(tmp_path / STORE) as reopened:
        assert reopened.save_snapshot(NEW).snapshot_seq == 3


def test_reopening_a_repaired_log_that_fails_keeps_no_descriptor(tmp_path: Path) -> None:
    damaged(tmp_path)
    fs = FaultInjector(only={"fd_identity"})
    unopened = open_fds()
    with installed(fs):
        store = SnapshotStore(tmp_path / STORE)
    fds = open_fds()
    # repair() rewrites the log through the real file system; the handle then
    # reopens the new file through the injector, and fails to identify it.
    fs.arm(1)
    with pytest.raises(StorageError):
        store.repair()
    fs.arm(None)
    # SQLite keeps the descriptors of the index connections repair closed
    # while this handle's connection holds locks on the file (closing them
    # would drop those locks), and closes them with the last connection.
    index = tmp_path / STORE / "index.sqlite"
    parked = {fd for fd in open_fds() - fds if Path(f"/proc/self/fd/{fd}").readlink() == index}
    assert open_fds() - fds == parked
    assert fds <= open_fds()
    assert [s.snapshot_seq for s in store.snapshots()] == [1, 3, 4]
    store.close()
    assert open_fds() == unopened


def test_a_save_whose_automatic_checkpoint_fails_returns_normally(tmp_path: Path) -> None:
    # The disk fills up after the save's line is synced, while the checkpoint
    # that follows it is written: the snapshot is durable, so save_snapshot
    # must return it (a caller told "failed" would retry a stored save).
    fs = FaultInjector(error=errno.ENOSPC, persistent=True, only={"open_temp"})
    with installed(fs), SnapshotStore(tmp_path / STORE, checkpoint_every=2) as store:
        store.save_snapshot(snap("first"))
        fs.arm(1)
        with pytest.warns(CheckpointWarning, match="No space left"):
            saved = store.save_snapshot(NEW)
        assert saved.snapshot_seq == 2
        assert store.save_snapshot(NEW) == saved  # the retry finds it: nothing raises
        with installed(FileSystem()), SnapshotStore(tmp_path / STORE) as other:
            assert other.get_by_seq(2) == saved
        # Not retried at every save while the disk stays full: an interval later.
        attempts = fs.faults
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            store.save_snapshot(snap("after", i=8))
        assert fs.faults == attempts
        with pytest.warns(CheckpointWarning):
            store.save_snapshot(snap("later", i=9))
        assert fs.faults == attempts + 1
        fs.arm(None)
    with SnapshotStore(tmp_path / STORE) as reopened:
        assert [s.snapshot_seq for s in reopened.snapshots()] == [1, 2, 3, 4]
