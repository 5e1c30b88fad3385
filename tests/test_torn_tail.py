"""A torn tail (an append cut short) is invisible to readers and moved aside by writers."""

from __future__ import annotations

import json
import random
import zlib
from typing import TYPE_CHECKING

import pytest

from helpers import check_log, log_lines, quarantined
from snapstore import IterationHistory

if TYPE_CHECKING:
    from pathlib import Path


def write_log(path: Path, batches: list[int]) -> list[bytes]:
    """Write one extend() per entry of ``batches`` (its record count); return the lines."""
    with IterationHistory(path) as history:
        for number, count in enumerate(batches):
            history.extend({"batch": number, "i": i} for i in range(count))
    return log_lines(path)


def check_recovery(path: Path, kept: list[bytes], torn: bytes) -> None:
    """The log holds ``kept`` lines then the ``torn`` bytes; check readers and the next writer."""
    assert path.read_bytes() == b"".join(kept) + torn
    with IterationHistory(path) as reader:
        records = list(reader)
        assert [r.seq for r in records] == list(range(1, len(kept) + 1))
        assert len(reader) == len(kept)
    # Readers never modify the file.
    assert path.read_bytes() == b"".join(kept) + torn
    assert quarantined(path) == []

    with IterationHistory(path) as writer:
        new = writer.append({"after": "the tear"})
        assert new.seq == len(kept) + 1
        assert list(writer)[:-1] == records
    # The new line starts at a line boundary, glued to nothing.
    lines = check_log(path)
    assert log_lines(path)[:-1] == kept
    assert lines[-1]["data"] == {"after": "the tear"}
    # The torn bytes are kept, byte for byte, with a note saying where they were.
    assert quarantined(path) == ([torn] if torn else [])
    if torn:
        check_note(path, offset=len(b"".join(kept)), data=torn)


def check_note(path: Path, *, offset: int, data: bytes) -> None:
    (note_path,) = path.with_name(path.name + ".quarantine").glob("*.json")
    note = json.loads(note_path.read_bytes())
    assert note["source"] == str(path)
    assert note["offset"] == offset
    assert note["length"] == len(data)
    assert note["crc32"] == f"{zlib.crc32(data):08x}"
    assert "torn tail" in note["reason"]


def test_cut_at_every_offset_of_the_last_record(tmp_path: Path) -> None:
    lines = write_log(tmp_path / "original.jsonl", [1, 1, 1])
    last = lines[-1]
    for cut in range(len(last)):
        path = tmp_path / f"cut-{cut}" / "history.jsonl"
        path.parent.mkdir()
        path.write_bytes(b"".join(lines[:-1]) + last[:cut])
        check_recovery(path, lines[:-1], last[:cut])


def test_cut_at_every_offset_of_the_last_batch(tmp_path: Path) -> None:
    # A batch is written with one write: a crash may keep any prefix of it.
    lines = write_log(tmp_path / "original.jsonl", [2, 3])
    before, batch = b"".join(lines[:2]), b"".join(lines[2:])
    for cut in range(len(batch)):
        path = tmp_path / f"cut-{cut}" / "history.jsonl"
        path.parent.mkdir()
        path.write_bytes(before + batch[:cut])
        # Complete lines of the batch are valid records; only a partial one is torn.
        complete = batch[:cut].rfind(b"\n") + 1
        kept = log_lines(path)[: 2 + batch[:complete].count(b"\n")]
        check_recovery(path, kept, batch[complete:cut])


TAILS = {
    "zeros-block": bytes(4096),
    "few-zeros": bytes(7),
    "garbage": random.Random(7).randbytes(300).replace(b"\n", b"."),
    "garbage-with-newlines": b"\xff\xfe\x00junk\n\x00\x00\nmore junk\n\x01",
    "newline-only": b"\n",
    "brace": b"{",
}


@pytest.mark.parametrize("tail", TAILS.values(), ids=TAILS.keys())
def test_garbage_tail(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "history.jsonl"
    lines = write_log(path, [3])
    with path.open("ab") as file:
        file.write(tail)
    check_recovery(path, lines, tail)


def test_damaged_last_record_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    # A changed byte in the last line cannot be told from a torn append: the
    # next writer moves the line to quarantine.
    path = tmp_path / "history.jsonl"
    lines = write_log(path, [3])
    damaged = lines[-1].replace(b'"i":2', b'"i":3')
    path.write_bytes(b"".join(lines[:-1]) + damaged)
    check_recovery(path, lines[:-1], damaged)


def test_a_record_being_written_is_invisible_until_complete(tmp_path: Path) -> None:
    lines = write_log(tmp_path / "original.jsonl", [1, 1])
    path = tmp_path / "history.jsonl"
    path.write_bytes(lines[0])
    with IterationHistory(path) as reader, path.open("ab", buffering=0) as file:
        assert len(reader) == 1
        for byte in lines[1][:-1]:
            file.write(bytes([byte]))
            reader.refresh()
            assert reader.last_seq == 1
        assert len(reader) == 1
        file.write(b"\n")
        assert len(reader) == 2
        assert reader.get(2).data == {"batch": 1, "i": 0}


def test_each_writer_recovers_only_the_tail_it_finds(tmp_path: Path) -> None:
    # Two tears in a row, each repaired by the next append: two quarantine entries.
    path = tmp_path / "history.jsonl"
    write_log(path, [2])
    with IterationHistory(path) as history:
        for n, tail in enumerate([b'{"seq":3,"ts', b"\x00" * 5]):
            with path.open("ab") as file:
                file.write(tail)
            assert history.append({"n": n}).seq == 3 + n
    assert quarantined(path) == [b'{"seq":3,"ts', b"\x00" * 5]
    check_log(path)
