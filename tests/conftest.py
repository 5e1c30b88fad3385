from __future__ import annotations

import gc
import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from snapstore import IterationHistory
from snapstore.backends.local import store as local_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from snapstore import Durability

# The shipped suites are plain modules of the package: have pytest explain
# their failed asserts as it does a test module's.
pytest.register_assert_rewrite(
    "snapstore.testing.store_tests",
    "snapstore.testing.history_tests",
    "snapstore.testing.table_tests",
    "snapstore.testing.machines",
)

# Every example writes and fsyncs real files, so deadlines would only measure the disk.
settings.register_profile(
    "ci", max_examples=40, stateful_step_count=20, deadline=None, print_blob=True
)
settings.register_profile("dev", max_examples=150, stateful_step_count=30, deadline=None)
settings.register_profile(
    "soak",
    max_examples=5000,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=["fsync", "write"])
def durability(request: pytest.FixtureRequest) -> Durability:
    mode: Durability = request.param
    return mode


@pytest.fixture
def history_path(tmp_path: Path) -> Path:
    return tmp_path / "history.jsonl"


@pytest.fixture
def history(history_path: Path, durability: Durability) -> Iterator[IterationHistory]:
    with IterationHistory(history_path, durability=durability) as opened:
        yield opened


@pytest.fixture
def index_file_at_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every save goes to the index file at once, and every open catches the file up in bulk.

    Stores hold up to a thousand snapshots in memory before adding them to
    the file, and catch up in bulk only a megabyte behind: tests of small
    stores would otherwise never query the file, nor reach the bulk path.
    """
    monkeypatch.setattr(local_store, "FLUSH_ROWS", 1)
    monkeypatch.setattr(local_store, "BULK_CATCH_UP_BYTES", 0)


@pytest.fixture
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection during the test (see helpers.open_fds)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
