"""Damage for the verify/repair tests: bit flips, cuts, and the checks of what must survive.

Everything here reads files through the documented format (JSON lines with a
CRC-32 trailer, quarantine ``.bin`` + ``.json`` notes), not through the library.
"""

from __future__ import annotations

import json
import os
import random
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from helpers import check_line
from snapstore._log.seam import FileSystem

if TYPE_CHECKING:
    from pathlib import Path

# Cases per file kind: a few hundred in CI; HYPOTHESIS_PROFILE=soak (or an
# explicit SNAPSTORE_DAMAGE_CASES) runs many more.
_SOAK = os.environ.get("HYPOTHESIS_PROFILE") == "soak"
DAMAGE_CASES = int(os.environ.get("SNAPSTORE_DAMAGE_CASES", "5000" if _SOAK else "300"))
_CRC_MARK = b',"crc":"'


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a log as written: where it starts and its bytes, newline included."""

    offset: int
    raw: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.raw)

    def overlaps(self, start: int, stop: int) -> bool:
        return self.offset < stop and start < self.end


class NoSyncFileSystem(FileSystem):
    """The real file system without its syncs, for the loops over hundreds of damages.

    They test what verify finds and what repair keeps, not durability (the
    crash tests do); a sync costs milliseconds, and there are six per repair.
    """

    def sync(self, fd: int) -> None:
        pass

    def sync_dir(self, path: Path) -> None:
        pass


def lines_of(data: bytes) -> list[Line]:
    lines, offset = [], 0
    for raw in data.splitlines(keepends=True):
        lines.append(Line(offset, raw))
        offset += len(raw)
    return lines


def record_line(seq: int, data: dict[str, Any], key: str | None = None) -> bytes:
    """A valid log line, built from the documented format."""
    head = json.dumps(
        {"seq": seq, "ts": "2026-01-01T00:00:00.000000+00:00", "v": "0.1.0", "key": key},
        separators=(",", ":"),
    ).encode()[:-1]
    body = head + b',"data":' + json.dumps(data, separators=(",", ":")).encode()
    return b'%s%s%08x"}\n' % (body, _CRC_MARK, zlib.crc32(body))


def flip(data: bytes, offset: int, bit: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ (1 << bit)]) + data[offset + 1 :]


def flip_plan(data: bytes, seed: int, count: int = DAMAGE_CASES) -> list[tuple[int, int]]:
    """``count`` single-bit flips ``(offset, bit)``: the edge cases first, then random ones.

    Every newline and every checksum digit of a log is among the edge cases
    (each with a random bit), so the gluing of lines and the trailer are
    always exercised, whatever the sample.
    """
    rng = random.Random(seed)
    edges = [at for at, byte in enumerate(data) if byte == ord("\n")]
    at = data.find(_CRC_MARK)
    while at >= 0:
        edges.extend(range(at + len(_CRC_MARK), at + len(_CRC_MARK) + 8))
        at = data.find(_CRC_MARK, at + 1)
    offsets = edges[:count] + [rng.randrange(len(data)) for _ in range(count - len(edges))]
    return [(offset, rng.randrange(8)) for offset in offsets]


def cut_plan(data: bytes, seed: int, *, tail_lines: int, sample: int) -> list[int]:
    """Sizes to cut a log to: every size within its last ``tail_lines`` lines, every
    line boundary, and a ``sample`` of the sizes elsewhere."""
    rng = random.Random(seed)
    lines = lines_of(data)
    near_end = range(lines[-tail_lines].offset if len(lines) >= tail_lines else 0, len(data))
    elsewhere = range(near_end.start)
    boundaries = {line.offset for line in lines}
    return sorted({*near_end, *boundaries, *rng.sample(elsewhere, min(sample, len(elsewhere)))})


def check_survivors(path: Path, expected: list[Line]) -> list[dict[str, Any]]:
    """``path`` is a clean log holding every line of ``expected``, byte for byte.

    Returns its records. Seqs must increase; gaps are allowed where repair
    moved a record aside.
    """
    found = lines_of(path.read_bytes())
    records = [check_line(line.raw) for line in found]
    seqs = [record["seq"] for record in records]
    assert seqs == sorted(set(seqs)), seqs
    raws = {line.raw for line in found}
    lost = [line for line in expected if line.raw not in raws]
    assert not lost, f"valid records lost: {lost}"
    return records


def check_quarantine(directory: Path, source: Path, damaged: bytes, region: range) -> None:
    """Each quarantined copy from ``source`` is byte-exact, and together they cover ``region``."""
    covered: set[int] = set()
    for note_path in directory.glob("*.json"):
        note = json.loads(note_path.read_bytes())
        if note["source"] != str(source):
            continue
        moved = note_path.with_suffix(".bin").read_bytes()
        start = note["offset"]
        assert moved == damaged[start : start + note["length"]], note
        assert note["crc32"] == f"{zlib.crc32(moved):08x}", note
        covered.update(range(start, start + len(moved)))
    missing = set(region) - covered
    assert not missing, f"bytes {sorted(missing)} of {source} are not in quarantine"


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative name -> content), to prove nothing changed."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
