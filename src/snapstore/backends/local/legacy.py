"""Reading the older layout: one ``snapshot_index.json`` of snapshot dicts.

Its keys are either ``run_id`` (the oldest format, where a later stage of a run
had overwritten the earlier ones) or ``"run_id:stage"``. Each value is a dict
with ``run_id``, ``stage``, ``timestamp``, optionally ``snapshot_seq``,
``metrics``, ``config``, ``comparison_key``; every other field goes to ``data``.

Order: snapshots that carry a ``snapshot_seq`` keep their relative order. Those
without one predate sequence numbers; they are ordered by ``timestamp`` (the
only order they have, logged as a warning) and placed before the others.
The original key, timestamp and seq are kept under ``data["legacy"]``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import CorruptionError, InvalidInputError
from snapstore.snapshot import NormalizedSnapshot

if TYPE_CHECKING:
    from pathlib import Path

LEGACY_INDEX = "snapshot_index.json"
_STRUCTURED = {
    "run_id",
    "stage",
    "timestamp",
    "snapshot_seq",
    "metrics",
    "config",
    "comparison_key",
}

logger = logging.getLogger("snapstore")


def read_legacy(source_dir: Path) -> list[NormalizedSnapshot]:
    """The snapshots of an older store, in the order they should be saved."""
    path = source_dir / LEGACY_INDEX
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidInputError(f"{source_dir} has no {LEGACY_INDEX} to import") from None
    except orjson.JSONDecodeError as exc:
        raise _damaged(path, exc.pos, exc.lineno, f"not JSON: {exc.msg}") from None
    if not isinstance(document, dict):
        raise _damaged(path, 0, 1, "expected a JSON object keyed by run_id or run_id:stage")
    entries = [_entry(path, key, value) for key, value in document.items()]
    with_seq = sorted((e for e in entries if e[0] is not None), key=lambda e: e[0] or 0)
    without_seq = [e for e in entries if e[0] is None]
    if without_seq:
        logger.warning(
            "%s: %d snapshots have no snapshot_seq; ordering them by their timestamp",
            path,
            len(without_seq),
        )
        instants = {id(e): _instant(path, e[2], e[1]) for e in without_seq}
        without_seq.sort(key=lambda e: instants[id(e)])
    return [snap for _, _, snap in without_seq + with_seq]


def _instant(path: Path, snap: NormalizedSnapshot, timestamp: object) -> datetime:
    """A legacy timestamp as a UTC instant: ISO-8601 text (naive means UTC) or epoch seconds.

    Compared as instants, not as text: "2025-11-18T18:30:18+01:00" is before
    "2025-11-18T18:00:00Z", and "9" sorts after "10" as text.
    """
    try:
        if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
            return datetime.fromtimestamp(timestamp, UTC)
        if isinstance(timestamp, str):
            instant = datetime.fromisoformat(timestamp)
            return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant
    except (ValueError, OverflowError, OSError):
        pass
    raise _damaged(
        path,
        0,
        None,
        f"entry {snap.run_id}:{snap.stage} has no snapshot_seq and no usable timestamp "
        f"({timestamp!r}) to order it by",
    )


def _entry(path: Path, key: str, value: Any) -> tuple[int | None, object, NormalizedSnapshot]:
    if not isinstance(value, dict) or "run_id" not in value or "stage" not in value:
        raise _damaged(path, 0, None, f"entry {key!r} lacks run_id or stage")
    seq = value.get("snapshot_seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise _damaged(path, 0, None, f"entry {key!r} has a non-integer snapshot_seq")
    timestamp = value.get("timestamp")
    data = {name: field for name, field in value.items() if name not in _STRUCTURED}
    data["legacy"] = {"index_key": key, "timestamp": timestamp, "snapshot_seq": seq}
    try:
        snap = NormalizedSnapshot(
            run_id=value["run_id"],
            stage=value["stage"],
            metrics=value.get("metrics") or {},
            config=value.get("config") or {},
            data=data,
            comparison_key=value.get("comparison_key"),
        ).with_comparison_key()
    except InvalidInputError as exc:
        # Checked here, before the first save: a bad name in the last entry
        # must not leave a half-imported store behind.
        raise InvalidInputError(f"{path}: entry {key!r}: {exc}") from None
    return seq, timestamp, snap


def _damaged(path: Path, offset: int, line: int | None, reason: str) -> CorruptionError:
    # The source is the user's file, not a snapstore log: repair has nothing to offer.
    return CorruptionError(path, offset, line, reason, repairable=False)
