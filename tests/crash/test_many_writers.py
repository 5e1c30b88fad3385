"""Crash states of several writers: one dies inside its sync, another acts on what it left.

Writer A's lines are written but not synced when it is killed. Handle B (its
own descriptors and lock, as another process) then retries the same request,
reads, pins a baseline or saves on top of them; then the power fails. Each
state checks that everything B acknowledged, and everything B was given to
read, survives: no handle may act on a record before it is durable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore._log import seam
from snapstore.testing import CrashRecorder, SimulatedKill

from .tally import assert_at_least, check_recorded

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from pathlib import Path

    from snapstore.testing import CrashState, Recording

    from .tally import CrashTally

LOG = "h.jsonl"
STORE = "s"
SUBJECT = "many writers"
SNAP = NormalizedSnapshot("run-a", "train", metrics={"auc": 0.8}, config={"lr": 0.1})
LATER = NormalizedSnapshot("run-b", "train", metrics={"auc": 0.7}, config={"lr": 0.1})


def content(snap: NormalizedSnapshot) -> tuple[object, ...]:
    return snap.snapshot_seq, snap.run_id, snap.stage, dict(snap.metrics), dict(snap.config)


class Scene:
    """A recorder over ``root``, with a way to kill a writer inside its sync."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self.recorder = CrashRecorder(root)

    def died_in_sync(self, write: Callable[[], object], handle: object) -> None:
        """Run ``write`` on ``handle`` with its sync killed; then the process is gone."""
        before = len(self.recorder.recording().effects)
        self.recorder.kill_next_sync()
        with pytest.raises(SimulatedKill):
            write()
        close = getattr(handle, "close")  # noqa: B009 - a history or a store
        close()
        # A dead process does nothing more: closing left no effect behind.
        assert len(self.recorder.recording().effects) > before
        assert not any(
            type(e).__name__ == "Sync" for e in self.recorder.recording().effects[before:]
        )

    def operation(self, label: str) -> AbstractContextManager[None]:
        return self.recorder.operation(label)

    def recording(self) -> Recording:
        return self.recorder.recording()


def history_scene(tmp_path: Path) -> Scene:
    scene = Scene(tmp_path / "r")
    with IterationHistory(scene.root / LOG) as history:
        history.append({"i": 0})
    scene.recorder = CrashRecorder(scene.root)  # the synced first record is the starting tree
    return scene


def store_scene(tmp_path: Path) -> Scene:
    scene = Scene(tmp_path / "r")
    SnapshotStore(scene.root / STORE).close()
    scene.recorder = CrashRecorder(scene.root)
    return scene


Acked = list[tuple[int, dict[str, object], "str | None"]]


def check_history_log(where: Path, acknowledged: Acked) -> None:
    with IterationHistory(where / LOG) as history:
        records = list(history)
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        for seq, data, key in acknowledged:
            assert (history.get(seq).data, history.get(seq).key) == (data, key), f"seq {seq} lost"
        history.append({"next": True})
        assert history.verify().ok


def run(
    tmp_path: Path,
    tally: CrashTally,
    operation: str,
    scene: Scene,
    check: Callable[[CrashState, Path], None],
) -> Counter[str]:
    return check_recorded(tmp_path, tally, SUBJECT, operation, scene.recording(), check=check)


def test_a_keyed_retry_is_not_acknowledged_from_an_unsynced_append(
    tmp_path: Path, crash_tally: CrashTally
) -> None:
    scene = history_scene(tmp_path)
    with seam.installed(scene.recorder):
        dying = IterationHistory(scene.root / LOG)
        scene.died_in_sync(lambda: dying.append({"i": 1}, key="k"), dying)
        with scene.operation("retry"), IterationHistory(scene.root / LOG) as retry:
            acked = retry.append({"i": 1}, key="k")

    def check(state: CrashState, where: Path) -> None:
        done = [(acked.seq, acked.data, acked.key)] if state.acknowledged else []
        check_history_log(where, done)
        with IterationHistory(where / LOG) as history:
            again = history.append({"i": 1}, key="k")
            assert not state.acknowledged or again.seq == acked.seq, "the key was stored twice"

    assert_at_least(
        run(
            tmp_path, crash_tally, "history: keyed retry after a writer died in sync", scene, check
        ),
        states=280,
        prefix=1,
        unsynced=1,
        reordered=1,
        torn=279,
    )


def test_a_reader_never_returns_an_unsynced_record(tmp_path: Path, crash_tally: CrashTally) -> None:
    scene = history_scene(tmp_path)
    with seam.installed(scene.recorder):
        reader = IterationHistory(scene.root / LOG)
        dying = IterationHistory(scene.root / LOG)
        scene.died_in_sync(lambda: dying.extend([{"i": 1}, {"i": 2}]), dying)
        with scene.operation("read"):
            given = [(r.seq, r.data, r.key) for r in reader.load_recent(3)]
        reader.close()
    assert [seq for seq, _, _ in given] == [1, 2, 3]

    def check(state: CrashState, where: Path) -> None:
        check_history_log(where, given if state.acknowledged else [])

    assert_at_least(
        run(tmp_path, crash_tally, "history: read after a writer died in sync", scene, check),
        states=567,
        prefix=1,
        unsynced=1,
        reordered=1,
        torn=566,
    )


