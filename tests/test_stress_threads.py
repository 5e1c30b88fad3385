"""Many threads appending through one handle and through several: no gap, no duplicate."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from helpers import check_writers
from snapstore import IterationHistory
from workers import WAIT

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore import Durability


def run_threads(
    path: Path, writers: int, count: int, *, shared: bool, durability: Durability
) -> None:
    """``writers`` threads append ``count`` records each, through one handle or their own."""
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def append(history: IterationHistory, writer: int) -> None:
        try:
            start.wait(WAIT)
            for i in range(count):
                history.append({"writer": writer, "i": i})
        except BaseException as exc:
            errors.append(exc)
            raise

    def work(writer: int) -> None:
        if shared:
            append(common, writer)
        else:
            with IterationHistory(path, durability=durability) as own:
                append(own, writer)

    with IterationHistory(path, durability=durability) as common:
        threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in threads)
    assert errors == []


@pytest.mark.parametrize("shared", [True, False], ids=["one-handle", "handle-per-thread"])
def test_eight_threads_append_two_hundred_each(
    history_path: Path, shared: bool, durability: Durability
) -> None:
    run_threads(history_path, 8, 200, shared=shared, durability=durability)
    check_writers(history_path, 8, 200)


@pytest.mark.parametrize("shared", [True, False], ids=["one-handle", "handle-per-thread"])
def test_five_concurrent_writers_store_five_records(history_path: Path, shared: bool) -> None:
    run_threads(history_path, 5, 1, shared=shared, durability="fsync")
    check_writers(history_path, 5, 1)
