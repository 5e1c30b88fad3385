"""IterationHistory.verify() and repair(): every damaged byte found, no valid record lost."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from damage import (
    DAMAGE_CASES,
    NoSyncFileSystem,
    check_quarantine,
    check_survivors,
    cut_plan,
    flip,
    flip_plan,
    lines_of,
    record_line,
    tree_bytes,
)
from helpers import check_log
from snapstore import CorruptionError, IterationHistory
from snapstore._log.seam import installed
from snapstore.backends.local.repair import check_path

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from snapstore import CheckReport


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A history of keyed, batched, nested and non-ASCII records, as bytes."""
    path = tmp_path_factory.mktemp("pristine") / "history.jsonl"
    with IterationHistory(path) as history:
        history.append({"step": 0, "loss": 1.5}, key="first")
        # A nested object whose first field is "seq" looks like the start of a
        # record: salvage must not be misled by it.
        history.extend({"step": i, "inner": {"seq": i, "ok": True}} for i in range(1, 4))
        history.append({"text": "naïve ✓", "values": [1, 2.5, None]}, key="unicode")
        for step in range(5, 10):
            history.append({"step": step, "inner": {"seq": -step}}, key=f"step-{step}")
    return path.read_bytes()


@pytest.fixture
def no_sync() -> Iterator[None]:
    with installed(NoSyncFileSystem()):
        yield


