"""Checkpoints: the whole index as files that DuckDB, pandas and people read.

``index.parquet`` holds one row per snapshot (seq, names, comparison key,
creation time, where its line is in the log, and the two chain links of the
index); ``snapshot_index.json`` holds the latest seq per ``run_id:stage`` and
the baselines. Both record the log position they cover, with a digest of the
log line at that position. They are written by ``checkpoint()`` (and every
``checkpoint_every`` saves of a long-lived handle), never on a short
process's path: stores answer from ``index.sqlite`` (see ``disk_index``).
They are caches: each is written atomically (temp, sync, rename, directory
sync), either may be deleted, and verify reports one that is unreadable or
disagrees with the log.
"""

from __future__ import annotations

import io
import zlib
from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import CorruptionError
from snapstore._fork import arrow_barrier
from snapstore._log.checked import LogPosition
from snapstore.backends.local.disk_index import line_digest
from snapstore.backends.local.snapshot_index import SnapshotIndex

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path
    from typing import BinaryIO

    from snapstore._log.seam import FileSystem

INDEX_JSON = "snapshot_index.json"
INDEX_PARQUET = "index.parquet"
CHECKPOINT_FORMAT = 2  # 2: the position carries line_sha256
_METADATA_KEY = b"snapstore"


@dataclass(frozen=True, slots=True)
class IndexImage:
    """A consistent copy of the index, taken under its lock, to be written outside it."""

    position: LogPosition
    index: SnapshotIndex
    baselines: dict[str, int]


def write_checkpoint(fs: FileSystem, root: Path, log: Path, image: IndexImage) -> bool:
    """Write ``index.parquet`` then ``snapshot_index.json``, each atomically.

    ``log`` is the snapshot log the image was built from. Returns False, and
    writes nothing, when the record the image ends at is not in ``log``: the
    image was built from a file that repair has since replaced (its offsets
    describe a file that is gone). A replacement after this check, before
    the renames, is not caught: repair then rebuilds the indices, and a
    checkpoint renamed over those is one that verify reports and repair
    rebuilds again.
    """
    digest = line_digest(log, image.position)
    if digest is None and image.position.seq > 0:
        return False
    meta = _position_meta(image.position, digest, image.index.count)
    _import_arrow()
    with arrow_barrier:
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
    return True


def load_checkpoint(
    root: Path, log: Path, *, data: bytes | None = None
) -> tuple[SnapshotIndex, LogPosition] | None:
    """The index as of the checkpoint of ``log``; None if there is none.

    Raises CorruptionError for a checkpoint that is unreadable or describes
    another log. ``data``: the bytes of index.parquet, already read (verify
    judges one reading of the file, which another process may replace at
    any time).
    """
    parquet = root / INDEX_PARQUET
    try:
        # Read through the open file, not from a copy of its bytes: the copy
        # would be held until the index is built, at the process's peak.
        source: BinaryIO = parquet.open("rb") if data is None else io.BytesIO(data)
    except FileNotFoundError:
        return None
    try:
        _import_arrow()
        with source, arrow_barrier:
            index, start, meta = _read_parquet(source)
    except Exception as exc:  # whatever pyarrow raises, the file is unusable
        raise CorruptionError(parquet, 0, None, f"unusable checkpoint: {exc}") from exc
    if meta["position"].get("line_sha256") != line_digest(log, start):
        raise CorruptionError(parquet, 0, None, f"the checkpoint does not describe {log}")
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


def _import_arrow() -> None:
    """Import what checkpoints use of pyarrow, outside ``arrow_barrier``.

    A module may register fork hooks as it is imported; registered while a
    fork waits at the barrier, its "after" hook would run without its "before"
    hook having run (and release a lock it never took).
    """
    import pyarrow.compute  # noqa: PLC0415 - heavy; only checkpoints need it
    import pyarrow.parquet  # noqa: F401, PLC0415


