"""Checks shared by the tests, written against the documented format, not the library."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapstore import IterationHistory

if TYPE_CHECKING:
    from collections.abc import Sequence

    from snapstore import HistoryRecord

FIELDS = ["seq", "ts", "v", "key", "data", "crc"]
_CRC_MARK = b',"crc":"'


def check_line(line: bytes) -> dict[str, Any]:
    """Parse one line of a log (newline included) and check it is a valid record."""
    assert line.endswith(b"\n"), line
    obj = json.loads(line)
    assert list(obj) == FIELDS, obj
    assert type(obj["seq"]) is int
    assert obj["seq"] > 0
    assert isinstance(obj["data"], dict)
    assert obj["key"] is None or isinstance(obj["key"], str)
    body = line[: line.rindex(_CRC_MARK)]
    assert obj["crc"] == f"{zlib.crc32(body):08x}", line
    return dict(obj)


def log_lines(path: Path) -> list[bytes]:
    """The lines of a log file, each with its newline (the last may lack one)."""
    return path.read_bytes().splitlines(keepends=True)


def check_log(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` is a complete valid record; seqs run 1, 2, 3, ..."""
    records = [check_line(line) for line in log_lines(path)]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    return records


def check_reopens(path: Path, acknowledged: Sequence[HistoryRecord]) -> list[HistoryRecord]:
    """A fresh handle opens ``path`` and holds every acknowledged record unchanged.

    Seqs are strictly increasing. Returns the records the fresh handle reads.
    """
    with IterationHistory(path) as fresh:
        records = list(fresh)
    seqs = [r.seq for r in records]
    assert seqs == sorted(set(seqs)), seqs
    by_seq = {r.seq: r for r in records}
    for record in acknowledged:
        assert by_seq[record.seq] == record
    return records


def quarantined(path: Path) -> list[bytes]:
    """The bytes moved aside from the log ``path``, oldest first."""
    directory = path.with_name(path.name + ".quarantine")
    if not directory.exists():
        return []
    bins = sorted(directory.glob("*.bin"), key=lambda p: int(p.name.split(".")[-2]))
    return [p.read_bytes() for p in bins]


def open_fds() -> set[int]:
    """The descriptors this process holds open (Linux), to check that nothing leaks.

    Compare two counts only with the collector paused (the ``gc_paused``
    fixture): a handle another test dropped gives its descriptors back when
    the collector reclaims it, which could otherwise happen between them.
    """
    return {int(entry.name) for entry in Path("/proc/self/fd").iterdir()}


def same_json(a: object, b: object) -> bool:
    """Equality that also tells 1 from 1.0 and from True."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_writers(path: Path, writers: int, count: int) -> None:
    """``writers`` writers appended ``count`` records each: all are there, in order, once."""
    records = check_log(path)
    assert len(records) == writers * count
    tags = [(r["data"]["writer"], r["data"]["i"]) for r in records]
    assert sorted(tags) == [(w, i) for w in range(writers) for i in range(count)]
    # Each writer's appends were sequential, so their seqs follow their order.
    for writer in range(writers):
        assert [i for w, i in tags if w == writer] == list(range(count))
    with IterationHistory(path) as history:
        assert len(history) == writers * count
        assert [r.seq for r in history] == list(range(1, writers * count + 1))


def harmless(calls: list[str], k: int) -> bool:
    """Whether failing call ``k`` may leave the operation successful.

    Only work after the records are durable: removing a temp file, or
    advancing the synced mark right after a sync (a mark left behind costs
    other handles a sync of their own). Lowering the mark before a truncation
    is not harmless: it must fail the operation.
    """
    return calls[k - 1] == "unlink" or (calls[k - 1] == "write_at" and calls[k - 2] == "sync")
