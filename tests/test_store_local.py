"""SnapshotStore on the local directory backend: the conformance suite, then local specifics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conformance import StoreConformance
from store_fixtures import LocalHarness

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class TestLocalStore(StoreConformance):
    @pytest.fixture(params=["fsync", "write"])
    def harness(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalHarness]:
        harness = LocalHarness(tmp_path / "store", request.param)
        yield harness
        harness.close_all()