def place(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name / "history.jsonl"
    path.parent.mkdir()
    path.write_bytes(data)
    return path


def quarantine_of(path: Path) -> Path:
    return path.with_name(path.name + ".quarantine")


def verify_and_repair(path: Path) -> tuple[CheckReport, CheckReport]:
    """verify, then repair, through a handle that tolerates the damage; returns both reports.

    After the repair the same handle, a second verify and a fresh strict handle
    all see exactly the records left in the file.
    """
    with IterationHistory(path, tolerant=True) as history:
        found = history.verify()
        repaired = history.repair()
        after = history.verify()
        assert after.ok, after.findings
        in_file = check_survivors(path, [])
        assert [(r.seq, r.key, r.data) for r in history] == [
            (r["seq"], r["key"], r["data"]) for r in in_file
        ]
    with IterationHistory(path) as fresh:
        assert [r.seq for r in fresh] == [r["seq"] for r in in_file]
    return found, repaired


@pytest.mark.usefixtures("no_sync")
def test_every_bit_flip_is_found_and_no_untouched_record_is_lost(
    pristine: bytes, tmp_path: Path
) -> None:
    lines = lines_of(pristine)
    for case, (offset, bit) in enumerate(flip_plan(pristine, seed=1)):
        where = f"bit {bit} of byte {offset}"
        damaged = flip(pristine, offset, bit)
        path = place(tmp_path, str(case), damaged)
        found, repaired = verify_and_repair(path)
        assert not found.ok, where
        # The first finding points at the line holding the flipped byte.
        (number, hit) = next(
            (n, x) for n, x in enumerate(lines, 1) if x.overlaps(offset, offset + 1)
        )
        assert (hit.offset, number) in {(f.offset, f.line) for f in found.findings}, where
        assert repaired.actions, where
        untouched = [line for line in lines if not line.overlaps(offset, offset + 1)]
        check_survivors(path, untouched)
        check_quarantine(quarantine_of(path), path, damaged, range(offset, offset + 1))


@pytest.mark.usefixtures("no_sync")
def test_a_cut_at_every_offset_keeps_every_complete_record(pristine: bytes, tmp_path: Path) -> None:
    lines = lines_of(pristine)
    boundaries = {line.offset for line in lines}
    for size in cut_plan(pristine, seed=2, tail_lines=2, sample=DAMAGE_CASES // 2):
        path = place(tmp_path, str(size), pristine[:size])
        found, repaired = verify_and_repair(path)
        if size in boundaries:
            # A log cut between lines is a valid, shorter log: nothing to find or do.
            assert found.ok, size
            assert not repaired.actions, size
            assert not quarantine_of(path).exists()
            assert path.read_bytes() == pristine[:size]
            continue
        assert not found.ok, size
        torn = max(boundary for boundary in boundaries if boundary < size)
        assert [(f.offset, f.path) for f in found.findings] == [(torn, path)], size
        # A record that lost only its newline is whole and checksummed: kept.
        kept = [line for line in lines if line.end <= size + 1]
        check_survivors(path, kept)
        check_quarantine(quarantine_of(path), path, pristine[:size], range(torn, size))


def test_a_flipped_newline_before_the_last_record_keeps_both_records(
    pristine: bytes, tmp_path: Path
) -> None:
    # The last two records become one bad line at the end of the file. Both
    # were acknowledged: the next writer must not drop them as a torn tail nor
    # reuse their seqs. It keeps them (they continue the seqs without a gap),
    # after moving the damaged bytes, as they were, to quarantine.
    lines = lines_of(pristine)
    newline = lines[-2].end - 1
    glued = flip(pristine, newline, 0)
    path = place(tmp_path, "glued", glued)
    with IterationHistory(path) as history:
        assert history.last_seq == len(lines) - 2  # readers stop before the damage
        assert history.append({"after": "the flip"}).seq == len(lines) + 1
        assert [r.seq for r in history] == list(range(1, len(lines) + 2))
    (moved,) = quarantine_of(path).glob("*.bin")
    assert moved.read_bytes() == glued[lines[-2].offset :]
    records = check_survivors(path, lines)
    assert records[-1]["data"] == {"after": "the flip"}


def test_damage_in_the_middle_keeps_the_records_around_it(pristine: bytes, tmp_path: Path) -> None:
    lines = lines_of(pristine)
    hit = lines[4]
    damaged = pristine[: hit.offset] + bytes(len(hit.raw)) + pristine[hit.end :]
    path = place(tmp_path, "zeros", damaged)
    with pytest.raises(CorruptionError):
        IterationHistory(path)  # a strict handle refuses to read past the damage
    found, _ = verify_and_repair(path)
    assert [(f.offset, f.line) for f in found.findings] == [(hit.offset, 5)]
    check_survivors(path, [line for line in lines if line != hit])
    check_quarantine(quarantine_of(path), path, damaged, range(hit.offset, hit.end))


def test_a_duplicate_key_is_found_and_the_later_record_moved_aside(tmp_path: Path) -> None:
    first, second = record_line(1, {"n": 1}, key="k"), record_line(2, {"n": 2}, key="k")
    path = place(tmp_path, "dup", first + second)
    found, _ = verify_and_repair(path)
    assert [(f.offset, f.line) for f in found.findings] == [(len(first), 2)]
    assert path.read_bytes() == first
    check_quarantine(
        quarantine_of(path), path, first + second, range(len(first), len(first + second))
    )


def test_a_replayed_seq_is_found(tmp_path: Path) -> None:
    lines = [record_line(1, {"n": 1}), record_line(2, {"n": 2}), record_line(2, {"n": 3})]
    path = place(tmp_path, "replayed", b"".join(lines))
    found, _ = verify_and_repair(path)
    assert [f.line for f in found.findings] == [3]
    assert check_log(path) == check_log(place(tmp_path, "expected", b"".join(lines[:2])))


def test_dry_run_changes_nothing(pristine: bytes, tmp_path: Path) -> None:
    lines = lines_of(pristine)
    damaged = flip(pristine, lines[3].offset + 20, 3) + b'{"seq":13,"ts"'
    path = place(tmp_path, "dry", damaged)
    with IterationHistory(path, tolerant=True) as history:
        before = tree_bytes(path.parent)  # opening made the lock file: that is not the repair
        report = history.repair(dry_run=True)
        assert report.findings
        assert any(action.startswith("would move") for action in report.actions)
    assert tree_bytes(path.parent) == before
    assert not quarantine_of(path).exists()


def test_verify_of_a_clean_history_reports_its_records(pristine: bytes, tmp_path: Path) -> None:
    path = place(tmp_path, "clean", pristine)
    with IterationHistory(path) as history:
        report = history.verify()
        assert report.ok
        assert (report.records, report.files) == (len(lines_of(pristine)), 1)
        assert history.repair().actions == []
    assert path.read_bytes() == pristine


# -- a history reached through a symlink ------------------------------------------------


@pytest.mark.parametrize("how", ["handle", "check_path"])
def test_repair_through_a_symlink_rewrites_the_file_it_leads_to(
    tmp_path: Path, pristine: bytes, how: str
) -> None:
    # Damage in the middle makes repair rewrite the log with an atomic replace:
    # that must replace the file the link leads to, not the link itself (which
    # would leave the damaged file in place and fork the log in two).
    real = place(tmp_path, "real", flip(pristine, len(pristine) // 2, 3))
    alias = tmp_path / "alias.jsonl"
    alias.symlink_to(real)
    if how == "handle":
        with IterationHistory(alias, tolerant=True) as history:
            assert not history.repair().ok
    else:
        assert not check_path(alias, repair=True).ok
    assert alias.is_symlink()
    assert alias.read_bytes() == real.read_bytes()
    assert real.read_bytes() != flip(pristine, len(pristine) // 2, 3)
    with IterationHistory(real) as history:
        assert history.verify().ok
    assert list(quarantine_of(real).glob("*.bin"))
    assert not (tmp_path / "alias.jsonl.quarantine").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.jsonl", "real"]
