"""Sync between stores: everything copied once, between any two backends, however cut short."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from postgres_server import new_schema, server_dsn
from snapstore import (
    InvalidInputError,
    NormalizedSnapshot,
    ReadOnlyError,
    SnapshotStore,
)
from snapstore._progress import reporting
from snapstore.cli.main import main
from snapstore.sync import BaselineConflict, RecordConflict
from snapstore.testing.harnesses import drop_schema, with_query

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

STAGES = ("TARGET_RANKING", "TRAINING")


class Stores:
    """Makes stores of one backend by name: a directory, a PostgreSQL schema, or memory."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self._schemas: list[str] = []
        self._dsn = server_dsn() if kind == "postgres" else ""

    def url(self, name: str) -> str:
        if self.kind == "local":
            return str(self._tmp_path / name)
        if self.kind == "memory":
            return f"memory://{uuid.uuid4().hex}-{name}"
        schema = new_schema(f"s{name}")
        self._schemas.append(schema)
        return with_query(self._dsn, schema=schema)

    def drop(self) -> None:
        for schema in self._schemas:
            drop_schema(self._dsn, schema)


@pytest.fixture(params=["local", "postgres", "memory"])
def source_kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    stores = Stores(request.param, tmp_path / "source")
    yield stores
    stores.drop()


@pytest.fixture(params=["local", "postgres"])
def destination_kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    stores = Stores(request.param, tmp_path / "destination")
    yield stores
    stores.drop()


def record_runs(store: SnapshotStore, runs: range, *, records: int = 3) -> None:
    """Runs of every stage, a retried save, baselines of two groups, and histories."""
    for run in runs:
        for stage in STAGES:
            snap = NormalizedSnapshot(
                f"run-{run}",
                stage,
                metrics={"auc": 0.5 + run / 1000, "nan": float("nan")},
                config={"lr": 0.1 * (run % 2)},
                data={"rows": [run, run]},
            )
            saved = store.save_snapshot(snap)
            store.save_snapshot(replace(snap, metrics={**snap.metrics, "auc": 0.9}))
            store.get_or_establish_baseline(saved)
            history = store.history(f"run-{run}.{stage}")
            for i in range(records):
                history.append({"iteration": i, "loss": 1 / (i + 1)})
            history.append({"final": True}, key="final")


def contents(store: SnapshotStore) -> dict[str, Any]:
    """What a store holds, in order, without its seqs and times (a copy gets its own)."""
    return {
        "snapshots": [
            (s.run_id, s.stage, s.comparison_key, repr(dict(s.metrics)), s.to_dict()["config"])
            for s in store.snapshots()
        ],
        "baselines": sorted(
            (s.stage, s.comparison_key, s.run_id, repr(dict(s.metrics))) for s in store.baselines()
        ),
        "histories": {
            name: [r.data for r in store.history(name)] for name in store.history_names()
        },
    }


@pytest.fixture
def pair(
    source_kind: Stores, destination_kind: Stores
) -> Iterator[tuple[SnapshotStore, SnapshotStore]]:
    """A source and a destination store, of every two backends."""
    with (
        SnapshotStore(source_kind.url("a")) as source,
        SnapshotStore(destination_kind.url("b")) as destination,
    ):
        yield source, destination


def test_a_sync_copies_everything_once_between_any_two_backends(
    pair: tuple[SnapshotStore, SnapshotStore],
) -> None:
    source, destination = pair
    record_runs(source, range(1, 4))
    first = destination.sync_from(source)
    assert (first.snapshots_copied, first.snapshots_present) == (12, 0)
    assert (first.baselines_pinned, first.records_copied) == (4, 24)
    assert first.ok
    assert contents(destination) == contents(source)
    assert destination.verify().ok  # copies, with their origins, are valid records
    again = destination.sync_from(source)
    assert (again.snapshots_copied, again.snapshots_present) == (0, 12)
    assert (again.baselines_pinned, again.baselines_present) == (0, 4)
    assert (again.records_copied, again.records_present) == (0, 24)
    assert contents(destination) == contents(source)
    # A record keeps its key; one without gets its origin as its key.
    keys = [r.key for r in destination.history("run-1.TRAINING")]
    assert keys == [f"{source.identity}:{seq}" for seq in (1, 2, 3)] + ["final"]
    # Each copy keeps its origin: the source's seq of every copy, exactly.
    copies = destination.copies_from(source.identity)
    assert sorted(copies) == list(range(1, 13))
    for source_seq, seq in copies.items():
        original, copy = source.get_by_seq(source_seq), destination.get_by_seq(seq)
        assert (copy.run_id, copy.stage, copy.to_dict()["config"]) == (
            original.run_id,
            original.stage,
            original.to_dict()["config"],
        )


