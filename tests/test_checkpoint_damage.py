"""Damage that reaches each consistency check of a checkpoint, one case per check.

test_checkpoint.py damages the files wholesale (deleted, garbage, cut short): the
parquet reader refuses those before any of snapstore's own checks runs. Here
each case is a readable parquet file that is wrong in one way only: a column
that reads back shorter than the rows (a page header claiming fewer values,
under a valid page checksum), a column of another type (its values would be
copied into the index as raw buffers of the width it was expected to have) or
missing, metadata that names another format or position or count, seqs out of
order, a chain link that does not point back, a null.
Each case asserts that its check is the one that refused the file (by the
reason logged), that a strict load raises CorruptionError, and that the store
opens by replaying its log, answers as the log says, and writes a checkpoint
that the next open uses.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from snapstore import CorruptionError, SnapshotStore
from snapstore.backends.local.checkpoint import load_checkpoint
from store_fixtures import answers_of, copy_store, fill_store, remove_checkpoint

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("index_file_at_every_step")

PARQUET = "index.parquet"
ROWS = 13  # what fill_store saves
INT_COLUMNS = [
    "snapshot_seq",
    "created_at",
    "log_offset",
    "log_length",
    "prev_version_seq",
    "prev_comparable_seq",
]
TEXT_COLUMNS = ["run_id", "stage", "comparison_key"]
LINKS = ["prev_version_seq", "prev_comparable_seq"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A closed store with a checkpoint, and its answers from a replay of its logs alone."""
    root = fill_store(tmp_path_factory.mktemp("template") / "s")
    bare = copy_store(root, tmp_path_factory.mktemp("bare") / "s")
    remove_checkpoint(bare)
    return root, answers_of(bare)


# -- ways to damage a checkpoint ---------------------------------------------------


def rewrite(
    path: Path,
    *,
    table: Callable[[pa.Table], pa.Table] = lambda table: table,
    meta: Callable[[dict[str, Any]], Any] = lambda meta: meta,
) -> None:
    """Write ``path`` again with its table and metadata changed, as snapstore writes it."""
    old = pq.read_table(path)
    document = orjson.loads(old.schema.metadata[b"snapstore"])
    new = table(old.replace_schema_metadata(None))
    changed = meta(document)
    metadata = None if changed is None else {b"snapstore": orjson.dumps(changed)}
    new = new.replace_schema_metadata(metadata)
    pq.write_table(new, path, compression="zstd", write_page_checksum=True)


def with_column(name: str, change: Callable[[list[Any]], list[Any]]) -> Callable[[pa.Table], Any]:
    def apply(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(name)
        values = change(table.column(name).to_pylist())
        return table.set_column(
            index, table.field(index), pa.array(values, table.field(index).type)
        )

    return apply


def swap(i: int, j: int) -> Callable[[list[Any]], list[Any]]:
    def apply(values: list[Any]) -> list[Any]:
        values[i], values[j] = values[j], values[i]
        return values

    return apply


def put(i: int, value: object) -> Callable[[list[Any]], list[Any]]:
    def apply(values: list[Any]) -> list[Any]:
        values[i] = value
        return values

    return apply


def retype(name: str, kind: pa.DataType) -> Callable[[pa.Table], pa.Table]:
    def apply(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(name)
        return table.set_column(index, pa.field(name, kind), table.column(name).cast(kind))

    return apply


def point_at_self(table: pa.Table, name: str) -> pa.Table:
    seqs = table.column("snapshot_seq").to_pylist()
    return with_column(name, lambda links: [seqs[0], *links[1:]])(table)


def _varint(data: bytes | bytearray, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _num_values_field(data: bytearray, header: int) -> tuple[int, int]:
    """Where a data page header (Thrift compact protocol) at ``header`` stores its value count.

    Returns the field's offset and its count. The page checksum covers the
    page's data, not its header: the damaged count goes unnoticed by the reader.
    """
    at, field = header, 0
    while True:
        head = data[at]
        at += 1
        assert head >> 4, "a long-form field header: not what parquet-cpp writes"
        field += head >> 4
        if head & 0x0F == 5:  # i32: type, sizes, crc
            _, at = _varint(data, at)
            continue
        # Field 5, a struct: the DataPageHeader, whose field 1 (an i32) is num_values.
        assert (field, head & 0x0F, data[at]) == (5, 12, 0x15), (field, head, data[at])
        value, _ = _varint(data, at + 1)
        return at + 1, (value >> 1) ^ -(value & 1)


def shorten_column(path: Path, name: str) -> None:
    """Make column ``name`` read back one value short: its data page claims one value less."""
    column = next(
        chunk
        for chunk in (pq.ParquetFile(path).metadata.row_group(0).column(i) for i in range(9))
        if chunk.path_in_schema == name
    )
    data = bytearray(path.read_bytes())
    at, count = _num_values_field(data, column.data_page_offset)
    assert count == ROWS
    data[at] = (count - 1) << 1  # zigzag: one byte for counts below 64, as before
    path.write_bytes(bytes(data))
    read = pq.ParquetFile(path, page_checksum_verification=True).read([name]).column(0)
    assert len(read) == ROWS - 1  # the reader takes the damage as it is


def _meta(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    return lambda path: rewrite(path, meta=change)


def _table(change: Callable[[pa.Table], pa.Table]) -> Callable[[Path], None]:
    return lambda path: rewrite(path, table=change)


def _set(document: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    document[key] = value
    return document


def _set_position(document: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    if value is None:
        del document["position"][key]
    else:
        document["position"][key] = value
    return document


# Each case: the damage, and the reason the check that must catch it gives.
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "other_format": (_meta(lambda m: _set(m, "format", 1)), "checkpoint format 1 is not 2"),
    "no_metadata": (_meta(lambda _: None), "'NoneType' object is not subscriptable"),
    "position_not_a_dict": (
        _meta(lambda m: _set(m, "position", [3667, 13])),
        "checkpoint position [3667, 13] is not {end, seq, length}",
    ),
    "position_without_length": (
        _meta(lambda m: _set_position(m, "length", None)),
        "is not {end, seq, length}",
    ),
    "position_seq_not_an_int": (
        _meta(lambda m: _set_position(m, "seq", "13")),
        "is not {end, seq, length}",
    ),
    "count_above_the_rows": (
        _meta(lambda m: _set(m, "count", ROWS + 1)),
        f"column snapshot_seq holds {ROWS} values, not {ROWS + 1}",
    ),
    "count_below_the_rows": (
        _meta(lambda m: _set(m, "count", ROWS - 1)),
        f"column snapshot_seq holds {ROWS} values, not {ROWS - 1}",
    ),
    "position_before_the_last_row": (
        _meta(lambda m: _set_position(m, "seq", ROWS - 1)),
        f"{ROWS} rows up to seq {ROWS} do not match the position (seq {ROWS - 1})",
    ),
    "seqs_out_of_order": (
        _table(with_column("snapshot_seq", swap(3, 4))),
        "snapshot_seq is not strictly increasing",
    ),
    "seq_repeated": (
        _table(with_column("snapshot_seq", put(4, 4))),
        "snapshot_seq is not strictly increasing",
    ),
    "seq_below_one": (
        _table(with_column("snapshot_seq", put(0, 0))),
        "snapshot_seq is not strictly increasing",
    ),
    **{
        f"short_column_{name}": (
            partial(shorten_column, name=name),
            f"column {name} holds {ROWS - 1} values, not {ROWS}",
        )
        for name in INT_COLUMNS + TEXT_COLUMNS
    },
    # Read as raw int64 buffers, the doubles' bit patterns would be offsets far
    # beyond the log: the store would open and then fail every read.
    "log_offset_as_double": (
        _table(retype("log_offset", pa.float64())),
        "column log_offset is double, not int64",
    ),
    "snapshot_seq_as_double": (
        _table(retype("snapshot_seq", pa.float64())),
        "column snapshot_seq is double, not int64",
    ),
    "prev_version_seq_as_double": (
        _table(retype("prev_version_seq", pa.float64())),
        "column prev_version_seq is double, not int64",
    ),
    "log_length_as_int32": (
        _table(retype("log_length", pa.int32())),
        "column log_length is int32, not int64",
    ),
    "snapshot_seq_as_uint64": (
        _table(retype("snapshot_seq", pa.uint64())),
        "column snapshot_seq is uint64, not int64",
    ),
    "created_at_as_int64": (
        _table(retype("created_at", pa.int64())),
        "column created_at is int64, not timestamp[us, tz=UTC]",
    ),
    "stage_as_binary": (
        _table(retype("stage", pa.binary())),
        "column stage is dictionary<values=binary",
    ),
    "column_missing": (
        _table(lambda table: table.drop_columns(["prev_comparable_seq"])),
        "column prev_comparable_seq is missing or repeated",
    ),
    "column_repeated": (
        _table(lambda table: table.append_column("log_offset", table.column("log_offset"))),
        "column log_offset is missing or repeated",
    ),
    **{
        f"{name}_points_at_itself": (
            _table(partial(point_at_self, name=name)),
            f"a {name} link does not point back",
        )
        for name in LINKS
    },
    **{
        f"{name}_points_forward": (
            _table(with_column(name, put(2, ROWS))),
            f"a {name} link does not point back",
        )
        for name in LINKS
    },
    **{
        f"{name}_negative": (
            _table(with_column(name, put(2, -1))),
            f"a {name} link does not point back",
        )
        for name in LINKS
    },
    **{
        f"null_in_{name}": (_table(with_column(name, put(5, None))), f"column {name} has nulls")
        for name in INT_COLUMNS + TEXT_COLUMNS
    },
}


@pytest.mark.parametrize("case", CASES)
def test_each_checkpoint_check_sends_the_store_to_its_log(
    template: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    case: str,
) -> None:
    source, replayed = template
    root = copy_store(source, tmp_path / "s")
    damage, reason = CASES[case]
    damage(root / PARQUET)

    with pytest.raises(CorruptionError, match="unusable checkpoint") as info:
        load_checkpoint(root, root / "snapshots.jsonl")
    assert reason in str(info.value)

    # The store answers from its log and index file; verify names the damage.
    assert answers_of(root) == replayed
    with SnapshotStore(root) as store:
        findings = [f for f in store.verify().findings if f.path.name == PARQUET]
        assert len(findings) == 1, findings
        assert reason in findings[0].message
        # A checkpoint replaces the file: it loads again.
        store.checkpoint()
    assert load_checkpoint(root, root / "snapshots.jsonl") is not None
    assert answers_of(root) == replayed


def test_a_checkpoint_of_many_row_groups_loads(
    template: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    # Not damage: the checks hold for a file written in several row groups,
    # which reads back in several chunks, as they hold for snapstore's own.
    source, replayed = template
    root = copy_store(source, tmp_path / "s")
    table = pq.read_table(root / PARQUET)
    pq.write_table(table, root / PARQUET, row_group_size=2, write_page_checksum=True)
    assert pq.ParquetFile(root / PARQUET).metadata.num_row_groups > 1
    loaded = load_checkpoint(root, root / "snapshots.jsonl")
    assert loaded is not None
    assert loaded[1].seq == ROWS
    assert answers_of(root) == replayed
