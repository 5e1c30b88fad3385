"""The client-side group commit of the PostgreSQL backend: many threads' saves, few calls."""

from __future__ import annotations

import threading

import pytest

from snapstore.backends.postgres.batch import Batcher


def test_threads_submitting_at_once_share_calls_and_get_their_own_results() -> None:
    calls: list[list[int]] = []
    sending, release = threading.Event(), threading.Event()

    def send(items: list[int]) -> list[int]:
        calls.append(items)
        sending.set()
        release.wait()  # the first call is slow: the others queue up behind it
        return [item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(send)
    results: dict[int, int] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.submit(i)))
        for i in range(16)
    ]
    for thread in threads:
        thread.start()
    sending.wait()
    release.set()
    for thread in threads:
        thread.join()
    assert results == {i: i * 10 for i in range(16)}
    assert sorted(item for call in calls for item in call) == list(range(16))
    assert len(calls) < 16  # some were sent together


def test_a_failed_call_fails_every_save_it_carried_and_the_next_call_is_made() -> None:
    failing = True

    def send(items: list[str]) -> list[str]:
        if failing:
            raise ConnectionError("the server went away")
        return items

    batcher: Batcher[str, str] = Batcher(send)
    with pytest.raises(ConnectionError):
        batcher.submit("a")
    failing = False
    assert batcher.submit("b") == "b"
