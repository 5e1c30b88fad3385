"""The on-disk format: plain, self-checking JSON lines; any changed byte is detected."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from helpers import FIELDS, check_log, log_lines, open_fds
from snapstore import CorruptionError, IterationHistory
from snapstore._log.record import FORMAT_VERSION, decode_line, encode_line
from snapstore._records import Entry

if TYPE_CHECKING:
    from pathlib import Path


# Descriptor counts are compared: see helpers.open_fds.
pytestmark = pytest.mark.usefixtures("gc_paused")


@pytest.fixture
def four(history_path: Path) -> Path:
    """A log of four records; the second is the target of corruption.

    Two records follow it: a changed newline glues the third to it, and the
    fourth still follows the damage. (Damage that no valid line follows is a
    torn tail: see test_torn_tail.py.)
    """
    with IterationHistory(history_path) as history:
        history.append({"loss": 0.25, "tags": ["a", "b"]})
        history.append({"loss": 0.125, "note": "ünïcødé"}, key="run-1/2")
        history.append({"loss": 0.0625, "nested": {"ok": True}})
        history.append({"loss": 0.03125})
    return history_path


def test_every_line_is_a_checked_json_record(four: Path) -> None:
    records = check_log(four)
    assert [r["key"] for r in records] == [None, "run-1/2", None, None]
    assert all(r["v"] == FORMAT_VERSION for r in records)
    assert records[1]["data"] == {"loss": 0.125, "note": "ünïcødé"}
    for line in log_lines(four):
        assert list(json.loads(line)) == FIELDS
        assert line.count(b"\n") == 1


def test_pandas_reads_the_file(four: Path) -> None:
    frame = pd.read_json(four, lines=True)
    assert list(frame.columns) == FIELDS
    assert frame["seq"].tolist() == [1, 2, 3, 4]
    assert frame["data"].tolist()[1] == {"loss": 0.125, "note": "ünïcødé"}


def variants(byte: int) -> set[int]:
    """Replacement values for one byte: bit flips, a newline, a digit, a quote."""
    return {byte ^ 0x01, byte ^ 0x80, byte ^ 0x20, ord("\n"), ord("0"), ord('"')} - {byte}


def corrupted_copies(path: Path, line_no: int) -> list[bytes]:
    """Every copy of the file with one byte of line ``line_no`` changed."""
    data = path.read_bytes()
    lines = log_lines(path)
    start = sum(len(line) for line in lines[:line_no])
    return [
        data[:offset] + bytes([value]) + data[offset + 1 :]
        for offset in range(start, start + len(lines[line_no]))
        for value in sorted(variants(data[offset]))
    ]


def test_any_changed_byte_followed_by_valid_lines_is_corruption(four: Path) -> None:
    copies = corrupted_copies(four, 1)
    assert len(copies) > 300
    fds = open_fds()
    for copy in copies:
        four.write_bytes(copy)
        with pytest.raises(CorruptionError) as info:
            IterationHistory(four).close()
        assert info.value.path == four
        assert str(four) in str(info.value)
        # Reading is not repairing: the file is left as it was.
        assert four.read_bytes() == copy
        # The failed open released its descriptors.
        assert open_fds() == fds


def test_tolerant_mode_skips_and_reports_a_damaged_line(four: Path) -> None:
    lines = log_lines(four)
    for copy in corrupted_copies(four, 1):
        four.write_bytes(copy)
        with IterationHistory(four, tolerant=True) as history:
            seqs = [r.seq for r in history]
            assert seqs in ([1, 3, 4], [1, 4])  # [1, 4]: the newline was changed
            assert len(history) == len(seqs)
            problems = history.problems
            assert problems[0].offset == len(lines[0])
            # The problems and the valid lines account for every byte.
            valid = sum(len(lines[seq - 1]) for seq in seqs)
            assert sum(p.length for p in problems) + valid == len(copy)


def test_corruption_error_names_the_line(four: Path) -> None:
    lines = log_lines(four)
    four.write_bytes(lines[0] + lines[1].replace(b"0.125", b"0.126") + lines[2] + lines[3])
    with pytest.raises(CorruptionError, match=r"line 2") as info:
        IterationHistory(four)
    assert info.value.offset == len(lines[0])
    assert info.value.line == 2


def test_corruption_error_is_a_value_error(four: Path) -> None:
    lines = log_lines(four)
    four.write_bytes(lines[0] + b"garbage\n" + lines[1] + lines[2] + lines[3])
    with pytest.raises(ValueError, match="checksum"):
        IterationHistory(four)


def test_a_replayed_line_is_corruption(four: Path) -> None:
    # A valid line whose seq does not follow is not accepted as a record.
    lines = log_lines(four)
    four.write_bytes(lines[0] + lines[1] + lines[1] + lines[2] + lines[3])
    with pytest.raises(CorruptionError, match="does not follow"):
        IterationHistory(four)


def test_the_checksum_is_read_only_as_it_is_written() -> None:
    # Spellings that int(..., 16) would take for the same number: upper case,
    # a sign or a space in place of a leading zero. None is how snapstore
    # writes a checksum, so a line carrying one is not a record.
    line = next(
        line
        for line in (encode_line(1, "t", Entry(b'{"n":%d}' % n, None))[:-1] for n in range(10_000))
        if line[-10:-9] == b"0" and not line[-9:-2].isdigit()
    )
    assert decode_line(line) is not None
    digits = line[-10:-2]
    for spelling in (digits.upper(), b"+" + digits[1:], b" " + digits[1:]):
        assert spelling != digits
        assert int(spelling, 16) == int(digits, 16)
        assert decode_line(line[:-10] + spelling + line[-2:]) is None
