"""The behaviour every backend must have, as suites any backend's tests subclass.

Like zarr's ``StoreTests``: a backend's test module subclasses
:class:`SnapshotStoreTests` and :class:`HistoryTests` (and, for tables, store
facts and diffs, :class:`StoreTableTests` and :class:`HistoryTableTests`) and
provides a ``harness`` fixture (:class:`StoreHarness`, :class:`HistoryHarness`; the
ones of the built-in backends are in :mod:`snapstore.testing.harnesses`).
Every case then runs against that backend. Nothing here depends on how a
backend stores its data: "nothing was written" is ``harness.state()`` before
and after. Needs pytest (the ``testing`` extra)::

    import pytest
    from snapstore.testing.conformance import HistoryTests, SnapshotStoreTests
    from snapstore.testing.harnesses import MemoryHistoryHarness, MemoryStoreHarness

    class TestMyStore(SnapshotStoreTests):
        @pytest.fixture
        def harness(self):
            harness = MemoryStoreHarness()  # or one of your backend's
            yield harness
            harness.close_all()
"""

from snapstore.testing.history_tests import HistoryTests
from snapstore.testing.store_tests import SnapshotStoreTests
from snapstore.testing.support import (
    STAGES,
    HistoryHarness,
    StoreHarness,
    json_text,
    pipeline,
    same_content,
    save_all,
)
from snapstore.testing.table_tests import HistoryTableTests, StoreTableTests

__all__ = [
    "STAGES",
    "HistoryHarness",
    "HistoryTableTests",
    "HistoryTests",
    "SnapshotStoreTests",
    "StoreHarness",
    "StoreTableTests",
    "json_text",
    "pipeline",
    "same_content",
    "save_all",
]
