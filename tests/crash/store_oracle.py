"""What SnapshotStore promises after a crash, checked on one materialized crash state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from snapstore import NormalizedSnapshot, NotFoundError, SnapshotStore
from snapstore._log import seam
from snapstore._log.seam import FileSystem, is_temp_name
from snapstore.backends.local.checkpoint import INDEX_JSON, INDEX_PARQUET
from snapstore.backends.local.layout import BASELINE_LOG, QUARANTINE_DIR, SNAPSHOT_LOG

from .oracle import bin_source, check_notes, quarantined, torn_tail, valid_prefix

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from pathlib import Path

    from snapstore.testing.crash import CrashState, Recording

STORE = "stores/s"
LOGS = (SNAPSHOT_LOG, BASELINE_LOG)
DERIVED = (INDEX_PARQUET, INDEX_JSON)
QUARANTINE = f"{STORE}/{QUARANTINE_DIR}"
DEFAULT_CHECKPOINT_EVERY = 10_000

Group = tuple[str, str]  # (stage, comparison_key)
Pins = dict[Group, int]  # the pinned snapshot_seq of each group


def seq_of(snap: NormalizedSnapshot) -> int:
    assert snap.snapshot_seq is not None, f"{snap} was never saved"
    return snap.snapshot_seq


def group_of(snap: NormalizedSnapshot) -> Group:
    assert snap.comparison_key is not None
    return snap.stage, snap.comparison_key


@dataclass(frozen=True, slots=True)
class StoreWritten:
    """What a recorded scenario committed to the store at ``STORE``.

    ``records``: every snapshot a reader may see, in seq order (a seq that
    repair quarantined is absent). ``required[k]``: how many of them must be
    visible once ``k`` operations are acknowledged. ``pins[k]``: the baselines
    once ``k`` operations are acknowledged; a crash state may show those of
    any later operation too, never those of an earlier one. ``found``: each
    log as the recording's first process found it. ``damage``: a damaged
    region of the snapshot log, ``(offset, bytes)``, that repair moves aside.
    """

    records: tuple[NormalizedSnapshot, ...]
    required: tuple[int, ...]
    pins: tuple[Pins, ...]
    found: Mapping[str, bytes]
    damage: tuple[int, bytes] | None = None
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY


# -- the questions asked of a store, and the answers a model of it gives ------------


@dataclass(frozen=True, slots=True)
class Queries:
    keys: tuple[tuple[str, str], ...]  # (run_id, stage)
    groups: tuple[Group, ...]
    snaps: tuple[NormalizedSnapshot, ...]  # asked for their previous comparable snapshot

    @classmethod
    def about(cls, snaps: Iterable[NormalizedSnapshot], pins: Iterable[Pins] = ()) -> Queries:
        """Every key and group of ``snaps`` and ``pins``; each snap, and one unsaved
        snapshot of each group from a run of its own."""
        snaps = tuple(snaps)
        groups = sorted({group_of(s) for s in snaps}.union(*pins))
        unsaved = (NormalizedSnapshot("query", stage, comparison_key=key) for stage, key in groups)
        return cls(
            tuple(sorted({(s.run_id, s.stage) for s in snaps})),
            tuple(groups),
            (*snaps, *unsaved),
        )


@dataclass(frozen=True, slots=True)
class Answers:
    versions: dict[tuple[str, str], list[NormalizedSnapshot]]
    latest: dict[tuple[str, str], NormalizedSnapshot | None]
    previous: list[NormalizedSnapshot | None]
    baselines: dict[Group, NormalizedSnapshot | None]


def ask(store: SnapshotStore, queries: Queries) -> Answers:
    return Answers(
        {key: store.versions(*key) for key in queries.keys},
        {key: store.get(*key) for key in queries.keys},
        [store.find_previous_comparable(snap) for snap in queries.snaps],
        {group: store.baseline(*group) for group in queries.groups},
    )


def expect(visible: Sequence[NormalizedSnapshot], pins: Pins, queries: Queries) -> Answers:
    """The answers of a store holding exactly ``visible`` and ``pins``."""
    by_seq = {seq_of(s): s for s in visible}
    versions = {key: [s for s in visible if (s.run_id, s.stage) == key] for key in queries.keys}

    def previous(snap: NormalizedSnapshot) -> NormalizedSnapshot | None:
        earlier = [
            s
            for s in visible
            if group_of(s) == group_of(snap)
            and s.run_id != snap.run_id
            and (snap.snapshot_seq is None or seq_of(s) < snap.snapshot_seq)
        ]
        return earlier[-1] if earlier else None

    return Answers(
        versions,
        {key: found[-1] if found else None for key, found in versions.items()},
        [previous(snap) for snap in queries.snaps],
        {group: by_seq[pins[group]] if group in pins else None for group in queries.groups},
    )


def pins_shown(
    visible: Sequence[NormalizedSnapshot],
    candidates: Sequence[Pins],
    answers: Answers,
    queries: Queries,
) -> Pins:
    """Which of the ``candidates`` the store's answers show (each names visible snapshots)."""
    seqs = {seq_of(s) for s in visible}
    for pins in candidates:
        if set(pins.values()) <= seqs and expect(visible, pins, queries) == answers:
            return pins
    raise AssertionError(
        f"baselines {answers.baselines} are none of those acknowledged or written since "
        f"({list(candidates)}), or another answer disagrees with the log"
    )


