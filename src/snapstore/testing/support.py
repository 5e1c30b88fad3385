"""What the conformance suites share: the harness protocols and a few snapshot helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import orjson
import pytest

from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

STAGES = ("TARGET_RANKING", "FEATURE_SELECTION", "TRAINING")


class StoreHarness(Protocol):
    """One store of some backend, opened as many times as a test needs."""

    def open(self, **options: Any) -> SnapshotStore:
        """A new handle on the store (closed by the harness at teardown)."""

    def state(self) -> object:
        """A picture of everything stored; equal pictures mean nothing was written."""

    def close_all(self) -> None:
        """Close every handle this harness opened."""


class HistoryHarness(Protocol):
    """One history of some backend, opened as many times as a test needs."""

    def open(self, **options: Any) -> IterationHistory:
        """A new handle on the history (closed by the harness at teardown)."""

    def state(self) -> object:
        """A picture of everything stored; equal pictures mean nothing was written."""

    def close_all(self) -> None:
        """Close every handle this harness opened."""


class StoreSuite:
    """The fixtures of every suite of store cases: a backend's test class provides ``harness``."""

    @pytest.fixture
    def harness(self) -> StoreHarness:
        raise NotImplementedError("a backend's test class provides the harness fixture")

    @pytest.fixture
    def store(self, harness: StoreHarness) -> Iterator[SnapshotStore]:
        yield harness.open()
        harness.close_all()

    @pytest.fixture
    def other(self, harness: StoreHarness, store: SnapshotStore) -> SnapshotStore:
        """A second handle on the same store (as another process would hold)."""
        return harness.open()


class HistorySuite:
    """The fixtures of every suite of history cases: a backend's test class provides ``harness``."""

    @pytest.fixture
    def harness(self) -> HistoryHarness:
        raise NotImplementedError("a backend's test class provides the harness fixture")

    @pytest.fixture
    def history(self, harness: HistoryHarness) -> Iterator[IterationHistory]:
        yield harness.open()
        harness.close_all()

    @pytest.fixture
    def other(self, harness: HistoryHarness, history: IterationHistory) -> IterationHistory:
        """A second handle on the same history (as another process would hold)."""
        return harness.open()


def json_text(value: object) -> bytes:
    """Canonical JSON: tells 1 from 1.0 and from True, ignores key order."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def same_content(a: NormalizedSnapshot, b: NormalizedSnapshot) -> bool:
    """Whether two snapshots hold exactly the same fields (types included)."""
    return json_text(a.to_dict()) == json_text(b.to_dict())


def save_all(store: SnapshotStore, snaps: Iterable[NormalizedSnapshot]) -> list[NormalizedSnapshot]:
    return [store.save_snapshot(snap) for snap in snaps]


def pipeline(runs: int, configs: int = 2) -> list[NormalizedSnapshot]:
    """``runs`` runs through every stage, alternating between ``configs`` configs."""
    return [
        NormalizedSnapshot(
            f"run-{run}",
            stage,
            metrics={"auc": 0.7 + run / 100, "stage": position},
            config={"model": "gbm", "depth": run % configs},
            data={"rows": run * 10},
        )
        for run in range(1, runs + 1)
        for position, stage in enumerate(STAGES)
    ]
