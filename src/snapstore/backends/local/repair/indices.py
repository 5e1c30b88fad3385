"""A store's derived index files, judged against its snapshot log, or rebuilt from it.

``index.parquet`` and ``snapshot_index.json`` are caches of the log: absent or
stale (covering an earlier record) is legitimate after a crash; disagreeing
with the log at the record they cover is damage.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import CorruptionError, DurabilityError, StorageError
from snapstore._log import seam
from snapstore._log.checked import LogPosition
from snapstore._options import Options
from snapstore._report import Finding
from snapstore.backends.local.checkpoint import (
    INDEX_JSON,
    INDEX_PARQUET,
    load_checkpoint,
    read_position,
)
from snapstore.backends.local.disk_index import (
    INDEX_DB,
    Covered,
    Row,
    empty_index,
    read_index_file,
)
from snapstore.backends.local.layout import SNAPSHOT_LOG
from snapstore.backends.local.snapshot_index import IndexRow, SnapshotIndex
from snapstore.backends.local.store import LocalStore

if TYPE_CHECKING:
    from pathlib import Path


def rebuild_indices(root: Path, dry_run: bool, lock_timeout: float) -> list[str]:
    derived = f"{INDEX_DB}, {INDEX_PARQUET} and {INDEX_JSON}"
    if dry_run:
        return [f"would rebuild {derived} from {SNAPSHOT_LOG}"]
    # The old derived files may describe the log as it was before repair
    # rewrote it. Remove them first (they are caches), so that a crash between
    # the two writes below leaves a missing file, never one of another log.
    fs = seam.current()
    stale = [root / name for name in (INDEX_JSON, INDEX_PARQUET) if (root / name).exists()]
    for path in stale:
        fs.unlink(path)
    if stale:
        fs.sync_dir(root)
    # Emptied, not removed: other processes may have it open (see disk_index).
    # The handle opened next fills it again from the log.
    empty_index(root, busy_timeout=lock_timeout)
    try:
        backend = LocalStore(root, Options(lock_timeout=lock_timeout), checkpoint_every=1)
    except DurabilityError as exc:
        # The handle that failed its sync is this one, already gone: the
        # caller's own handles have not failed, and must not be told to reopen.
        raise StorageError(exc.errno, f"{root}: rebuilding the indices failed: {exc}") from exc
    try:
        backend.checkpoint()
    finally:
        backend.close()
    return [f"rebuilt {derived} from {SNAPSHOT_LOG}"]


@dataclass(frozen=True, slots=True)
class Indices:
    """One reading of the derived files: each loaded, or why it could not be, or None (absent).

    Other processes replace them at any time (atomically, one after the
    other): each is read once, and judged as read.
    """

    parquet: tuple[SnapshotIndex, LogPosition] | str | None
    parquet_crc: str | None
    document: dict[str, Any] | str | None
    index_file: tuple[Covered, list[Row]] | str | None


def read_indices(root: Path) -> Indices:
    try:
        data: bytes | None = (root / INDEX_PARQUET).read_bytes()
    except FileNotFoundError:
        data = None
    parquet: tuple[SnapshotIndex, LogPosition] | str | None = None
    if data is not None:
        try:
            parquet = load_checkpoint(root, root / SNAPSHOT_LOG, data=data)
        except (CorruptionError, OSError) as exc:
            parquet = f"unreadable checkpoint: {exc}"
    document: dict[str, Any] | str | None
    try:
        body = orjson.loads((root / INDEX_JSON).read_bytes())
        read_position(body)
        document = body
    except FileNotFoundError:
        document = None
    except (orjson.JSONDecodeError, OSError, ValueError) as exc:
        document = f"not a snapstore index document: {exc}"
    crc = None if data is None else f"{zlib.crc32(data):08x}"
    return Indices(parquet, crc, document, read_index_file(root))


def judge_indices(root: Path, indices: Indices, replay: SnapshotIndex) -> list[Finding]:
    """Derived files must agree with the log as it stood at the position each covers.

    Either may be absent, or stale (covering an earlier position): both are
    legitimate after a crash. Content that disagrees with the log is not.
    """
    findings: list[Finding] = []
    parquet_seq: int | None = None
    if indices.parquet is not None:
        found, parquet_seq = _judge_parquet(root / INDEX_PARQUET, indices.parquet, replay)
        findings.extend(found)
    if indices.document is not None:
        findings.extend(_judge_index_json(root, indices, parquet_seq, replay))
    if indices.index_file is not None:
        findings.extend(_judge_index_file(root / INDEX_DB, indices.index_file, replay))
    return findings


def _judge_index_file(
    path: Path, read: tuple[Covered, list[Row]] | str, replay: SnapshotIndex
) -> list[Finding]:
    """index.sqlite must hold exactly the log's rows up to the position it covers."""
    if isinstance(read, str):
        return [Finding(path, read)]
    covered, rows = read
    if not _is_log_position(replay, covered.position):
        return [Finding(path, _not_in_log(covered.position))]
    last = covered.position.seq
    # created_at aside: it is the log's own text, which no lookup uses.
    found = [(*row[:4], *row[5:]) for row in rows]
    expected = [
        (seq, r.run_id, r.stage, r.comparison_key, r.offset, r.length)
        for seq in range(1, last + 1)
        if (r := _row(replay, seq)) is not None
    ]
    if found == expected and covered.size == len(expected):
        return []
    wrong = next(
        (mine[0] for mine, right in zip(found, expected, strict=False) if mine != right), None
    )
    where = f"from snapshot_seq {wrong}" if wrong is not None else "in number"
    return [Finding(path, f"rows disagree with the log {where}")]


