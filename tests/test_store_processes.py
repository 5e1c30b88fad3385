"""Several processes writing one store at once (spawned, bounded in time).

Workers are module-level functions so that "spawn" children can import them;
they wait at a file barrier after opening the store, so the writes overlap.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapstore import NormalizedSnapshot, SnapshotStore
from store_fixtures import STAGES
from workers import save_many

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

BARRIER_TIMEOUT = 60.0
RESULT_TIMEOUT = 90.0
CONFIG = {"model": "gbm", "lr": 0.1}
ARTIFACTS_PER_PROCESS = 8


def _wait_for_peers(barrier: Path, worker: int, peers: int) -> None:
    (barrier / f"ready-{worker}").touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while len(list(barrier.iterdir())) < peers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker {worker}: peers did not start within {BARRIER_TIMEOUT} s")
        time.sleep(0.001)


def _run_workers(tmp_path: Path, work: Callable[..., Any], peers: int, *args: Any) -> list[Any]:
    """Run ``work(root, barrier, worker, peers, *args)`` in ``peers`` spawned processes."""
    root, barrier = tmp_path / "store", tmp_path / "barrier"
    barrier.mkdir()
    SnapshotStore(root).close()  # created once, so workers only open it
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(peers, mp_context=context) as pool:
        futures = [
            pool.submit(work, str(root), str(barrier), worker, peers, *args)
            for worker in range(peers)
        ]
        return [future.result(timeout=RESULT_TIMEOUT) for future in futures]


def _log_seqs(root: Path) -> list[int]:
    return [
        json.loads(line)["seq"] for line in (root / "snapshots.jsonl").read_bytes().splitlines()
    ]


# -- 4 processes x 100 saves across shared keys ----------------------------------


def _save_mixed(root: str, barrier: str, worker: int, peers: int, count: int) -> list[Any]:
    with SnapshotStore(root) as store:
        _wait_for_peers(Path(barrier), worker, peers)
        saved = []
        for i in range(count):
            snap = store.save_snapshot(
                NormalizedSnapshot(
                    f"run-{i % 5}", STAGES[i % len(STAGES)], metrics={"worker": worker, "i": i}
                )
            )
            saved.append((snap.snapshot_seq, snap.run_id, snap.stage, worker, i))
        return saved


def test_four_processes_saving_mixed_keys_get_seqs_one_to_four_hundred(tmp_path: Path) -> None:
    results = _run_workers(tmp_path, _save_mixed, 4, 100)
    saves = [save for worker in results for save in worker]
    assert sorted(seq for seq, *_ in saves) == list(range(1, 401))
    for worker in results:  # each process saw its own seqs increase
        seqs = [seq for seq, *_ in worker]
        assert seqs == sorted(seqs)
    root = tmp_path / "store"
    assert _log_seqs(root) == list(range(1, 401))
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    with SnapshotStore(root) as store:
        assert len(store) == 400
        for seq, run_id, stage, worker, i in sorted(saves):
            snap = store.get_by_seq(seq)
            assert (snap.run_id, snap.stage) == (run_id, stage)
            assert dict(snap.metrics) == {"worker": worker, "i": i}
            by_key[run_id, stage].append(seq)
        for (run_id, stage), seqs in by_key.items():
            assert [v.snapshot_seq for v in store.versions(run_id, stage)] == seqs
            latest = store.get(run_id, stage)
            assert latest is not None
            assert latest.snapshot_seq == seqs[-1]


# -- the seed scenario: many snapshots within a second, ids from the clock -------


def _create_artifacts(root: str, barrier: str, worker: int, peers: int, second: int) -> list[Any]:
    kinds = ("model", "dataset", "code")
    made: dict[str, int] = defaultdict(int)
    created = []
    with SnapshotStore(root) as store:
        _wait_for_peers(Path(barrier), worker, peers)
        for n in range(ARTIFACTS_PER_PROCESS):
            kind = kinds[n % len(kinds)]
            made[kind] += 1
            # The id scheme that once collided: type, per-type count, whole
            # seconds (fixed by the parent, so the collisions are certain).
            # Equal ids must become versions, never overwrites.
            run_id = f"{kind}-{made[kind]}-{second}"
            data = {"worker": worker, "n": n, "url": f"https://example.org/{worker}/{n}"}
            snap = store.save_snapshot(NormalizedSnapshot(run_id, "UPLOAD", data=data))
            created.append((snap.snapshot_seq, run_id, data))
    return created


def test_snapshots_created_within_a_second_by_three_processes_are_all_kept(
    tmp_path: Path,
) -> None:
    results = _run_workers(tmp_path, _create_artifacts, 3, int(time.time()))
    created = [item for worker in results for item in worker]
    seqs = [seq for seq, _, _ in created]
    assert sorted(seqs) == list(range(1, 25))
    run_ids = [run_id for _, run_id, _ in created]
    with SnapshotStore(tmp_path / "store") as store:
        assert len(store) == 24
        for seq, run_id, data in created:
            snap = store.get_by_seq(seq)
            assert snap.run_id == run_id
            assert dict(snap.data) == data
        for run_id in set(run_ids):
            versions = store.versions(run_id, "UPLOAD")
            assert sorted(v.snapshot_seq or 0 for v in versions) == sorted(
                seq for seq, other, _ in created if other == run_id
            )
    assert len(set(run_ids)) == 8  # each id was made by all three processes


# -- 8 processes racing to establish one baseline ----------------------------------


def _establish(root: str, barrier: str, worker: int, peers: int) -> tuple[int | None, str]:
    with SnapshotStore(root) as store:
        _wait_for_peers(Path(barrier), worker, peers)
        snap = NormalizedSnapshot(f"run-{worker}", "TRAINING", metrics={"w": worker}, config=CONFIG)
        baseline = store.get_or_establish_baseline(snap)
        return baseline.snapshot_seq, baseline.run_id


def test_processes_racing_on_an_empty_group_agree_on_one_baseline(tmp_path: Path) -> None:
    answers = _run_workers(tmp_path, _establish, 8)
    assert len(set(answers)) == 1
    ((seq, run_id),) = set(answers)
    root = tmp_path / "store"
    pins = (root / "baselines.jsonl").read_bytes().splitlines()
    assert len(pins) == 1
    assert json.loads(pins[0])["data"]["snapshot_seq"] == seq
    with SnapshotStore(root) as store:
        assert len(store) == 1  # only the snapshot that became the baseline was saved
        baseline = store.get_by_seq(seq or 0)
        assert baseline.run_id == run_id
        assert store.baseline("TRAINING", baseline.comparison_key or "") == baseline


# -- 8 processes creating one new store at once --------------------------------------

CREATION_ROUNDS = 300


def _new_store(root: str, n: int) -> Path:
    """The directory of round ``n``: even rounds find it missing, odd ones empty."""
    return Path(root).with_name(f"new-{n}")


def _open_new_stores(root: str, barrier: str, worker: int, peers: int, rounds: int) -> list[str]:
    """Open store ``n`` of ``rounds`` new ones, all peers at once; what each open raised."""
    failures = []
    for n in range(rounds):
        gate = Path(barrier) / f"round-{n}"
        gate.mkdir(exist_ok=True)
        _wait_for_peers(gate, worker, peers)
        try:
            SnapshotStore(_new_store(root, n)).close()
        except Exception as exc:  # reported to the test, which fails on any
            failures.append(f"round {n}: {type(exc).__name__}: {exc}")
    return failures


def test_eight_processes_creating_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    # A missing directory and an empty one are both "a new store": whichever
    # process publishes the marker first, every opener gets that one store.
    root = tmp_path / "store"
    for n in range(1, CREATION_ROUNDS, 2):
        _new_store(str(root), n).mkdir()
    results = _run_workers(tmp_path, _open_new_stores, 8, CREATION_ROUNDS)
    failures = [failure for worker in results for failure in worker]
    assert failures == [], f"{len(failures)} failed opens, the first: {failures[:2]}"
    for n in range(CREATION_ROUNDS):
        new = _new_store(str(root), n)
        # SQLite's own side files may outlive the last connection when
        # connections close at the same instant (each sees the other open).
        sqlite_side = {"index.sqlite-wal", "index.sqlite-shm"}
        assert sorted(p.name for p in new.iterdir() if p.name not in sqlite_side) == [
            ".lock",
            "SNAPSTORE",
            "baselines.jsonl",
            "index.sqlite",
            "snapshots.jsonl",
        ], "a creator left a temp file, or a second creation left files behind"
        with SnapshotStore(new) as store:
            assert len(store) == 0
            assert store.verify().ok


def test_a_baseline_pinned_between_a_look_and_the_lock_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # B has looked and found the group empty; before B takes the writer lock,
    # A pins the group. B decides under the lock, after reading every pin
    # committed so far, so it answers with A's pin instead of pinning its own.
    config = {"model": "gbm", "lr": 0.1}
    with SnapshotStore(tmp_path / "s") as a, SnapshotStore(tmp_path / "s") as b:
        mine = a.save_snapshot(
            NormalizedSnapshot("run-a", "TRAIN", metrics={"x": 1}, config=config)
        )
        decide = b._backend.establish_baseline
        won: list[NormalizedSnapshot] = []

        def a_pins_first(snap: NormalizedSnapshot, payload: bytes | None) -> NormalizedSnapshot:
            won.append(a.get_or_establish_baseline(mine))
            return decide(snap, payload)

        monkeypatch.setattr(b._backend, "establish_baseline", a_pins_first)
        theirs = NormalizedSnapshot("run-b", "TRAIN", metrics={"x": 2}, config=config)
        answer = b.get_or_establish_baseline(theirs)
        assert won == [mine]
        assert answer == mine
        assert b.get("run-b", "TRAIN") is None, "B saved a snapshot it did not pin"
    assert (tmp_path / "s" / "baselines.jsonl").read_bytes().count(b"\n") == 1


# -- savers through a symlinked root and the real one -----------------------------------


def test_savers_through_a_symlinked_root_and_the_real_one_share_one_lock(tmp_path: Path) -> None:
    real, count = tmp_path / "store", 100
    SnapshotStore(real).close()
    (tmp_path / "link").symlink_to(real)
    paths = [real, tmp_path / "link", real, tmp_path / "link"]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(paths))
    savers = [
        context.Process(target=save_many, args=(str(path), w, count, start))
        for w, path in enumerate(paths)
    ]
    for saver in savers:
        saver.start()
    try:
        for saver in savers:
            saver.join(RESULT_TIMEOUT)
        assert [saver.exitcode for saver in savers] == [0] * len(paths)
    finally:
        for saver in savers:
            if saver.is_alive():
                saver.kill()
                saver.join()
    assert _log_seqs(real) == list(range(1, len(paths) * count + 1))
    with SnapshotStore(tmp_path / "link") as store:
        assert store.verify().ok
        for w in range(len(paths)):
            versions = store.versions(f"run-{w}", "TRAINING")
            assert [v.metrics["i"] for v in versions] == list(range(count))
    assert not (real / "quarantine").exists(), "acknowledged saves were quarantined"
