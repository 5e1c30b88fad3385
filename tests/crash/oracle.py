"""What IterationHistory promises after a crash, checked on one materialized crash state."""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import orjson

from snapstore import IterationHistory
from snapstore._log import seam
from snapstore._log.record import decode_line
from snapstore._log.seam import FileSystem

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from snapstore.history import HistoryRecord
    from snapstore.testing.crash import CrashState, Recording


@dataclass(frozen=True, slots=True)
class Written:
    """What a recorded scenario wrote to one history log.

    ``records``: every record a reader may see, in seq order. ``required[k]``:
    how many of them must be visible once ``k`` operations are acknowledged.
    ``found``: the log as the first recovering process found it (it may hold
    a torn tail that process quarantined).
    """

    log: str
    records: tuple[HistoryRecord, ...]
    required: tuple[int, ...]
    found: bytes


def valid_prefix(data: bytes) -> tuple[int, int]:
    """(number of complete valid lines at the start of ``data``, where they end)."""
    count = end = 0
    while (newline := data.find(b"\n", end)) >= 0 and decode_line(data[end:newline]) is not None:
        count += 1
        end = newline + 1
    return count, end


def quarantined(files: Mapping[str, bytes], directory: str) -> dict[str, bytes]:
    """The files in the quarantine ``directory``, by name."""
    return {
        PurePosixPath(path).name: data
        for path, data in files.items()
        if str(PurePosixPath(path).parent) == directory
    }


def torn_tail(data: bytes) -> tuple[int, bytes]:
    """(where the valid prefix of a log ends, the bytes after it)."""
    _, end = valid_prefix(data)
    return end, data[end:]


def bin_source(name: str) -> tuple[str, int]:
    """(log name, offset) of a quarantined ``<log name>.<offset>.<ns>.bin``."""
    source, offset, _, _ = name.rsplit(".", 3)
    return source, int(offset)


def check_notes(quarantine: Mapping[str, bytes], names: set[str]) -> None:
    """Each note among ``names`` describes the .bin beside it."""
    for name in sorted(n for n in names if n.endswith(".json")):
        note = orjson.loads(quarantine[name])
        data = quarantine.get(name.removesuffix(".json") + ".bin")
        assert data is not None, f"quarantine note {name} has no .bin beside it"
        assert (note["offset"], note["length"], note["crc32"]) == (
            bin_source(name.removesuffix(".json") + ".bin")[1],
            len(data),
            f"{zlib.crc32(data):08x}",
        ), f"quarantine note {name} does not describe its bytes"


def check_history(recording: Recording, written: Written) -> Callable[[CrashState, Path], None]:
    """The check ``check_crash_states`` runs on every crash state of a history scenario."""
    original = recording.initial_file(written.log) or b""
    durable_tail = torn_tail(original)
    # Bytes a recovering process may move to quarantine, with where they were.
    removable = {tail for tail in (durable_tail, torn_tail(written.found)) if tail[1]}
    directory = written.log + ".quarantine"
    initial_quarantine = set(quarantined(dict(recording.initial.visible()[1]), directory))

    def check(state: CrashState, root: Path) -> None:
        assert type(seam.current()) is FileSystem, "checks must use the real file system"
        files = dict(state.files)
        log = root / written.log
        before = files.get(written.log, b"")

        # Readers see complete records only: a prefix of what was written, with
        # every acknowledged record, in strictly increasing seq order.
        with IterationHistory(log) as history:
            seen = list(history)
            assert len(history) == len(seen)
        seqs = [record.seq for record in seen]
        assert seqs == list(range(1, len(seen) + 1)), f"seqs not 1, 2, 3, ...: {seqs}"
        assert tuple(seen) == written.records[: len(seen)], "a visible record was never written"
        need = written.required[state.acknowledged]
        assert len(seen) >= need, f"{need} records were acknowledged, {len(seen)} survive"
        count, end = valid_prefix(before)
        assert count == len(seen), "the reader skipped or invented a complete line"

        # Quarantine holds exact copies of removed bytes, and nothing durable
        # left the log without being in quarantine.
        quarantine = quarantined(files, directory)
        new = set(quarantine) - initial_quarantine
        for name in sorted(n for n in new if n.endswith(".bin")):
            assert (bin_source(name)[1], quarantine[name]) in removable, (
                f"quarantined {name} is not a byte-exact copy of a removed tail"
            )
        check_notes(quarantine, new)
        offset, tail = durable_tail
        if tail and before[offset : len(original)] != tail:
            assert tail in {quarantine[n] for n in new}, "a torn tail left the log unquarantined"

        # The next writer recovers: retried keys are exactly-once, the probe
        # lands after what was visible, and any torn tail moves to quarantine.
        with IterationHistory(log) as history:
            for record in written.records:
                if record.key is not None:
                    retried = history.append(record.data, key=record.key)
                    assert retried.data == record.data
                    assert record.seq > len(seen) or retried == record, "a key was stored twice"
            probe = history.append({"probe": state.crash_point}, key="probe")
        after = log.read_bytes()
        assert after[:end] == before[:end], "recovery changed committed bytes"
        assert valid_prefix(after) == (probe.seq, len(after)), "the log is not whole after recovery"
        moved = {
            n: data
            for n, data in quarantined(_files_under(root), directory).items()
            if n not in quarantine
        }
        expected = {(end, before[end:])} if len(before) > end else set()
        assert {
            (bin_source(n)[1], d) for n, d in moved.items() if n.endswith(".bin")
        } == expected, "recovery did not quarantine exactly the torn tail"
        check_notes(moved, set(moved))
        with IterationHistory(log) as history:
            final = list(history)
        assert final[: len(seen)] == seen
        assert final[-1] == probe
        keys = Counter(record.key for record in final if record.key is not None)
        assert all(n == 1 for n in keys.values()), f"duplicate keys: {keys}"

    return check


def _files_under(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }
