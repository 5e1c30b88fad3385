"""The in-memory index of a snapshot log: where each snapshot is and how they relate.

Everything is keyed by ``snapshot_seq`` in flat arrays (about 50 bytes a snapshot),
so a store of a million snapshots stays small and each update is O(1):

- ``latest[stage][run_id]`` is the newest seq of that key, and
  ``prev_version[seq]`` chains back through the older versions of the same key;
- ``group_latest[stage][comparison_key]`` is the newest seq of that comparison
  group, and ``prev_comparable[seq]`` chains back through the group.

The maps are nested by stage so that their keys are the interned run ids and
comparison keys the columns already hold: a million keys cost no extra strings.

"The previous comparable run" is a walk down the group chain, ordered by seq
alone: never a timestamp, never a file's mtime.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

from snapstore._names import group_key, index_key

if TYPE_CHECKING:
    from collections.abc import Iterable

_MISSING = -1


@dataclass(frozen=True, slots=True)
class IndexRow:
    """What the index holds about one snapshot."""

    seq: int
    run_id: str
    stage: str
    comparison_key: str
    created_us: int
    offset: int
    length: int
    prev_version: int
    prev_comparable: int


class SnapshotIndex:
    """The index of the snapshots after seq ``base`` (all of them, with base 0).

    A store that answers from its index file holds here only what the file
    does not cover: chains then end (0) where they leave this part.
    """

    def __init__(self, base: int = 0) -> None:
        self.base = base
        # Slot 0 is unused so that seq ``base + i`` is at slot i.
        self.offsets = array("q", [_MISSING])
        self.lengths = array("q", [0])
        self.created_us = array("q", [0])
        self.prev_version = array("q", [0])
        self.prev_comparable = array("q", [0])
        self.run_ids: list[str] = [""]
        self.stages: list[str] = [""]
        self.comparison_keys: list[str] = [""]
        self.latest: dict[str, dict[str, int]] = {}
        self.group_latest: dict[str, dict[str, int]] = {}
        self.count = 0
        self._interned: dict[str, str] = {}

    def add(  # noqa: PLR0917 - one positional field per column, called from one place
        self,
        seq: int,
        run_id: str,
        stage: str,
        comparison_key: str,
        created_us: int,
        offset: int,
        length: int,
    ) -> None:
        """Index the snapshot committed as ``seq`` (seqs arrive in increasing order).

        Re-entrant: an add cut short by an interrupt is offered again and
        completes the same entry (every call that could be interrupted comes
        before the plain stores that count the snapshot and mark it present).
        """
        self.grow_to(seq)
        slot = seq - self.base
        # Many snapshots share a run id, stage or comparison key: keep one copy.
        run_id = self.run_ids[slot] = self._intern(run_id)
        stage = self.stages[slot] = self._intern(stage)
        comparison_key = self.comparison_keys[slot] = self._intern(comparison_key)
        self.lengths[slot] = length
        self.created_us[slot] = created_us
        versions = self.latest.setdefault(stage, {})
        group = self.group_latest.setdefault(stage, {})
        # On a second offer, the chains may already lead to this very seq.
        if (previous := versions.get(run_id, 0)) != seq:
            self.prev_version[slot] = previous
        if (previous := group.get(comparison_key, 0)) != seq:
            self.prev_comparable[slot] = previous
        versions[run_id] = seq
        group[comparison_key] = seq
        if self.offsets[slot] == _MISSING:
            self.count += 1
            self.offsets[slot] = offset

    def extend(self, rows: Iterable[IndexRow]) -> None:
        """Add the snapshots ``rows`` describe (in seq order)."""
        for row in rows:
            self.add(
                row.seq,
                row.run_id,
                row.stage,
                row.comparison_key,
                row.created_us,
                row.offset,
                row.length,
            )

    def copy(self) -> SnapshotIndex:
        """An independent copy (for a checkpoint written while saves go on)."""
        clone = SnapshotIndex(self.base)
        clone.offsets = array("q", self.offsets)
        clone.lengths = array("q", self.lengths)
        clone.created_us = array("q", self.created_us)
        clone.prev_version = array("q", self.prev_version)
        clone.prev_comparable = array("q", self.prev_comparable)
        clone.run_ids = list(self.run_ids)
        clone.stages = list(self.stages)
        clone.comparison_keys = list(self.comparison_keys)
        clone.latest = {stage: dict(runs) for stage, runs in self.latest.items()}
        clone.group_latest = {stage: dict(keys) for stage, keys in self.group_latest.items()}
        clone.count = self.count
        return clone

    def latest_seq(self, run_id: str, stage: str) -> int | None:
        return self.latest.get(stage, {}).get(run_id)

    def flat_latest(self) -> dict[str, int]:
        """``latest`` keyed ``"run_id:stage"``, as snapshot_index.json holds it."""
        return {
            index_key(run_id, stage): seq
            for stage, runs in self.latest.items()
            for run_id, seq in runs.items()
        }

    def flat_groups(self) -> dict[str, int]:
        """``group_latest`` keyed ``"stage:comparison_key"``."""
        return {
            group_key(stage, key): seq
            for stage, keys in self.group_latest.items()
            for key, seq in keys.items()
        }

    def has(self, seq: int) -> bool:
        slot = seq - self.base
        return 0 < slot < len(self.offsets) and self.offsets[slot] != _MISSING

    def place(self, seq: int | None) -> tuple[int, int] | None:
        """Where snapshot ``seq`` is in the log: ``(offset, length)``; None if it is not."""
        if seq is None:
            return None
        slot = seq - self.base
        if not 0 < slot < len(self.offsets):
            return None
        offset = self.offsets[slot]
        return None if offset == _MISSING else (offset, self.lengths[slot])

    def last_seq(self) -> int:
        return self.base + len(self.offsets) - 1

    def row(self, seq: int) -> IndexRow:
        slot = seq - self.base
        return IndexRow(
            seq,
            self.run_ids[slot],
            self.stages[slot],
            self.comparison_keys[slot],
            self.created_us[slot],
            self.offsets[slot],
            self.lengths[slot],
            self.prev_version[slot],
            self.prev_comparable[slot],
        )

    def rows(self) -> list[IndexRow]:
        """Every snapshot held, in seq order."""
        last = self.last_seq()
        return [self.row(seq) for seq in range(self.base + 1, last + 1) if self.has(seq)]

    def versions(self, run_id: str, stage: str) -> list[int]:
        """Every seq of ``(run_id, stage)``, oldest first."""
        seqs: list[int] = []
        seq = self.latest_seq(run_id, stage) or 0
        while seq:
            seqs.append(seq)
            seq = self.prev_version[seq - self.base]
        seqs.reverse()
        return seqs

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int | None
    ) -> int | None:
        """The highest seq below ``below`` in the group, from a run other than ``run_id``."""
        base, links = self.base, self.prev_comparable
        if (
            below is not None
            and self.has(below)
            and self.stages[below - base] == stage
            and (self.comparison_keys[below - base] == comparison_key)
        ):
            seq = links[below - base]  # a stored member: its own link is the start
        else:
            seq = self.group_latest.get(stage, {}).get(comparison_key, 0)
            while seq and below is not None and seq >= below:
                seq = links[seq - base]
        while seq and self.run_ids[seq - base] == run_id:
            seq = links[seq - base]
        return seq or None

    def seqs(self, run_id: str | None, stage: str | None) -> list[int]:
        """Seqs in increasing order, filtered by run id and/or stage."""
        if run_id is not None and stage is not None:
            return self.versions(run_id, stage)
        return [
            self.base + slot
            for slot in range(1, len(self.offsets))
            if self.offsets[slot] != _MISSING
            and (run_id is None or self.run_ids[slot] == run_id)
            and (stage is None or self.stages[slot] == stage)
        ]

    def grow_to(self, seq: int) -> None:
        # Seqs are gap-free unless repair quarantined a damaged record: a gap
        # is a hole marked _MISSING.
        # Each column grows on its own to the same size, the sentinel last, so
        # a growth cut short by an interrupt is completed by the next one.
        size = seq - self.base + 1
        if len(self.comparison_keys) >= size:
            return
        self.offsets.extend([_MISSING] * (size - len(self.offsets)))
        for column in (self.lengths, self.created_us, self.prev_version, self.prev_comparable):
            column.extend([0] * (size - len(column)))
        for names in (self.run_ids, self.stages, self.comparison_keys):
            names.extend([""] * (size - len(names)))

    def _intern(self, text: str) -> str:
        return self._interned.setdefault(text, text)