# -- the check -----------------------------------------------------------------------


def probe_snapshots(point: int) -> tuple[NormalizedSnapshot, NormalizedSnapshot]:
    """A snapshot to save, and one to pin in an empty group, after a crash at ``point``."""
    return (
        NormalizedSnapshot(f"probe-{point}", "probe", metrics={"point": point}),
        NormalizedSnapshot(f"probe-{point}", "probe-pin", metrics={"point": point}),
    )


def _copies(files: Mapping[str, bytes]) -> set[tuple[str, int, bytes]]:
    """(log, offset, bytes) of every quarantined .bin among ``files`` (by name)."""
    return {(*bin_source(n), data) for n, data in files.items() if n.endswith(".bin")}


def _logs(files: Mapping[str, bytes]) -> dict[str, bytes]:
    return {log: files.get(f"{STORE}/{log}", b"") for log in LOGS}


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def _quarantine_of(store: Path) -> dict[str, bytes]:
    """The files in the quarantine of the store at ``store``, by name."""
    directory = store / QUARANTINE_DIR
    return {p.name: p.read_bytes() for p in directory.iterdir()} if directory.is_dir() else {}


def check_store(recording: Recording, written: StoreWritten) -> Callable[[CrashState, Path], None]:
    """The check ``check_crash_states`` runs on every crash state of a store scenario."""
    initial = dict(recording.initial.visible()[1])
    original = _logs(initial)
    # Torn tails the recording started with. Repair's damage is no tail: valid
    # lines follow it.
    durable_tails = {
        log: torn_tail(data)
        for log, data in original.items()
        if not (log == SNAPSHOT_LOG and written.damage is not None)
    }
    # Bytes recovery or repair may move to quarantine: (log, offset, bytes).
    removable = {
        (log, *tail)
        for log, durable in durable_tails.items()
        for tail in (durable, torn_tail(written.found.get(log, b"")))
        if tail[1]
    }
    if written.damage is not None:
        removable.add((SNAPSHOT_LOG, *written.damage))
    initial_quarantine = set(quarantined(initial, QUARANTINE))
    queries = Queries.about(written.records, written.pins)

    def check(state: CrashState, root: Path) -> None:
        assert type(seam.current()) is FileSystem, "checks must use the real file system"
        files = dict(state.files)
        found = _logs(files)

        # Quarantine holds exact copies of bytes that left a log, and nothing
        # durable left a log without a copy there.
        quarantine = quarantined(files, QUARANTINE)
        new = {n: quarantine[n] for n in set(quarantine) - initial_quarantine}
        for copy in _copies(new):
            assert copy in removable, f"quarantined {copy[:2]} is not a copy of removed bytes"
        check_notes(quarantine, set(new))
        kept = {data for _, _, data in _copies(quarantine)}
        for log, (offset, tail) in durable_tails.items():
            if tail and found[log][offset : len(original[log])] != tail:
                assert tail in kept, f"a torn tail left {log} unquarantined"
        if written.damage is not None and written.damage[1] not in found[SNAPSHOT_LOG]:
            assert written.damage[1] in kept, "repair dropped damaged bytes unquarantined"

        directory = root / STORE
        with SnapshotStore(directory, checkpoint_every=written.checkpoint_every) as store:
            if written.damage is not None and written.damage[1] in found[SNAPSHOT_LOG]:
                store.repair()  # a repair cut short by the crash is finished by running it again
            logs = {log: _read(directory / log) for log in LOGS}
            moved_before = _quarantine_of(directory)

            # Readers see complete snapshots only: a prefix of what was saved,
            # every acknowledged one, with seqs in order and nothing after them.
            seen = list(store.snapshots())
            assert tuple(seen) == written.records[: len(seen)], "a visible snapshot was never saved"
            need = written.required[state.acknowledged]
            assert len(seen) >= need, f"{need} snapshots were acknowledged, {len(seen)} survive"
            assert valid_prefix(logs[SNAPSHOT_LOG])[0] == len(seen), "a complete line was skipped"
            check_readable(store, seen)
            pins = pins_shown(
                seen, written.pins[state.acknowledged :], ask(store, queries), queries
            )
            after, answers = check_next_writes(
                store, seen, pins, state.crash_point, also_ask=written.records
            )

        moved = {n: data for n, data in _quarantine_of(directory).items() if n not in moved_before}
        tails = {(log, *torn_tail(data)) for log, data in logs.items()}
        assert _copies(moved) == {t for t in tails if t[2]}, (
            "recovery did not quarantine exactly the torn tails"
        )
        check_notes(moved, set(moved))
        for log, end, _ in tails:
            now = (directory / log).read_bytes()
            assert now[:end] == logs[log][:end], f"recovery changed committed bytes of {log}"
            assert valid_prefix(now)[1] == len(now), f"{log} is not whole after recovery"

        check_rebuilt(directory, after, answers)

    return check