def test_an_append_after_an_unsynced_append_survives(
    tmp_path: Path, crash_tally: CrashTally
) -> None:
    scene = history_scene(tmp_path)
    with seam.installed(scene.recorder):
        dying = IterationHistory(scene.root / LOG)
        scene.died_in_sync(lambda: dying.append({"i": 1}), dying)
        with scene.operation("append"), IterationHistory(scene.root / LOG) as writer:
            acked = writer.append({"i": 2})

    def check(state: CrashState, where: Path) -> None:
        check_history_log(where, [(acked.seq, acked.data, None)] if state.acknowledged else [])

    assert_at_least(
        run(tmp_path, crash_tally, "history: append after a writer died in sync", scene, check),
        states=572,
        prefix=3,
        unsynced=2,
        reordered=2,
        torn=571,
    )


def test_a_retried_save_is_not_acknowledged_from_an_unsynced_save(
    tmp_path: Path, crash_tally: CrashTally
) -> None:
    scene = store_scene(tmp_path)
    with seam.installed(scene.recorder):
        dying = SnapshotStore(scene.root / STORE)
        scene.died_in_sync(lambda: dying.save_snapshot(SNAP), dying)
        with scene.operation("retry"), SnapshotStore(scene.root / STORE) as retry:
            acked = retry.save_snapshot(SNAP)

    def check(state: CrashState, where: Path) -> None:
        with SnapshotStore(where / STORE) as store:
            if state.acknowledged:
                assert content(store.get_by_seq(acked.snapshot_seq or 0)) == content(acked)
            again = store.save_snapshot(SNAP)
            assert not state.acknowledged or again == acked, "the save was stored twice"
            assert store.verify().ok

    assert_at_least(
        run(tmp_path, crash_tally, "store: retried save after a writer died in sync", scene, check),
        states=648,
        prefix=1,
        unsynced=1,
        reordered=1,
        torn=648,
    )


def test_a_baseline_is_never_pinned_to_an_unsynced_snapshot(
    tmp_path: Path, crash_tally: CrashTally
) -> None:
    scene = store_scene(tmp_path)
    with seam.installed(scene.recorder):
        pinner = SnapshotStore(scene.root / STORE)
        dying = SnapshotStore(scene.root / STORE)
        scene.died_in_sync(lambda: dying.save_snapshot(SNAP), dying)
        with scene.operation("pin"):
            found = pinner.get(SNAP.run_id, SNAP.stage)
            assert found is not None
            pinned = pinner.get_or_establish_baseline(found)
        pinner.close()
    group = pinned.stage, pinned.comparison_key or ""

    def check(state: CrashState, where: Path) -> None:
        with SnapshotStore(where / STORE) as store:
            baseline = store.baseline(*group)
            if state.acknowledged:
                assert baseline is not None
                assert content(baseline) == content(pinned)
            store.save_snapshot(LATER)  # a later save must not take the pinned seq
            baseline = store.baseline(*group)
            if baseline is not None:
                assert content(baseline) == content(pinned), "the pin names another snapshot"

    assert_at_least(
        run(tmp_path, crash_tally, "store: pin after a writer died in sync", scene, check),
        states=1288,
        prefix=4,
        unsynced=3,
        reordered=3,
        torn=1278,
    )


def test_a_store_reader_never_returns_an_unsynced_snapshot(
    tmp_path: Path, crash_tally: CrashTally
) -> None:
    scene = store_scene(tmp_path)
    with seam.installed(scene.recorder):
        reader = SnapshotStore(scene.root / STORE)
        dying = SnapshotStore(scene.root / STORE)
        scene.died_in_sync(lambda: dying.save_snapshot(SNAP), dying)
        with scene.operation("read"):
            given = reader.get_by_seq(1)
            count = len(reader)
        reader.close()
    assert count == 1

    def check(state: CrashState, where: Path) -> None:
        with SnapshotStore(where / STORE) as store:
            if state.acknowledged:
                assert len(store) >= count
                assert content(store.get_by_seq(1)) == content(given), "seq 1 was reused"
            saved = store.save_snapshot(LATER)
            assert content(store.get_by_seq(1)) == content(
                given if saved.snapshot_seq == 2 else saved
            )

    assert_at_least(
        run(tmp_path, crash_tally, "store: read after a writer died in sync", scene, check),
        states=656,
        prefix=2,
        unsynced=2,
        reordered=1,
        torn=651,
    )