def test_later_saves_are_copied_by_the_next_sync_after_the_destinations_own(
    pair: tuple[SnapshotStore, SnapshotStore],
) -> None:
    source, destination = pair
    record_runs(source, range(1, 3))
    destination.sync_from(source)
    own = destination.save_snapshot(NormalizedSnapshot("local-run", "TRAINING"))
    record_runs(source, range(3, 5))
    report = destination.sync_from(source)
    assert (report.snapshots_copied, report.snapshots_present) == (8, 8)
    seqs = [s.snapshot_seq for s in destination.snapshots()]
    assert seqs == list(range(1, 18))  # the destination's own seqs, gap-free
    assert destination.get_by_seq(9) == own
    assert [s.run_id for s in destination.snapshots()][9:] == [
        run for run in ("run-3", "run-4") for _ in range(4)
    ]


def test_copies_survive_reopening_and_are_found_again(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "a") as source:
        record_runs(source, range(1, 3))
        identity = source.identity
        with SnapshotStore(tmp_path / "b") as destination:
            destination.sync_from(source)
        with SnapshotStore(tmp_path / "b") as destination:
            assert sorted(destination.copies_from(identity)) == list(range(1, 9))
            assert destination.sync_from(source).snapshots_copied == 0
    # The identity is the store's, not the handle's.
    with SnapshotStore(tmp_path / "a", read_only=True) as source:
        assert source.identity == identity


def test_a_store_made_before_identities_has_a_stable_one(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "old") as store:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
    marker = tmp_path / "old" / "SNAPSTORE"
    document = marker.read_text().replace('"identity"', '"former_identity"')
    marker.write_text(document)
    with SnapshotStore(tmp_path / "old") as first, SnapshotStore(tmp_path / "old") as second:
        assert first.identity == second.identity
        assert len(first.identity) == 32


def test_a_baseline_the_destination_pinned_itself_is_kept_and_reported(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "a") as source, SnapshotStore(tmp_path / "b") as destination:
        config = {"lr": 0.1}
        theirs = source.save_snapshot(NormalizedSnapshot("theirs", "TRAINING", config=config))
        source.get_or_establish_baseline(theirs)
        ours = destination.save_snapshot(NormalizedSnapshot("ours", "TRAINING", config=config))
        destination.get_or_establish_baseline(ours)
        report = destination.sync_from(source)
        assert not report.ok
        assert report.baseline_conflicts == [
            BaselineConflict("TRAINING", str(theirs.comparison_key), 1, 1)
        ]
        assert destination.baseline("TRAINING", str(ours.comparison_key)) == ours


def test_a_baseline_the_source_moved_is_reported_not_moved_in_the_destination(
    tmp_path: Path,
) -> None:
    with SnapshotStore(tmp_path / "a") as source, SnapshotStore(tmp_path / "b") as destination:
        first = source.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
        source.get_or_establish_baseline(first)
        destination.sync_from(source)
        second = source.save_snapshot(NormalizedSnapshot("run-2", "TRAINING"))
        source.set_baseline(second)
        report = destination.sync_from(source)
        group = str(first.comparison_key)
        assert report.baseline_conflicts == [BaselineConflict("TRAINING", group, 2, 1)]
        pinned = destination.baseline("TRAINING", group)
        assert pinned is not None
        assert pinned.run_id == "run-1"


def test_a_record_the_destination_holds_with_other_data_is_kept_and_reported(
    tmp_path: Path,
) -> None:
    with SnapshotStore(tmp_path / "a") as source, SnapshotStore(tmp_path / "b") as destination:
        source.history("h").append({"loss": 1.0}, key="step-1")
        destination.history("h").append({"loss": 2.0}, key="step-1")
        report = destination.sync_from(source)
        assert report.record_conflicts == [RecordConflict("h", "step-1", 1)]
        assert [r.data for r in destination.history("h")] == [{"loss": 2.0}]


def test_a_store_is_not_synced_into_itself_nor_into_a_read_only_handle(tmp_path: Path) -> None:
    with SnapshotStore(tmp_path / "a") as store, SnapshotStore(tmp_path / "a") as again:
        store.save_snapshot(NormalizedSnapshot("run-1", "TRAINING"))
        with pytest.raises(InvalidInputError, match="are one store"):
            store.sync_from(again)
        with SnapshotStore(tmp_path / "a", read_only=True) as reader, pytest.raises(ReadOnlyError):
            reader.sync_from(store)
        with pytest.raises(InvalidInputError, match="needs a SnapshotStore"):
            store.sync_from(str(tmp_path / "b"))  # type: ignore[arg-type]
        assert len(store) == 1


# -- killed at every stage ----------------------------------------------------------

# Runs a sync to its end in a child process, as the command line does.
_SYNC = "import sys; from snapstore.cli.main import main; sys.exit(main(['sync', *sys.argv[1:]]))"


def _start_sync(source: str, destination: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _SYNC, source, destination],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(child: subprocess.Popen[bytes], reached: Callable[[], bool]) -> bool:
    """SIGKILL ``child`` as soon as ``reached()``; False if it ended first."""
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        if reached():
            os.kill(child.pid, signal.SIGKILL)
            child.communicate()
            return True
        time.sleep(0.002)
    child.communicate()
    return False


