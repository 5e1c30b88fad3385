"""Several processes appending to one file: every record stored once, seqs 1..N."""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING

from helpers import check_writers
from workers import WAIT, append_many

if TYPE_CHECKING:
    from pathlib import Path


def run_processes(path: Path, writers: int, count: int) -> None:
    """``writers`` spawned processes append ``count`` records each, starting together."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(writers)
    children = [
        context.Process(target=append_many, args=(str(path), w, count, start))
        for w in range(writers)
    ]
    for child in children:
        child.start()
    try:
        for child in children:
            child.join(WAIT)
        assert [child.exitcode for child in children] == [0] * writers
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            child.join()


def test_four_processes_append_two_hundred_fifty_each(history_path: Path) -> None:
    run_processes(history_path, 4, 250)
    check_writers(history_path, 4, 250)


def test_five_concurrent_processes_store_five_records(history_path: Path) -> None:
    run_processes(history_path, 5, 1)
    check_writers(history_path, 5, 1)
