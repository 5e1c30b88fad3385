"""Quarantine: where recovery and repair move bytes aside instead of deleting them."""

from __future__ import annotations

import time
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

from snapstore._names import NAME_MAX, fit_name

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore._log.seam import FileSystem


def quarantine(
    fs: FileSystem, directory: Path, *, source: Path, offset: int, data: bytes, reason: str
) -> Path:
    """Store ``data`` (taken from ``source`` at ``offset``) durably under ``directory``.

    Writes ``<source>.<offset>.<ns>.bin`` with the raw bytes, then a ``.json``
    note saying where they came from and why. Both are complete and synced
    before this returns, so the caller may then remove the bytes from the source.
    The source's name is shortened if the names would not fit otherwise (see
    fit_name); the note names the source in full.
    """
    fs.make_dirs(directory)
    while True:
        place = f".{offset}.{time.time_ns()}"
        base = fit_name(source.name, place, room=NAME_MAX - len(".json"))
        if fs.create_exclusive(directory / f"{base}.bin", data):
            break
    note = {
        "source": str(source),
        "offset": offset,
        "length": len(data),
        "crc32": f"{zlib.crc32(data):08x}",
        "reason": reason,
        "quarantined_at": datetime.now(UTC).isoformat(),
    }
    fs.create_exclusive(directory / f"{base}.json", orjson.dumps(note, option=orjson.OPT_INDENT_2))
    return directory / f"{base}.bin"