def _progress_of(destination: str) -> tuple[int, int]:
    """How far a sync into ``destination`` got: snapshots and history records there."""
    try:
        with SnapshotStore(destination, read_only=True) as store:
            return len(store), sum(store.info().histories.values())
    except Exception:  # not created yet, or created halfway
        return 0, 0


@pytest.mark.parametrize(
    "stage",
    [
        (1, 0),  # among the first snapshots
        (40, 0),  # halfway through the snapshots
        (80, 0),  # every snapshot copied: the pins next
        (80, 150),  # halfway through the histories
    ],
    ids=["first-snapshots", "mid-snapshots", "pins", "mid-histories"],
)
def test_a_sync_killed_at_any_stage_and_rerun_copies_everything_once(
    destination_kind: Stores, tmp_path: Path, stage: tuple[int, int]
) -> None:
    source_url = str(tmp_path / "a")
    with SnapshotStore(source_url, durability="write") as source:
        record_runs(source, range(1, 21), records=5)  # 80 snapshots, 240 records
        expected = contents(source)
    destination = destination_kind.url("b")
    snapshots, records = stage
    killed = _kill_when(
        _start_sync(source_url, destination),
        lambda: (
            all(got >= want for got, want in zip(_progress_of(destination), stage, strict=True))
            and (snapshots, records) != (0, 0)
        ),
    )
    assert killed, "the sync ended before it reached the stage to kill it at"
    rerun = _start_sync(source_url, destination)
    _, errors = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, errors.decode()
    with SnapshotStore(destination, read_only=True) as copied, SnapshotStore(source_url) as source:
        assert contents(copied) == expected
        assert sorted(copied.copies_from(source.identity)) == list(range(1, 81))
        assert len(copied) == 80


def test_syncs_racing_into_one_store_copy_each_snapshot_once(
    destination_kind: Stores, tmp_path: Path
) -> None:
    source_url = str(tmp_path / "a")
    with SnapshotStore(source_url, durability="write") as source:
        record_runs(source, range(1, 101), records=1)  # long enough for the racers to overlap
        expected, count = contents(source), len(source)
    destination = destination_kind.url("b")
    with SnapshotStore(destination):
        pass  # created first: the racers then only write
    racers = [_start_sync(source_url, destination) for _ in range(3)]
    for racer in racers:
        _, errors = racer.communicate(timeout=120)
        assert racer.returncode == 0, errors.decode()
    with SnapshotStore(destination, read_only=True) as copied:
        assert contents(copied) == expected
        assert len(copied) == count


# -- the command --------------------------------------------------------------------


def test_the_command_syncs_into_a_url_and_reads_it_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = Stores("postgres", tmp_path)
    try:
        url = stores.url("cli")
        with SnapshotStore(tmp_path / "a") as source:
            record_runs(source, range(1, 3))
        assert main(["sync", str(tmp_path / "a"), url, "--format", "json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["snapshots_copied"], report["records_copied"]) == (8, 16)
        assert main(["ls", url, "--format", "csv", "--columns", "run_id,stage"]) == 0
        assert capsys.readouterr().out.count("run-2") == 2
        assert main(["verify", url]) == 0
        assert capsys.readouterr().out.endswith(": 5 file(s), 24 valid records: OK\n")
        assert main(["sync", str(tmp_path / "a"), url]) == 0
        assert "0 copied, 8 there already" in capsys.readouterr().out
    finally:
        stores.drop()


def test_the_command_exits_1_when_it_kept_a_conflicting_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"lr": 0.1}
    with SnapshotStore(tmp_path / "a") as source, SnapshotStore(tmp_path / "b") as destination:
        source.get_or_establish_baseline(NormalizedSnapshot("theirs", "TRAINING", config=config))
        destination.get_or_establish_baseline(NormalizedSnapshot("ours", "TRAINING", config=config))
    assert main(["sync", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "conflict TRAINING" in out
    assert "kept this store's seq 1" in out


def test_the_command_says_in_one_line_why_it_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sync", str(tmp_path / "missing"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snapstore: error: ")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_a_sync_tells_a_listener_how_far_it_got(tmp_path: Path) -> None:
    told: list[tuple[str, int, int]] = []
    with SnapshotStore(tmp_path / "a") as source, SnapshotStore(tmp_path / "b") as destination:
        record_runs(source, range(1, 3))
        with reporting(lambda task, done, total: told.append((task, done, total))):
            destination.sync_from(source)
    snapshots = [(done, total) for task, done, total in told if task == "copying snapshots"]
    histories = [(done, total) for task, done, total in told if task == "copying histories"]
    assert (snapshots[0], snapshots[-1]) == ((0, 8), (8, 8))
    assert (histories[0], histories[-1]) == ((0, 4), (4, 4))
