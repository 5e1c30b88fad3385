"""Checkpoints: the derived files that let a store open without replaying its whole log.

``index.parquet`` holds one row per snapshot (seq, names, comparison key,
creation time, where its line is in the log, and the two chain links of the
index); ``snapshot_index.json`` holds the latest seq per ``run_id:stage`` and the
baselines. Both record the log position they cover, with a digest of the log
line at that position. They are caches: each is
written atomically (temp, sync, rename, directory sync), either may be deleted,
and a checkpoint that is unreadable or disagrees with the log is ignored — the
store then replays the log, which always wins.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._log import LogPosition
from snapstore._names import group_key, index_key
from snapstore._snapshot_index import SnapshotIndex

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore._io import FileSystem

INDEX_JSON = "snapshot_index.json"
INDEX_PARQUET = "index.parquet"
CHECKPOINT_FORMAT = 2  # 2: the position carries line_sha256
_METADATA_KEY = b"snapstore"

logger = logging.getLogger("snapstore")


@dataclass(frozen=True, slots=True)
class IndexImage:
    """A consistent copy of the index, taken under its lock, to be written outside it."""

    position: LogPosition
    index: SnapshotIndex
    baselines: dict[str, int]


def write_checkpoint(fs: FileSystem, root: Path, log: Path, image: IndexImage) -> None:
    """Write ``index.parquet`` then ``snapshot_index.json``, each atomically.

    ``log`` is the snapshot log the image was built from.
    """
    meta = _position_meta(image.position, _line_digest(log, image.position), image.index.count)
    fs.write_atomic(root / INDEX_PARQUET, _parquet_bytes(image.index, meta))
    document = {
        **meta,
        "latest": image.index.latest,
        "groups": image.index.group_latest,
        "baselines": image.baselines,
    }
    fs.write_atomic(root / INDEX_JSON, orjson.dumps(document))


def load_checkpoint(root: Path, log: Path) -> tuple[SnapshotIndex, LogPosition] | None:
    """The index as of the newest checkpoint of ``log``, or None if there is no usable one."""
    parquet = root / INDEX_PARQUET
    if not parquet.exists():
        return None
    try:
        index, meta = _read_parquet(parquet)
    except Exception as exc:  # noqa: BLE001 - any unreadable cache means: replay the log
        logger.warning("ignoring unreadable checkpoint %s: %s", parquet, exc)
        return None
    position = meta["position"]
    start = LogPosition(position["end"], position["seq"], position["length"])
    if position.get("line_sha256") != _line_digest(log, start):
        logger.warning("ignoring checkpoint %s: it does not describe %s", parquet, log)
        return None
    maps = _read_maps(root / INDEX_JSON, meta)
    if maps is None:
        for seq in range(1, len(index.offsets)):
            if index.has(seq):
                index.latest[index_key(index.run_ids[seq], index.stages[seq])] = seq
                index.group_latest[group_key(index.stages[seq], index.comparison_keys[seq])] = seq
    else:
        index.latest, index.group_latest = maps
    return index, start


def _position_meta(position: LogPosition, line_sha256: str | None, count: int) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "position": {
            "end": position.end,
            "seq": position.seq,
            "length": position.length,
            "line_sha256": line_sha256,
        },
        "count": count,
    }


def _line_digest(log: Path, position: LogPosition) -> str | None:
    """SHA-256 of the log line a checkpoint ends at: ties the checkpoint to this very log.

    The position alone (offset, seq, length) also fits any log whose lines have
    the same lengths: a sibling store of the same pipeline, or an older copy of
    this one. Its line differs (content, microsecond timestamp, checksum).
    """
    if position.seq == 0 or position.length <= 0 or position.end < position.length:
        return None
    try:
        with log.open("rb") as file:
            file.seek(position.end - position.length)
            line = file.read(position.length)
    except OSError:
        return None
    return hashlib.sha256(line).hexdigest() if len(line) == position.length else None


def _read_maps(path: Path, meta: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]] | None:
    """The key and group maps of snapshot_index.json if it covers the same position."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("position") != meta["position"]:
        return None
    latest, groups = document.get("latest"), document.get("groups")
    if not isinstance(latest, dict) or not isinstance(groups, dict):
        return None
    return latest, groups


