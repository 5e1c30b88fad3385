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
import logging
import zlib
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import CorruptionError
from snapstore._log import LogPosition
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
    parquet = _parquet_bytes(image.index, meta)
    fs.write_atomic(root / INDEX_PARQUET, parquet)
    document = {
        **meta,
        # Ties the pair together: a damaged or mismatched parquet file is detected.
        "parquet_crc32": f"{zlib.crc32(parquet):08x}",
        "latest": image.index.flat_latest(),
        "groups": image.index.flat_groups(),
        "baselines": image.baselines,
    }
    fs.write_atomic(root / INDEX_JSON, orjson.dumps(document))


def load_checkpoint(
    root: Path, log: Path, *, strict: bool = False
) -> tuple[SnapshotIndex, LogPosition] | None:
    """The index as of the newest checkpoint of ``log``, or None if there is no usable one.

    With ``strict``, an unusable checkpoint raises CorruptionError instead.
    """
    parquet = root / INDEX_PARQUET
    try:
        data = parquet.read_bytes()
    except FileNotFoundError:
        return None
    try:
        index, start, meta = _read_parquet(data)
    except Exception as exc:  # any unreadable cache means: replay the log
        if strict:
            raise CorruptionError(parquet, 0, None, f"unusable checkpoint: {exc}") from exc
        logger.warning("ignoring unusable checkpoint %s: %s", parquet, exc)
        return None
    if meta["position"].get("line_sha256") != _line_digest(log, start):
        if strict:
            raise CorruptionError(parquet, 0, None, f"the checkpoint does not describe {log}")
        logger.warning("ignoring checkpoint %s: it does not describe %s", parquet, log)
        return None
    # The maps are derived from the rows: faster than parsing them from
    # snapshot_index.json, which is written for people and for verify.
    index.rebuild_maps()
    return index, start


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

    # ParquetFile, not read_table: read_table imports pyarrow.dataset, which
    # costs more than reading a million rows. use_threads=False: with Arrow's
    # thread pool the interpreter sometimes aborts at exit ("terminate called
    # without an active exception"). The page checksums written with the file
    # are checked, so a damaged value is refused before it is used.
    table = pq.ParquetFile(
        pa.BufferReader(data),
        read_dictionary=["run_id", "stage", "comparison_key"],
        page_checksum_verification=True,
    ).read(use_threads=False)
    meta = orjson.loads(table.schema.metadata[_METADATA_KEY])
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {meta.get('format')!r} is not {CHECKPOINT_FORMAT}")
    table = table.combine_chunks()
    position = read_position(meta)
    _check_rows(table, position, meta.get("count"))
    seqs = _int_column(table, "snapshot_seq")
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
    return index, position, meta


def _check_rows(table: Any, position: LogPosition, count: object) -> None:
    """Rows are seqs 1.. in increasing order up to the position, as many as the count
    says, and every chain link points back.

    Checked (column-wise, in Arrow) before anything is built: a damaged seq
    could ask for an index of billions of slots, and a link that does not point
    back would make a chain walk loop forever.
    """
    import pyarrow.compute as pc  # noqa: PLC0415 - heavy; only checkpoints need it

    seqs = table.column("snapshot_seq")
    rows = len(seqs)
    last = seqs[rows - 1].as_py() if rows else 0
    if rows != count or last != position.seq:
        raise ValueError(
            f"{rows} rows up to seq {last} do not match the position (seq {position.seq}) "
            f"and count ({count}) the checkpoint records"
        )
    if not rows:
        return
    # min_count=0: an empty comparison (a single row) holds, rather than null.
    increasing = pc.all(pc.greater(seqs[1:], seqs[: rows - 1]), min_count=0).as_py()
    if seqs[0].as_py() < 1 or not increasing:
        raise ValueError("snapshot_seq is not strictly increasing")
    for name in ("prev_version_seq", "prev_comparable_seq"):
        link = table.column(name)
        if not pc.all(pc.and_(pc.greater_equal(link, 0), pc.less(link, seqs))).as_py():
            raise ValueError(f"a {name} link does not point back")


def _int_column(table: Any, name: str, view: Any = None) -> array[int]:
    """An int64 (or timestamp, viewed as int64) column as an array."""
    if not table.num_rows:
        return array("q")
    column = table.column(name).chunk(0)
    if view is not None:
        column = column.view(view)
    if column.null_count:
        raise ValueError(f"column {name} has nulls")
    return _int64_values(column)


def _text_column(table: Any, name: str) -> list[str]:
    """A dictionary-encoded string column as a list sharing one str per distinct value."""
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it

    if not table.num_rows:
        return []
    column = table.column(name).chunk(0)
    words: list[str] = column.dictionary.to_pylist()
    return [words[i] for i in _int64_values(column.indices.cast(pa.int64()))]


def _int64_values(column: Any) -> array[int]:
    # Copied once, from a view of Arrow's buffer straight into the array: no
    # Python int per row, no intermediate bytes.
    values = array("q")
    start = column.offset * values.itemsize
    values.frombytes(memoryview(column.buffers()[1])[start : start + len(column) * values.itemsize])
    return values
