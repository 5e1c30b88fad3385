"""Checkpoints: the derived files that let a store open without replaying its whole log.

``index.parquet`` holds one row per snapshot (seq, names, comparison key,
creation time, where its line is in the log, and the two chain links of the
index); ``snapshot_index.json`` holds the latest seq per ``run_id:stage`` and the
baselines. Both record the log position they cover. They are caches: each is
written atomically (temp, sync, rename, directory sync), either may be deleted,
and a checkpoint that is unreadable or disagrees with the log is ignored — the
store then replays the log, which always wins.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import CorruptionError
from snapstore._log import LogPosition
from snapstore._names import group_key, index_key
from snapstore._snapshot_index import SnapshotIndex

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore._io import FileSystem

INDEX_JSON = "snapshot_index.json"
INDEX_PARQUET = "index.parquet"
CHECKPOINT_FORMAT = 1
_METADATA_KEY = b"snapstore"

logger = logging.getLogger("snapstore")


@dataclass(frozen=True, slots=True)
class IndexImage:
    """A consistent copy of the index, taken under its lock, to be written outside it."""

    position: LogPosition
    index: SnapshotIndex
    baselines: dict[str, int]


def write_checkpoint(fs: FileSystem, root: Path, image: IndexImage) -> None:
    """Write ``index.parquet`` then ``snapshot_index.json``, each atomically."""
    meta = _position_meta(image.position, image.index.count)
    parquet = _parquet_bytes(image.index, meta)
    fs.write_atomic(root / INDEX_PARQUET, parquet)
    document = {
        **meta,
        # Ties the pair together: a damaged or mismatched parquet file is detected.
        "parquet_crc32": f"{zlib.crc32(parquet):08x}",
        "latest": image.index.latest,
        "groups": image.index.group_latest,
        "baselines": image.baselines,
    }
    fs.write_atomic(root / INDEX_JSON, orjson.dumps(document))


def load_checkpoint(
    root: Path, *, strict: bool = False
) -> tuple[SnapshotIndex, LogPosition] | None:
    """The index as of the newest checkpoint, or None if there is no usable one.

    With ``strict``, an unusable checkpoint raises CorruptionError instead.
    """
    parquet = root / INDEX_PARQUET
    try:
        data = parquet.read_bytes()
    except FileNotFoundError:
        return None
    try:
        index, position, meta = _read_parquet(data)
        maps = _read_maps(root / INDEX_JSON, meta, f"{zlib.crc32(data):08x}")
    except Exception as exc:  # any unreadable cache means: replay the log
        if strict:
            raise CorruptionError(parquet, 0, None, f"unusable checkpoint: {exc}") from exc
        logger.warning("ignoring unusable checkpoint %s: %s", parquet, exc)
        return None
    if maps is None:
        for seq in range(1, len(index.offsets)):
            if index.has(seq):
                index.latest[index_key(index.run_ids[seq], index.stages[seq])] = seq
                index.group_latest[group_key(index.stages[seq], index.comparison_keys[seq])] = seq
    else:
        index.latest, index.group_latest = maps
    return index, position


def read_position(document: Any) -> LogPosition:
    """The log position a checkpoint document (or the parquet metadata) covers.

    Checked here, inside the caller's guard: a damaged document must mean a
    replay, not a KeyError that keeps the store from opening.
    """
    position = document.get("position") if isinstance(document, dict) else None
    fields = ("end", "seq", "length")
    if not isinstance(position, dict) or not all(type(position.get(f)) is int for f in fields):
        raise ValueError(f"checkpoint position {position!r} is not {{end, seq, length}}")
    return LogPosition(position["end"], position["seq"], position["length"])


def _position_meta(position: LogPosition, count: int) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "position": {"end": position.end, "seq": position.seq, "length": position.length},
        "count": count,
    }


def _read_maps(
    path: Path, meta: dict[str, Any], parquet_crc: str
) -> tuple[dict[str, int], dict[str, int]] | None:
    """The key and group maps of snapshot_index.json if it covers the same position.

    A document of another position is stale (a crash fell between the two
    writes): the maps are then derived from the parquet rows instead.
    """
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("position") != meta["position"]:
        return None
    if document.get("parquet_crc32") != parquet_crc:
        raise ValueError(f"{INDEX_PARQUET} does not match the checksum in {INDEX_JSON}")
    latest, groups = document.get("latest"), document.get("groups")
    if not isinstance(latest, dict) or not isinstance(groups, dict):
        raise TypeError(f"{INDEX_JSON} lacks its latest or groups map")
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
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True)
    return bytes(sink.getvalue())


def _read_parquet(data: bytes) -> tuple[SnapshotIndex, LogPosition, dict[str, Any]]:
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it
    import pyarrow.parquet as pq  # noqa: PLC0415

    # use_threads=False: with Arrow's thread pool, the interpreter sometimes
    # aborts at exit ("terminate called without an active exception").
    # The page checksums written with the file are checked, so a damaged value
    # is refused before it is used (snapshot_index.json's checksum of the whole
    # file may be stale after a crash between the two writes).
    table = pq.read_table(
        pa.BufferReader(data),
        read_dictionary=["run_id", "stage", "comparison_key"],
        use_threads=False,
        page_checksum_verification=True,
    )
    meta = orjson.loads(table.schema.metadata[_METADATA_KEY])
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {meta.get('format')!r} is not {CHECKPOINT_FORMAT}")
    position = read_position(meta)
    table = table.combine_chunks()
    seqs = _int_column(table, "snapshot_seq")
    _check_seqs(seqs, position, meta.get("count"))
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
    for chain in (index.prev_version, index.prev_comparable):
        # Chains are walked until 0: a link that does not point back would loop.
        if any(not 0 <= chain[seq] < seq for seq in seqs):
            raise ValueError("a previous-version or previous-comparable link does not point back")
    return index, position, meta


def _check_seqs(seqs: array[int], position: LogPosition, count: object) -> None:
    """Rows are seqs 1.. in increasing order up to the position, as many as the count says.

    Checked before the index is sized by the last seq: a damaged seq could
    otherwise ask for an index of billions of slots.
    """
    if any(b <= a for a, b in itertools.pairwise(seqs)) or (seqs and seqs[0] < 1):
        raise ValueError("snapshot_seq is not strictly increasing")
    if (seqs[-1] if seqs else 0) != position.seq or len(seqs) != count:
        raise ValueError(
            f"{len(seqs)} rows up to seq {seqs[-1] if seqs else 0} do not match the "
            f"position (seq {position.seq}) and count ({count}) the checkpoint records"
        )


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
