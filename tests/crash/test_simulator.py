"""The crash simulator: faithful recording, and the crash-state families it generates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from snapstore.testing.crash import (
    CrashCheckError,
    CrashRecorder,
    CrashState,
    SimulatedKill,
    Write,
    check_crash_states,
    crash_states,
    process_crash,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from snapstore.testing.crash import Recording


def tree_of(root: Path) -> tuple[tuple[str, ...], tuple[tuple[str, bytes], ...]]:
    dirs = tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()))
    files = tuple(
        sorted(
            (p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file()
        )
    )
    return dirs, files


def trees(states: list[CrashState]) -> set[tuple[tuple[str, bytes], ...]]:
    return {state.files for state in states}


def append(fs: CrashRecorder, path: Path, data: bytes, *, sync: bool) -> None:
    fd, _ = fs.open_log(path)
    fs.write(fd, data)
    if sync:
        fs.sync(fd)
    fs.close(fd)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "old.txt").write_bytes(b"before")
    return tmp_path / "root"


def test_prefixes_match_the_real_tree_after_each_operation(root: Path) -> None:
    fs = CrashRecorder(root)
    seen = {0: tree_of(root)}
    steps: list[Callable[[], object]] = [
        lambda: fs.make_dirs(root / "a" / "b"),
        lambda: append(fs, root / "a" / "log", b"one\n", sync=True),
        lambda: append(fs, root / "a" / "log", b"two\n", sync=False),
        lambda: fs.write_atomic(root / "old.txt", b"after"),
        lambda: fs.create_exclusive(root / "a" / "b" / "x.bin", b"xx"),
        lambda: fs.unlink(root / "a" / "b" / "x.bin"),
    ]
    for step in steps:
        step()
        seen[len(fs.recording().effects)] = tree_of(root)
    recording = fs.recording()
    for point, tree in seen.items():
        state = process_crash(recording, point)
        assert (state.dirs, state.files) == tree


def test_appends_are_recorded_at_the_end_and_truncates_with_their_size(root: Path) -> None:
    fs = CrashRecorder(root)
    fd, created = fs.open_log(root / "log")
    fs.write(fd, b"abc")
    fs.truncate(fd, 1)
    fs.write(fd, b"de")
    fs.close(fd)
    effects = fs.recording().effects
    assert created
    assert [str(e) for e in effects] == [
        "create log",
        "write log [0, 3)",
        "truncate log to 1",
        "write log [1, 3)",
    ]
    assert process_crash(fs.recording(), len(effects)).file("log") == b"ade"


def test_unsynced_drops_unsynced_data_and_unsynced_entries(root: Path) -> None:
    fs = CrashRecorder(root)
    append(fs, root / "old.txt", b"+synced", sync=True)
    append(fs, root / "old.txt", b"+lost", sync=False)
    append(fs, root / "new.txt", b"data", sync=True)  # its entry is never synced
    unsynced = trees([s for s in crash_states(fs.recording()) if "unsynced" in s.families])
    assert unsynced == {(("old.txt", b"before"),), (("old.txt", b"before+synced"),)}
    fs.sync_dir(root)
    unsynced = trees([s for s in crash_states(fs.recording()) if "unsynced" in s.families])
    assert (("new.txt", b"data"), ("old.txt", b"before+synced")) in unsynced


def test_reordered_loses_one_unsynced_write_while_later_ones_persist(root: Path) -> None:
    fs = CrashRecorder(root)
    append(fs, root / "old.txt", b"+a", sync=False)
    fs.make_dirs(root / "d")
    append(fs, root / "d" / "b", b"b", sync=True)
    fs.sync_dir(root / "d")
    reordered = [s for s in crash_states(fs.recording()) if "reordered" in s.families]
    assert (("d/b", b"b"), ("old.txt", b"before")) in trees(reordered)


def test_directory_changes_are_lost_as_a_suffix_only(root: Path) -> None:
    fs = CrashRecorder(root)
    append(fs, root / "first", b"1", sync=True)
    append(fs, root / "second", b"2", sync=True)
    states = trees(crash_states(fs.recording()))
    assert (("first", b"1"), ("old.txt", b"before")) in states
    assert (("old.txt", b"before"), ("second", b"2")) not in states


def test_torn_writes_cover_every_chunk_prefix_and_fill(root: Path) -> None:
    fs = CrashRecorder(root)
    append(fs, root / "old.txt", b"0123456789", sync=True)
    torn = {s.file("old.txt") for s in crash_states(fs.recording()) if "torn" in s.families}
    for kept in range(10):
        assert b"before" + b"0123456789"[:kept] in torn
        assert b"before" + b"0123456789"[:kept] + bytes(10 - kept) in torn
        assert any(
            t is not None and len(t) == 16 and t.startswith(b"before0123456789"[: 6 + kept])
            for t in torn - {b"before0123456789"[: 6 + kept] + bytes(10 - kept)}
        ), "no garbage-filled state"


def test_temp_files_are_torn_at_one_granularity(root: Path) -> None:
    fs = CrashRecorder(root)
    fs.write_atomic(root / "old.txt", b"x" * 50)
    torn = [s for s in crash_states(fs.recording()) if s.families == ("torn",)]
    assert len(torn) == 2  # the whole temp file as zeros or as garbage


def test_generation_is_deterministic(root: Path) -> None:
    fs = CrashRecorder(root)
    fs.write_atomic(root / "old.txt", b"after")
    append(fs, root / "log", b"line\n", sync=True)
    assert crash_states(fs.recording()) == crash_states(fs.recording())


def test_operations_are_acknowledged_after_their_last_effect(root: Path) -> None:
    fs = CrashRecorder(root)
    with fs.operation("append"):
        append(fs, root / "log", b"x", sync=True)
    with pytest.raises(OSError), fs.operation("fails"):
        fs.unlink(root / "missing")
    recording = fs.recording()
    assert [(op.label, op.start, op.end) for op in recording.operations] == [("append", 0, 3)]
    assert [recording.acknowledged(point) for point in range(4)] == [0, 0, 0, 1]


def test_a_resumed_recording_keeps_the_crashed_process_unsynced_effects(root: Path) -> None:
    fs = CrashRecorder(root)
    append(fs, root / "old.txt", b"+unsynced", sync=False)
    first = fs.recording()
    resumed_root = root.parent / "resumed"
    process_crash(first, 1).materialize(resumed_root)
    resumed = CrashRecorder(resumed_root, resume=first.cut(1))
    append(resumed, resumed_root / "other", b"!", sync=False)
    recording = resumed.recording()
    assert recording.first_crash == 1
    assert all(s.crash_point >= 1 for s in crash_states(recording))
    assert (("old.txt", b"before"),) in trees(crash_states(recording))
    append(resumed, resumed_root / "old.txt", b"+synced", sync=True)
    unsynced = [s for s in crash_states(resumed.recording()) if "unsynced" in s.families]
    # The new process's sync of the same file makes the dead one's write durable.
    assert (("old.txt", b"before+unsynced+synced"),) in trees(unsynced)


def test_the_recorder_refuses_what_it_cannot_model(root: Path) -> None:
    with pytest.raises(ValueError, match="existing directory"):
        CrashRecorder(root / "missing")
    fs = CrashRecorder(root)
    (root / "sneaky").write_bytes(b"made behind the recorder's back")
    with pytest.raises(ValueError, match="outside the recorded file system"):
        fs.open_log(root / "sneaky")
    with pytest.raises(ValueError, match="outside the recorded tree"):
        fs.mkdir(root.parent / "elsewhere")


def one_append(root: Path) -> Recording:
    fs = CrashRecorder(root)
    append(fs, root / "log", b"x", sync=True)
    return fs.recording()


def test_a_failing_check_names_the_state_and_leaves_it(root: Path, tmp_path: Path) -> None:
    def check(state: CrashState, where: Path) -> None:
        assert (where / "log").exists(), "the log is missing"

    with pytest.raises(CrashCheckError, match=r"(?s)crash before effect 0/3.*the log is missing"):
        check_crash_states(one_append(root), tmp_path / "states", check)
    assert (tmp_path / "states" / "state-00000" / "old.txt").exists()


def test_writes_are_recorded_with_their_bytes(root: Path) -> None:
    recording = one_append(root)
    assert Write("log", 2, 0, b"x") in recording.effects


def test_a_rename_is_lost_until_its_directory_is_synced(root: Path) -> None:
    # write_atomic's last step: the new file is synced, the rename is not durable
    # until the directory is. A power loss before that keeps the old file.
    fs = CrashRecorder(root)
    fd, temp = fs.open_temp(root, "old.txt")
    fs.write(fd, b"after")
    fs.sync(fd)
    fs.close(fd)
    fs.replace(temp, root / "old.txt")
    unsynced = trees([s for s in crash_states(fs.recording()) if "unsynced" in s.families])
    assert all(dict(files).get("old.txt") == b"before" for files in unsynced)
    fs.sync_dir(root)
    unsynced = trees([s for s in crash_states(fs.recording()) if "unsynced" in s.families])
    assert (("old.txt", b"after"),) in unsynced


def test_a_killed_sync_leaves_the_write_unsynced(root: Path) -> None:
    fs = CrashRecorder(root)
    fd, _ = fs.open_log(root / "old.txt")
    fs.write(fd, b"+written")
    fs.kill_next_sync()
    with pytest.raises(SimulatedKill):
        fs.sync(fd)
    fs.sync(fd)  # only the next sync was killed
    fs.close(fd)
    kinds = [type(effect).__name__ for effect in fs.recording().effects]
    assert kinds == ["Write", "Sync"]