def _judge_parquet(
    parquet: Path, loaded: tuple[SnapshotIndex, LogPosition] | str, replay: SnapshotIndex
) -> tuple[list[Finding], int | None]:
    """Findings about index.parquet, and the seq it covers (None if unreadable)."""
    if isinstance(loaded, str):
        return [Finding(parquet, loaded)], None
    index, position = loaded
    # The position must name a record of the log exactly: its seq, where it
    # ends and its length (a changed digit of the offset is damage too).
    if not _is_log_position(replay, position):
        return [Finding(parquet, _not_in_log(position))], position.seq
    expected = _replay_prefix(replay, position.seq)
    found = [
        Finding(parquet, f"row of snapshot_seq {seq} disagrees with the log")
        for seq in range(1, max(index.last_seq(), expected.last_seq()) + 1)
        if _row(index, seq) != _row(expected, seq)
    ]
    return found, position.seq


def _judge_index_json(
    root: Path, indices: Indices, parquet_seq: int | None, replay: SnapshotIndex
) -> list[Finding]:
    """The document must agree with the log at the position it covers.

    It may lag behind index.parquet (a crash between the two atomic writes),
    or be newer than the parquet file read (a checkpoint written between the
    two readings), which is harmless; content that disagrees with the log is not.
    """
    document = root / INDEX_JSON
    body = indices.document
    if isinstance(body, str):
        return [Finding(document, body)]
    assert body is not None
    covered = read_position(body)
    if not _is_log_position(replay, covered):
        return [Finding(document, _not_in_log(covered))]
    expected = _replay_prefix(replay, covered.seq)
    findings = []
    if body.get("latest") != expected.flat_latest() or body.get("groups") != expected.flat_groups():
        findings.append(Finding(document, "latest or group entries disagree with the log"))
    # Written as a pair: when both cover one position, the document records
    # the parquet file's CRC, so any changed byte of it is detected (also one
    # that leaves it readable, in the copy of the schema in its footer, say).
    if parquet_seq == covered.seq and body.get("parquet_crc32") != indices.parquet_crc:
        findings.append(
            Finding(
                root / INDEX_PARQUET,
                f"CRC {indices.parquet_crc} differs from the one {INDEX_JSON} holds",
            )
        )
    return findings


def _row(index: SnapshotIndex, seq: int) -> IndexRow | None:
    return index.row(seq) if index.has(seq) else None


def _is_log_position(replay: SnapshotIndex, position: LogPosition) -> bool:
    if position.seq == 0:
        return position == LogPosition()
    seq = position.seq
    return (
        replay.has(seq)
        and position.length == replay.lengths[seq]
        and position.end == replay.offsets[seq] + replay.lengths[seq]
    )


def _not_in_log(position: LogPosition) -> str:
    return (
        f"covers seq {position.seq} ending at byte {position.end}, which is not a record of the log"
    )


def _replay_prefix(replay: SnapshotIndex, last: int) -> SnapshotIndex:
    """The index as it stood after snapshot ``last`` (a seq the log holds, or 0)."""
    prefix = SnapshotIndex()
    prefix.extend(replay.row(seq) for seq in range(1, last + 1) if replay.has(seq))
    return prefix
