"""The narrow interface between SnapshotStore and where its snapshots live.

SnapshotStore checks every argument and speaks to users; a backend stores and
answers. Every backend passes the same conformance suite (tests/conformance.py).
Inputs reaching a backend are already validated: names checked, comparison key
filled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator

    from snapstore.history import IterationHistory
    from snapstore.snapshot import NormalizedSnapshot


class Backend(Protocol):
    def save(self, snap: NormalizedSnapshot) -> NormalizedSnapshot:
        """Commit ``snap`` with the next seq, or return the identical latest version."""

    def get_latest(self, run_id: str, stage: str) -> NormalizedSnapshot | None: ...

    def get_by_seq(self, seq: int) -> NormalizedSnapshot | None: ...

    def versions(self, run_id: str, stage: str) -> list[NormalizedSnapshot]: ...

    def snapshots(self, run_id: str | None, stage: str | None) -> Iterator[NormalizedSnapshot]: ...

    def count(self) -> int: ...

    def previous_comparable(
        self, stage: str, comparison_key: str, run_id: str, below: int | None
    ) -> NormalizedSnapshot | None: ...

    def baseline(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None: ...

    def establish_baseline(self, snap: NormalizedSnapshot) -> NormalizedSnapshot:
        """Atomically: the pinned baseline of snap's group, or pin ``snap`` (saving it)."""

    def pin_baseline(self, snap: NormalizedSnapshot) -> None: ...

    def history(self, name: str) -> IterationHistory: ...

    def refresh(self, *, pins: bool = True) -> None:
        """Take in what other handles committed: snapshots, and pins unless ``pins=False``."""

    def checkpoint(self) -> None: ...

    def close(self, *, finish: bool = True) -> None:
        """Release everything; with ``finish``, first persist what is pending (a checkpoint).

        ``finish=False`` is for a handle that may not write: a copy inherited
        through fork(), or one the garbage collector reclaims.
        """