def check_readable(store: SnapshotStore, seen: Sequence[NormalizedSnapshot]) -> int:
    """Each of the ``seen`` snapshots reads back by its seq, and nothing after the last;
    return the last seq."""
    assert len(store) == len(seen)
    for snap in seen:
        assert store.get_by_seq(seq_of(snap)) == snap
    last = seq_of(seen[-1]) if seen else 0
    try:
        store.get_by_seq(last + 1)
    except NotFoundError:
        return last
    raise AssertionError(f"seq {last + 1} is visible but not in the log's order")


def check_next_writes(
    store: SnapshotStore,
    seen: Sequence[NormalizedSnapshot],
    pins: Pins,
    tag: int,
    *,
    also_ask: Iterable[NormalizedSnapshot] = (),
) -> tuple[Queries, Answers]:
    """The store shows ``seen`` and ``pins``; the next writer recovers whatever a
    failure left: the next save gets the next seq, a pin in an empty group goes
    through, every answer (about those snapshots and ``also_ask``) follows, and the
    derived indices on disk (those found, or written since) agree with the log.
    Returns the questions and their answers."""
    last = seq_of(seen[-1]) if seen else 0
    to_save, to_pin = probe_snapshots(tag)
    probe = store.save_snapshot(to_save)
    assert probe.snapshot_seq == last + 1, f"the next save got {probe.snapshot_seq}"
    pinned = store.get_or_establish_baseline(to_pin)
    assert pinned.snapshot_seq == last + 2
    pins = {**pins, group_of(pinned): last + 2}
    after = Queries.about([*also_ask, *seen, probe, pinned], [pins])
    answers = ask(store, after)
    assert answers == expect([*seen, probe, pinned], pins, after)
    findings = [f for f in store.verify().findings if not is_temp_name(f.path.name)]
    assert not findings, [str(f) for f in findings]
    return after, answers


def check_rebuilt(directory: Path, queries: Queries, answers: Answers) -> None:
    """The derived indices are only caches: without them, the store at ``directory``
    gives the same ``answers``."""
    for name in DERIVED:
        (directory / name).unlink(missing_ok=True)
    with SnapshotStore(directory) as rebuilt:
        assert ask(rebuilt, queries) == answers