def _parquet_bytes(index: SnapshotIndex, meta: dict[str, Any]) -> bytes:
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it
    import pyarrow.parquet as pq  # noqa: PLC0415

    seqs = [seq for seq in range(1, len(index.offsets)) if index.has(seq)]
    dense = len(seqs) == len(index.offsets) - 1

    def ints(column: array[int]) -> Any:
        values = column[1:] if dense else array("q", (column[seq] for seq in seqs))
        return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])

    def texts(column: list[str]) -> Any:
        return pa.array(column[1:] if dense else [column[seq] for seq in seqs], pa.string())

    table = pa.table(
        {
            "snapshot_seq": pa.array(seqs, pa.int64()),
            "run_id": texts(index.run_ids),
            "stage": texts(index.stages),
            "comparison_key": texts(index.comparison_keys),
            "created_at": ints(index.created_us).view(pa.timestamp("us", tz="UTC")),
            "log_offset": ints(index.offsets),
            "log_length": ints(index.lengths),
            "prev_version_seq": ints(index.prev_version),
            "prev_comparable_seq": ints(index.prev_comparable),
        }
    ).replace_schema_metadata({_METADATA_KEY: orjson.dumps(meta)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue())


def _read_parquet(path: Path) -> tuple[SnapshotIndex, dict[str, Any]]:
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = pq.read_table(path, read_dictionary=["run_id", "stage", "comparison_key"])
    meta = orjson.loads(table.schema.metadata[_METADATA_KEY])
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {meta.get('format')!r} is not {CHECKPOINT_FORMAT}")
    table = table.combine_chunks()
    seqs = _int_column(table, "snapshot_seq")
    if any(b <= a for a, b in itertools.pairwise(seqs)) or (seqs and seqs[0] < 1):
        raise ValueError("snapshot_seq is not strictly increasing")
    columns: dict[str, array[int] | list[str]] = {
        "offsets": _int_column(table, "log_offset"),
        "lengths": _int_column(table, "log_length"),
        "created_us": _int_column(table, "created_at", pa.int64()),
        "prev_version": _int_column(table, "prev_version_seq"),
        "prev_comparable": _int_column(table, "prev_comparable_seq"),
        "run_ids": _text_column(table, "run_id"),
        "stages": _text_column(table, "stage"),
        "comparison_keys": _text_column(table, "comparison_key"),
    }
    index = SnapshotIndex()
    index.count = len(seqs)
    last = seqs[-1] if seqs else 0
    if last == len(seqs):  # gap-free: a seq is its row number + 1
        for attr, column in columns.items():
            getattr(index, attr).extend(column)
    else:
        index.grow_to(last)
        for attr, column in columns.items():
            target = getattr(index, attr)
            for row, seq in enumerate(seqs):
                target[seq] = column[row]
    return index, meta


def _int_column(table: Any, name: str, view: Any = None) -> array[int]:
    """An int64 (or timestamp, viewed as int64) column as an array, by buffer copy."""
    if not table.num_rows:
        return array("q")
    column = table.column(name).chunk(0)
    if view is not None:
        column = column.view(view)
    if column.null_count:
        raise ValueError(f"column {name} has nulls")
    values = array("q")
    start = column.offset * values.itemsize
    values.frombytes(
        column.buffers()[1].to_pybytes()[start : start + len(column) * values.itemsize]
    )
    return values


def _text_column(table: Any, name: str) -> list[str]:
    """A dictionary-encoded string column as a list sharing one str per distinct value."""
    if not table.num_rows:
        return []
    column = table.column(name).chunk(0)
    words: list[str] = column.dictionary.to_pylist()
    return [words[i] for i in column.indices.to_pylist()]
