"""Saves of many threads in one call: client-side group commit.

Saves of one store are serialised by its counter row (see ``schema``), each
holding it until its commit is flushed, so one save after another waits a
WAL flush each. Threads of one handle that save at once instead hand their
saves to one of them, the leader, who sends them all in one call: one
transaction, one flush, every seq in the order the saves arrived. The
others wait for their results. A thread saving alone sends its own save at
once: it waits for nobody.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

# The most saves one call carries (a leader's batch; more wait for the next).
MAX_BATCH = 1_000


class _Request(Generic[_Item, _Result]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: _Item) -> None:
        self.item = item
        self.done = False
        self.result: _Result | None = None
        self.error: BaseException | None = None


class Batcher(Generic[_Item, _Result]):
    """Sends the items submitted at once by many threads in as few calls of ``send`` as it can.

    ``send(items)`` returns one result per item, in order. If it raises,
    every item of that call gets the exception.
    """

    def __init__(self, send: Callable[[list[_Item]], list[_Result]]) -> None:
        self._send = send
        self._turn = threading.Condition(threading.Lock())
        self._pending: list[_Request[_Item, _Result]] = []
        self._leading = False

    def submit(self, item: _Item) -> _Result:
        request: _Request[_Item, _Result] = _Request(item)
        with self._turn:
            self._pending.append(request)
        while True:
            with self._turn:
                while self._leading and not request.done:
                    self._turn.wait()
                if request.done:
                    break
                # Lead: send the oldest pending requests (this one among them, or next time).
                self._leading = True
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
            self._lead(batch)
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]  # set when done without error

    def _lead(self, batch: list[_Request[_Item, _Result]]) -> None:
        try:
            results = self._send([request.item for request in batch])
        except BaseException as exc:  # noqa: BLE001 - each waiting thread raises it as its own
            for request in batch:
                request.error = exc
        else:
            for request, result in zip(batch, results, strict=True):
                request.result = result
        finally:
            with self._turn:
                for request in batch:
                    request.done = True
                self._leading = False
                self._turn.notify_all()  # the done return; one of the others leads next
