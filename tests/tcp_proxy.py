"""A TCP proxy between a client and a PostgreSQL server that cuts and refuses on demand.

It forwards each connection's bytes both ways, one thread per direction, and
makes two faults of a network or a server when asked: a connection cut
after the server answered a request but before the answer reaches the
client (``cut_next_reply``), and connections cut and refused (``cut_all``,
``refuse``).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

_CHUNK = 65536
# PostgreSQL's ReadyForQuery message: the server sends it once the request's
# transaction has ended (committed, in autocommit mode), as its reply's last.
_READY_FOR_QUERY = b"Z"


class Cut:
    """A cut armed on the reply to the next request; ``then`` runs once it is held back."""

    def __init__(self, then: Callable[[], None]) -> None:
        self._then = then
        self._done = threading.Event()
        self._error: BaseException | None = None

    def wait(self, timeout: float) -> None:
        """Return once the cut was made; raise what ``then`` raised."""
        assert self._done.wait(timeout), "no reply was cut"
        if self._error is not None:
            raise self._error

    def make(self, link: _Link) -> None:
        # ``then`` runs while the client still waits for the reply: what it
        # does comes between the server's commit and the client's retry.
        try:
            self._then()
        except BaseException as exc:  # handed to wait()
            self._error = exc
        link.cut()
        self._done.set()


class TcpProxy:
    """Listens on 127.0.0.1:``port`` and forwards each connection to ``upstream``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._armed: Cut | None = None
        self._refusing = False
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections closed as soon as accepted
        # Written to by close(): wakes the accepting thread out of select().
        self._wake_read, self._wake_write = socket.socketpair()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def cut_next_reply(self, then: Callable[[], None]) -> Cut:
        """Forward the next request, hold back the server's whole reply to it, run ``then``, cut.

        The reply is held back up to its ReadyForQuery: the request's
        transaction has ended when ``then`` runs. The next request is the
        first bytes a client sends, on any connection, after this call.
        """
        with self._lock:
            self._armed = Cut(then)
            return self._armed

    def cut_all(self) -> None:
        """Cut every connection forwarded so far, as a server that went away."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.cut()

    def refuse(self, *, refusing: bool = True) -> None:
        """Close each new connection as soon as it is accepted (or forward it again)."""
        with self._lock:
            self._refusing = refusing

    def take_armed(self) -> Cut | None:
        """The armed cut, if any, for the caller's connection: one connection takes it."""
        with self._lock:
            armed, self._armed = self._armed, None
            return armed

    def close(self) -> None:
        self._wake_write.send(b"x")
        self._accepting.join()
        for sock in (self._listener, self._wake_read, self._wake_write):
            sock.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                if any(key.fileobj is self._wake_read for key, _ in selector.select()):
                    return
                client, _ = self._listener.accept()
                self._take(client)

    def _take(self, client: socket.socket) -> None:
        with self._lock:
            if self._refusing:
                self.refused += 1
                client.close()
                return
        link = _Link(client, socket.create_connection(self._upstream), self)
        with self._lock:
            self._links.append(link)
            self.accepted += 1
        link.start()


class _Link:
    """One forwarded connection: the client's socket and the server's, a thread each way."""

    def __init__(self, client: socket.socket, server: socket.socket, proxy: TcpProxy) -> None:
        self._client = client
        self._server = server
        self._proxy = proxy
        self._cut: Cut | None = None  # armed on this connection's next reply
        self._threads = [
            threading.Thread(target=self._forward_requests, daemon=True),
            threading.Thread(target=self._forward_replies, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def cut(self) -> None:
        # shutdown, not close: it wakes the threads blocked reading either
        # socket, and the client reads the end of its connection.
        for sock in (self._client, self._server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join()
        self._client.close()
        self._server.close()

    def _forward_requests(self) -> None:
        with contextlib.suppress(OSError):
            while data := self._client.recv(_CHUNK):
                # Taken before the request goes on: its reply cannot come first.
                self._cut = self._cut or self._proxy.take_armed()
                self._server.sendall(data)
        self.cut()

    def _forward_replies(self) -> None:
        held = b""
        with contextlib.suppress(OSError):
            while data := self._server.recv(_CHUNK):
                if self._cut is None:
                    self._client.sendall(data)
                    continue
                held += data
                if _holds_ready_for_query(held):
                    self._cut.make(self)
                    return
        self.cut()


def _holds_ready_for_query(replies: bytes) -> bool:
    """Whether ``replies``, server messages from a message's start on, hold a whole ReadyForQuery.

    Each message is a type byte, then its length (itself included) in four bytes.
    """
    at = 0
    while at + 5 <= len(replies):
        end = at + 1 + int.from_bytes(replies[at + 1 : at + 5], "big")
        if end > len(replies):
            return False
        if replies[at : at + 1] == _READY_FOR_QUERY:
            return True
        at = end
    return False
