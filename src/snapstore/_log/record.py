"""The line format of a checked log: one self-checking JSON object per line.

    {"seq":7,"ts":"2026-11-23T08:42:31.123456Z","v":"0.1.0","key":null,"data":{...},"crc":"1a2b3c4d"}

``crc`` is the CRC-32 of every byte of the line before ``,"crc":``, written as
eight lowercase hex digits, so any changed byte is detected while the line stays
plain JSON for jq, pandas and DuckDB (a line holding NaN or an infinity spells
it as Python's json does: see ``_values``). It is always the last field and has
a fixed width, so a reader finds and checks it without parsing first.
"""

from __future__ import annotations

import bisect
import time
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from snapstore._values import loads

if TYPE_CHECKING:
    from collections.abc import Iterator

    from snapstore._records import Entry

FORMAT_VERSION = "0.1.0"

_CRC_MARK = b',"crc":"'
RECORD_START = b'{"seq":'
_VERSION = FORMAT_VERSION.encode()
_TRAILER_LEN = len(_CRC_MARK) + 8 + 2  # ,"crc":"  + 8 hex digits + "}


# LogRecord is made for every append, so it is a named tuple: immutable like
# a frozen dataclass, built in a third of the time.
class LogRecord(NamedTuple):
    """A committed line of a log, parsed, with its place in the file."""

    seq: int
    ts: str
    key: str | None
    data: dict[str, Any]
    offset: int
    length: int

    def timestamp(self) -> datetime:
        return datetime.fromisoformat(self.ts)


def encode_line(seq: int, ts: str, entry: Entry) -> bytes:
    key_json = b"null" if entry.key is None else orjson.dumps(entry.key)
    head = b'{"seq":%d,"ts":"%s","v":"%s","key":%s,"data":' % (
        seq,
        ts.encode(),
        _VERSION,
        key_json,
    )
    crc = zlib.crc32(entry.data_json, zlib.crc32(head))
    return b'%s%s%s%08x"}\n' % (head, entry.data_json, _CRC_MARK, crc)


def decode_line(line: bytes) -> dict[str, Any] | None:
    """Parse one line (without its newline); None when it is not a valid record."""
    body_end = len(line) - _TRAILER_LEN
    # One comparison checks the mark, the digits and the closing bytes: the
    # trailer must be exactly the one encode_line writes for this body, so no
    # other spelling of the CRC (upper case, signs, spaces) is taken for it.
    if body_end <= 0 or line[body_end:] != b'%s%08x"}' % (_CRC_MARK, zlib.crc32(line[:body_end])):
        return None
    try:
        obj = loads(line)
    except ValueError:  # orjson's and json's decode errors both are
        return None
    # orjson makes exact dicts, ints and strs: exact type tests suffice.
    if not (
        type(obj) is dict
        and type(obj.get("seq")) is int
        and obj["seq"] > 0
        and type(obj.get("ts")) is str
        and type(obj.get("data")) is dict
        and (obj.get("key") is None or type(obj["key"]) is str)
    ):
        return None
    return obj


def decode_record(line: bytes, offset: int) -> LogRecord | None:
    """The record a complete line (without its newline) at ``offset`` holds; None if none.

    The one way a log's line becomes a record: the checked log and repair
    scan with it, so both take the same lines for records.
    """
    obj = decode_line(line)
    return None if obj is None else record_at(obj, offset, len(line) + 1)


def record_at(obj: dict[str, Any], offset: int, length: int) -> LogRecord:
    """The record of a line ``decode_line`` accepted, stored at ``offset`` (newline included)."""
    # Positional: keywords make a named tuple markedly slower to build.
    return LogRecord(obj["seq"], obj["ts"], obj.get("key"), obj["data"], offset, length)


def hidden_records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Valid lines inside damaged bytes: ``(position in data, line without newline)``.

    A bit flip in a newline glues two records into one bad line. Each
    ``{"seq":`` may start a record, which then ends where a later one starts or
    at the next newline, and is tried whole and without its last byte (where
    its newline was). Not only the next start is tried: a payload holding a
    nested object whose first field is "seq" also contains ``{"seq":``, and
    ending the candidate there would lose the record.
    """
    starts = []
    at = data.find(RECORD_START)
    while at >= 0:
        starts.append(at)
        at = data.find(RECORD_START, at + 1)
    found_end = 0
    for i, begin in enumerate(starts):
        if begin < found_end:
            continue  # nested inside the record just found
        line_end = data.find(b"\n", begin)
        if line_end < 0:
            line_end = len(data)
        later = starts[i + 1 : bisect.bisect_left(starts, line_end, i + 1)]
        for end in [*later, line_end]:
            line = _record_ending_at(data, begin, end)
            if line is not None:
                yield begin, line
                found_end = begin + len(line)
                break


def _record_ending_at(data: bytes, begin: int, end: int) -> bytes | None:
    for stop in (end, end - 1):
        # The cheap test first: most candidates do not even end like a record.
        if data[stop - 2 : stop] == b'"}' and decode_line(data[begin:stop]) is not None:
            return data[begin:stop]
    return None


class Clock:
    """UTC timestamps as ISO-8601 strings with microseconds, cheap to make.

    Timestamps are informational only; order is the sequence number.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        micros = time.time_ns() // 1000
        second, fraction = divmod(micros, 1_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{fraction:06d}+00:00"


def utc_from_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    # snapstore writes UTC ("+00:00"), which fromisoformat already reads as UTC.
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)