def _parquet_bytes(index: SnapshotIndex, meta: dict[str, Any]) -> bytes:
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it
    import pyarrow.parquet as pq  # noqa: PLC0415

    # Every column is built from buffers, never with pa.array(): given Python
    # values, pyarrow imports pandas (when installed) to inspect them, which
    # costs more than the whole checkpoint of a small store, and registers
    # fork hooks in the middle of the work (see _fork.arrow_barrier).
    seqs = array("q", (seq for seq in range(1, len(index.offsets)) if index.has(seq)))
    dense = len(seqs) == len(index.offsets) - 1

    def int64s(values: array[int]) -> Any:
        return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])

    def ints(column: array[int]) -> Any:
        return int64s(column[1:] if dense else array("q", (column[seq] for seq in seqs)))

    def texts(column: list[str]) -> Any:
        rows = column[1:] if dense else [column[seq] for seq in seqs]
        encoded = [text.encode() for text in rows]
        # int32 offsets (the type the checkpoint is read back as): names are
        # at most 200 characters, so this holds some millions of snapshots.
        offsets = array("i", accumulate(map(len, encoded), initial=0))
        data = pa.py_buffer(b"".join(encoded))
        return pa.Array.from_buffers(pa.string(), len(rows), [None, pa.py_buffer(offsets), data])

    table = pa.table(
        {
            "snapshot_seq": int64s(seqs),
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


def _read_parquet(source: BinaryIO) -> tuple[SnapshotIndex, LogPosition, dict[str, Any]]:
    import pyarrow.parquet as pq  # noqa: PLC0415 - heavy; only checkpoints need it

    # ParquetFile, not read_table: read_table imports pyarrow.dataset, which
    # costs more than reading a million rows. use_threads=False: with Arrow's
    # thread pool the interpreter sometimes aborts at exit ("terminate called
    # without an active exception"). The page checksums written with the file
    # are checked, so a damaged value is refused before it is used.
    file = pq.ParquetFile(
        source,
        read_dictionary=["run_id", "stage", "comparison_key"],
        page_checksum_verification=True,
    )
    meta = orjson.loads(file.schema_arrow.metadata[_METADATA_KEY])
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {meta.get('format')!r} is not {CHECKPOINT_FORMAT}")
    position = read_position(meta)
    _check_types(file.schema_arrow)

    # One column at a time, each dropped once copied into the index: Arrow's
    # allocator keeps what it freed, so a whole table read at once would stay
    # in the process's memory next to the index built from it.
    # Every column must hold one value per row: a damaged column chunk can
    # read back shorter, leaving the index's arrays of different lengths.
    rows = meta.get("count")

    def column(name: str) -> Any:
        values = file.read([name], use_threads=False).column(0).combine_chunks()
        if len(values) != rows:
            raise ValueError(f"column {name} holds {len(values)} values, not {rows}")
        return values

    _check_rows(column, position, meta.get("count"))
    return _index_from(column), position, meta


# Index columns and the checkpoint columns they are read from.
_INT_COLUMNS = {
    "offsets": "log_offset",
    "lengths": "log_length",
    "created_us": "created_at",
    "prev_version": "prev_version_seq",
    "prev_comparable": "prev_comparable_seq",
}
_TEXT_COLUMNS = {"run_ids": "run_id", "stages": "stage", "comparison_keys": "comparison_key"}
# Array typecodes of the Arrow integer widths read: "q" is 64 bits everywhere,
# "i" (a C int) 32 bits on every platform Python supports.
_TYPECODES = {32: "i", 64: "q"}


def _index_from(column: Callable[[str], Any]) -> SnapshotIndex:
    """The index the checked rows describe, columns copied straight into its arrays."""
    index = SnapshotIndex()
    seq_column = column("snapshot_seq")
    if not len(seq_column):
        return index
    texts = _fill_columns(index, column, seq_column)
    # The maps are derived from the rows: faster than parsing them from
    # snapshot_index.json, which is written for people and for verify.
    index.latest, index.group_latest = _latest_by_stage(
        texts["stage"], seq_column, texts["run_id"], texts["comparison_key"]
    )
    return index


def _fill_columns(
    index: SnapshotIndex, column: Callable[[str], Any], seq_column: Any
) -> dict[str, tuple[list[str], Any]]:
    """Copy the columns into the index's arrays; return each text column's words and codes.

    A function of its own so that what only the copies need (the seqs) is
    freed before the maps are built: the process peaks while it builds them.
    """
    seqs = _int64_values(seq_column, "snapshot_seq")
    index.count = len(seqs)
    # Gap-free (the rule; a gap is a record repair quarantined): a seq is its
    # row number + 1, so every column is appended whole, with no per-row loop.
    dense = seqs[-1] == len(seqs)
    if not dense:
        index.grow_to(seqs[-1])
    for attr, name in _INT_COLUMNS.items():
        _fill(getattr(index, attr), _int64_values(column(name), name), seqs, dense=dense)
    texts = {name: _dictionary(column(name), name) for name in _TEXT_COLUMNS.values()}
    for attr, name in _TEXT_COLUMNS.items():
        words, codes = texts[name]
        values = map(words.__getitem__, _int_array(codes))
        _fill(getattr(index, attr), values, seqs, dense=dense)
    return texts


def _fill(
    target: array[int] | list[str], values: Iterable[Any], seqs: array[int], *, dense: bool
) -> None:
    if dense:
        target.extend(values)
    else:
        for seq, value in zip(seqs, values, strict=True):
            target[seq] = value


def _latest_by_stage(
    stages: tuple[list[str], Any], seqs: Any, *keys: tuple[list[str], Any]
) -> list[dict[str, dict[str, int]]]:
    """``{stage: {key: highest seq}}`` for each key column, from the rows' dictionary codes.

    Rows are ordered by stage once (a stable sort, in Arrow), so each stage is
    one run of rows in seq order, turned into a dict by C-level iteration: a
    later seq of a key overwrites an earlier one. The keys are the words the
    index's columns share, so the maps cost no extra strings.
    """
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it
    import pyarrow.compute as pc  # noqa: PLC0415

    stage_words, stage_codes = stages
    order = pc.sort_indices(stage_codes)
    seq_of = pc.take(seqs, order)
    key_of = [(words, pc.take(codes, order)) for words, codes in keys]
    del order  # 8 bytes a row, not needed below: freed before the release
    # What Arrow freed since the columns were read (their copies are in the
    # index now) goes back to the system before the maps, the largest part of
    # the index, are built: the pool would otherwise keep it, and the process
    # would peak at both.
    pa.default_memory_pool().release_unused()
    maps: list[dict[str, dict[str, int]]] = [{} for _ in keys]
    begin = 0
    # The sort put the stages in the order of their codes, as this does.
    groups = pc.value_counts(stage_codes).sort("ascending", by="values")
    for code, count in zip(groups.field("values"), groups.field("counts"), strict=True):
        stage = stage_words[code.as_py()]
        end = begin + count.as_py()
        # One stage's rows at a time leave Arrow, so no column-long copy is made.
        stage_seqs = _int_array(seq_of[begin:end])
        for stage_maps, (words, codes) in zip(maps, key_of, strict=True):
            keys_of_stage = map(words.__getitem__, _int_array(codes[begin:end]))
            stage_maps[stage] = dict(zip(keys_of_stage, stage_seqs, strict=True))
        begin = end
    return maps


def _check_types(schema: Any) -> None:
    """Every column is there once, of the type ``_parquet_bytes`` writes.

    The columns are copied into the index as raw buffers of their width: a
    double column of offsets would be taken for the int64 bit patterns of its
    values, pass every check on rows and links, and leave a store that fails
    each read instead of one that replays its log.
    """
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it

    # Text columns are read as dictionaries (read_dictionary), with int32 codes.
    text = pa.dictionary(pa.int32(), pa.string())
    wanted = dict.fromkeys(("snapshot_seq", *_INT_COLUMNS.values()), pa.int64())
    # Stored as a timestamp, copied as its int64 microseconds.
    wanted["created_at"] = pa.timestamp("us", tz="UTC")
    wanted |= dict.fromkeys(_TEXT_COLUMNS.values(), text)
    for name, kind in wanted.items():
        at = schema.get_field_index(name)  # -1: absent, or there more than once
        if at < 0:
            raise ValueError(f"column {name} is missing or repeated")
        if schema.field(at).type != kind:
            raise ValueError(f"column {name} is {schema.field(at).type}, not {kind}")


def _check_rows(column: Callable[[str], Any], position: LogPosition, count: object) -> None:
    """Rows are seqs 1.. in increasing order up to the position, as many as the count
    says, and every chain link points back.

    Checked (column-wise, in Arrow) before anything is built: a damaged seq
    could ask for an index of billions of slots, and a link that does not point
    back would make a chain walk loop forever.
    """
    import pyarrow.compute as pc  # noqa: PLC0415 - heavy; only checkpoints need it

    seqs = column("snapshot_seq")
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
        link = column(name)
        # min_max, not greater_equal(link, 0): a Python number passed to an Arrow
        # function makes pyarrow import pandas (when installed) to inspect it,
        # which would cost more than the whole read.
        lowest = pc.min_max(link)["min"].as_py()
        if lowest < 0 or not pc.all(pc.less(link, seqs)).as_py():
            raise ValueError(f"a {name} link does not point back")


def _int64_values(column: Any, name: str) -> array[int]:
    """An int64 (or timestamp, read as int64) column with no nulls, as an array."""
    if column.null_count:
        raise ValueError(f"column {name} has nulls")
    return _int_array(column)


def _dictionary(column: Any, name: str) -> tuple[list[str], Any]:
    """A dictionary-encoded string column: its distinct words, each row's code (int32)."""
    import pyarrow as pa  # noqa: PLC0415 - heavy; only checkpoints need it

    if column.null_count:
        raise ValueError(f"column {name} has nulls")
    words: list[str] = column.dictionary.to_pylist()
    if len(set(words)) != len(words):
        # Chunks merged with their dictionaries concatenated may repeat a word;
        # the maps need one code per word.
        column = column.dictionary_decode().dictionary_encode()
        words = column.dictionary.to_pylist()
    # int32, half the memory of int64: the codes and their sorted copies are
    # alive while the maps, the largest part of the index, are built.
    return words, column.indices.cast(pa.int32())


def _int_array(column: Any) -> array[int]:
    """An int32 or int64 Arrow array (a timestamp reads as int64) as an array of that width."""
    # Copied once, from a view of Arrow's buffer straight into the array: no
    # Python int per row, no intermediate bytes.
    values = array(_TYPECODES[column.type.bit_width])
    start = column.offset * values.itemsize
    values.frombytes(memoryview(column.buffers()[1])[start : start + len(column) * values.itemsize])
    return values
