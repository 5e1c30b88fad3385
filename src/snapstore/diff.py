"""What changed between two snapshots: metric deltas, config and data keys added, removed, changed.

Nested keys are compared leaf by leaf under their dotted names
(``config.optimizer.lr``), as in the tables of ``to_arrow``. Values are
compared as stored: ``1`` and ``1.0`` are the same number, ``True`` is not
``1``, and a NaN equals a NaN (it was stored, and read back, unchanged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snapstore._errors import InvalidInputError
from snapstore._tables import flatten
from snapstore._values import canonical_json
from snapstore.snapshot import NormalizedSnapshot

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["FieldChange", "MappingDiff", "MetricChange", "SnapshotDiff", "diff_snapshots"]

# The integers JSON writers hold (orjson: int64 and uint64). Two stored
# integers can differ by more; such a difference is given as a float.
_JSON_INTS = range(-(2**63), 2**64)


@dataclass(frozen=True, slots=True)
class MetricChange:
    """One metric in either snapshot: its two values and, for two numbers, the deltas.

    ``absolute`` is ``after - before`` (an int for two ints, but a float
    beyond the 64-bit range JSON holds); ``relative`` is that over
    ``|before|`` (None when ``before`` is 0 or either value is not a finite
    number).
    A metric only one snapshot has has the other value None.
    """

    name: str
    before: Any
    after: Any
    absolute: int | float | None
    relative: float | None

    @property
    def changed(self) -> bool:
        return not _same(self.before, self.after)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """A key both mappings hold, with different values."""

    name: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class MappingDiff:
    """Keys of one mapping (config or data) that ``after`` adds, drops or changes."""

    added: dict[str, Any]
    removed: dict[str, Any]
    changed: tuple[FieldChange, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """How ``after`` differs from ``before``: every metric, and the config and data changes."""

    before: NormalizedSnapshot
    after: NormalizedSnapshot
    metrics: tuple[MetricChange, ...]
    config: MappingDiff
    data: MappingDiff

    @property
    def changed_metrics(self) -> tuple[MetricChange, ...]:
        return tuple(metric for metric in self.metrics if metric.changed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: what ``snapstore diff --format json`` prints."""
        return {
            "before": _identity(self.before),
            "after": _identity(self.after),
            "metrics": [
                {
                    "name": metric.name,
                    "before": metric.before,
                    "after": metric.after,
                    "absolute": metric.absolute,
                    "relative": metric.relative,
                }
                for metric in self.metrics
            ],
            **{name: _mapping_dict(getattr(self, name)) for name in ("config", "data")},
        }


def diff_snapshots(before: NormalizedSnapshot, after: NormalizedSnapshot) -> SnapshotDiff:
    """How ``after`` differs from ``before`` (which may be of another run, stage or group)."""
    for name, value in (("before", before), ("after", after)):
        if not isinstance(value, NormalizedSnapshot):
            kind = type(value).__name__
            raise InvalidInputError(f"{name} must be a NormalizedSnapshot, not {kind}")
    old, new = _leaves(before.metrics), _leaves(after.metrics)
    metrics = tuple(
        _metric(name, old.get(name), new.get(name)) for name in sorted(old.keys() | new.keys())
    )
    return SnapshotDiff(
        before,
        after,
        metrics,
        _mapping_diff(before.config, after.config),
        _mapping_diff(before.data, after.data),
    )


def _leaves(mapping: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    flatten("", mapping, row)
    return {name[1:]: value for name, value in row.items()}  # without flatten's leading "."


def _metric(name: str, before: Any, after: Any) -> MetricChange:
    if not (_is_number(before) and _is_number(after)):
        return MetricChange(name, before, after, None, None)
    absolute = after - before
    if isinstance(absolute, int) and absolute not in _JSON_INTS:
        absolute = float(absolute)  # to_dict() stays JSON
    relative = absolute / abs(before) if before else None
    if not math.isfinite(absolute):
        absolute = relative = None
    return MetricChange(name, before, after, absolute, relative)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mapping_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> MappingDiff:
    old, new = _leaves(before), _leaves(after)
    return MappingDiff(
        added={name: new[name] for name in sorted(new.keys() - old.keys())},
        removed={name: old[name] for name in sorted(old.keys() - new.keys())},
        changed=tuple(
            FieldChange(name, old[name], new[name])
            for name in sorted(old.keys() & new.keys())
            if not _same(old[name], new[name])
        ),
    )


def _same(before: Any, after: Any) -> bool:
    if _is_number(before) and _is_number(after):
        # 1 == 1.0; and a NaN read back is the NaN that was stored.
        return bool(before == after or (math.isnan(before) and math.isnan(after)))
    # Anything else as stored: canonical JSON tells True from 1, and "1" from 1.
    return canonical_json({"v": before}) == canonical_json({"v": after})


def _identity(snap: NormalizedSnapshot) -> dict[str, Any]:
    return {
        "snapshot_seq": snap.snapshot_seq,
        "run_id": snap.run_id,
        "stage": snap.stage,
        "comparison_key": snap.comparison_key,
    }


def _mapping_dict(diff: MappingDiff) -> dict[str, Any]:
    return {
        "added": diff.added,
        "removed": diff.removed,
        "changed": [
            {"name": change.name, "before": change.before, "after": change.after}
            for change in diff.changed
        ],
    }
