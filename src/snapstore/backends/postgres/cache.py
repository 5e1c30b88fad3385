"""What a process knows of a PostgreSQL store: earlier answers, kept while nothing changes them.

A lookup on the server costs a round trip (about 0.1 ms on one host); the
same lookup answered from memory costs what it costs on a local store. So
the handles on one store in one process share one cache of answers (the
latest version of a key, the previous comparable snapshot, the baseline of a
group) and of the snapshots they named, and keep it true the way a reader
of a log would: by seq.

**How it stays true.** The cache knows ``seen``, the seq up to which every
commit has been taken in. Catching up is one query for the identities of
the snapshots after ``seen`` (and the count of pin changes): each names the
answers it may change, and those are dropped. Seqs commit in order (see
``schema``), so after a catch-up no commit at or below ``seen`` is unknown.
A cache catches up before it answers whenever it may be behind:

- after a write through any handle of this process (read-your-writes, and
  every handle of the process sees what another committed: exact);
- when a notification is waiting on its listening connection: every save
  and pin sends one (``NOTIFY``) as it commits, and checking for one costs a
  ``select()`` with no wait, not a round trip;
- at least every ``POLL_SECONDS``, in case a notification was lost (the
  listening connection broke and is being remade).

So a commit by another process or host is seen by every read that begins
after its notification arrived: on one host, within microseconds of the
commit. A reader that must see every commit made anywhere before it began
calls ``refresh()`` first, or opens the store with ``read_cache=False``
(every read a round trip).

**Races.** An answer read from the server is kept only if no catch-up
changed anything while it was read: otherwise it may predate a change the
catch-up has already dropped the answers of, and would outlive it.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from collections.abc import Callable

    from snapstore.backends.postgres.connection import Address, Connections
    from snapstore.backends.postgres.schema import Statements
    from snapstore.snapshot import NormalizedSnapshot

# The longest a cache answers without asking the server whether anything changed.
POLL_SECONDS = 1.0
# The most new snapshots one catch-up names; a cache further behind forgets all answers.
CATCH_UP_ROWS = 10_000
# How many answers, and how many snapshots, a cache keeps (the least recently used go first).
MAX_ENTRIES = 50_000

_NO_SEQ = 2**63 - 1
PINS = ("pins", "", "")
# An answer's key: (kind, group..., detail...). A new snapshot of a group
# drops every answer about the group; a pin change drops every baseline.
_Key = tuple[Any, ...]
_Group = tuple[str, str, str]
_Groups = tuple[_Group, ...]


class ReadCache:
    """The answers the handles of one process have read from one store."""

    def __init__(self, address: Address, channel: str) -> None:
        self._address = address
        self._channel = channel
        self._lock = threading.Lock()
        self._listener: psycopg.Connection[tuple[Any, ...]] | None = None
        self._seen = -1  # nothing taken in yet: the first read catches up
        self._pins = -1
        self._stale = True
        self._polled = 0.0
        self._generation = 0
        # An answer's key -> the seq it names (None: no snapshot) and its groups.
        self._answers: OrderedDict[_Key, tuple[int | None, _Groups]] = OrderedDict()
        self._by_group: dict[tuple[str, str, str], set[_Key]] = {}
        self._snapshots: OrderedDict[int, NormalizedSnapshot] = OrderedDict()

    # -- answering ---------------------------------------------------------------

    def answer(
        self,
        conns: Connections,
        statements: Statements,
        key: _Key,
        groups: _Groups,
        fetch: Callable[[], NormalizedSnapshot | None],
    ) -> NormalizedSnapshot | None:
        """The answer ``key`` names: from memory if it is known and current, else ``fetch()``.

        ``groups`` are the groups whose changes change it: ``("key", run_id,
        stage)`` and ``("group", stage, comparison_key)`` by their new
        snapshots, ``PINS`` by any pin.
        """
        generation = self.catch_up_if_behind(conns, statements)
        with self._lock:
            known = self._answers.get(key)
            if known is not None:
                seq = known[0]
                if seq is None:
                    return None
                snap = self._snapshots.get(seq)
                if snap is not None:
                    return snap
        found = fetch()
        with self._lock:
            if self._generation == generation:
                self._remember(key, groups, found)
        return found

    def snapshot(self, seq: int) -> NormalizedSnapshot | None:
        """The snapshot ``seq`` if it was read before (a seq's snapshot never changes)."""
        with self._lock:
            return self._snapshots.get(seq)

    def keep(self, snap: NormalizedSnapshot) -> None:
        """Remember ``snap`` by its seq (what it is never changes)."""
        assert snap.snapshot_seq is not None
        with self._lock:
            self._keep_snapshot(snap.snapshot_seq, snap)

    def count(self, conns: Connections, statements: Statements) -> int:
        """How many snapshots the store holds, as of the last catch-up (made now if behind)."""
        self.catch_up_if_behind(conns, statements)
        with self._lock:
            return self._seen

    # -- keeping current -----------------------------------------------------------

    def wrote(self) -> None:
        """A handle of this process committed a write: the next read catches up first."""
        with self._lock:
            self._stale = True

    def catch_up_if_behind(self, conns: Connections, statements: Statements) -> int:
        """Take in what was committed since the last catch-up, if anything may have been."""
        with self._lock:
            if self._stale or time.monotonic() - self._polled > POLL_SECONDS or self._notified():
                self._catch_up(conns, statements)
            return self._generation

    def catch_up(self, conns: Connections, statements: Statements) -> None:
        """Take in everything committed so far (``refresh``)."""
        with self._lock:
            self._catch_up(conns, statements)

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError, psycopg.Error):
                listener.close()

    # -- inside the lock -------------------------------------------------------------

    def _catch_up(self, conns: Connections, statements: Statements) -> None:
        # Listening first: a commit made after the query below was read is
        # then notified, and one made before it is in its rows.
        self._listen()
        # Behind until the answer is in: a catch-up that fails (its
        # notification already taken) leaves the next read to make it again.
        self._stale = True
        asked = time.monotonic()
        # The first catch-up only learns the counters: nothing is known yet
        # that a change could have made wrong.
        after = self._seen if self._seen >= 0 else _NO_SEQ
        rows = conns.fetch_all(statements.changes, (after, CATCH_UP_ROWS))
        self._polled = asked
        self._stale = False
        pins, last = int(rows[0][0]), int(rows[0][1])
        new = [row[2:] for row in rows if row[2] is not None]
        changed = pins != self._pins or bool(new)
        if pins != self._pins:
            self._pins = pins
            self._drop_group(PINS)
        if len(new) == CATCH_UP_ROWS and int(new[-1][0]) < last:
            # Too far behind to name each change: forget every answer.
            self._answers.clear()
            self._by_group.clear()
        for _, run_id, stage, comparison_key in new:
            self._drop_group(("key", run_id, stage))
            self._drop_group(("group", stage, comparison_key))
        self._seen = max(self._seen, last)
        if changed:
            self._generation += 1

    def _notified(self) -> bool:
        """Whether a notification is waiting (or the listening connection broke): no wait."""
        listener = self._listener
        if listener is None:
            return True
        try:
            readable, _, _ = select.select([listener.fileno()], [], [], 0)
            if not readable:
                return False
            pgconn = listener.pgconn
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                pass
        except (OSError, ValueError, psycopg.Error):
            self._drop_listener()
        return True

    def _listen(self) -> None:
        if self._listener is not None:
            return
        try:
            listener = psycopg.connect(self._address.conninfo, autocommit=True)
        except psycopg.Error:
            return  # every read catches up until listening works again
        try:
            listener.execute(f'LISTEN "{self._channel}"')
        except psycopg.Error:
            with contextlib.suppress(OSError, psycopg.Error):
                listener.close()
            return
        self._listener = listener

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError, psycopg.Error):
                listener.close()

    def _remember(self, key: _Key, groups: _Groups, found: NormalizedSnapshot | None) -> None:
        seq = None if found is None else found.snapshot_seq
        self._answers[key] = (seq, groups)
        self._answers.move_to_end(key)
        for group in groups:
            self._by_group.setdefault(group, set()).add(key)
        if found is not None and seq is not None:
            self._keep_snapshot(seq, found)
        while len(self._answers) > MAX_ENTRIES:
            oldest, (_, its_groups) = self._answers.popitem(last=False)
            for group in its_groups:
                self._by_group.get(group, set()).discard(oldest)

    def _keep_snapshot(self, seq: int, snap: NormalizedSnapshot) -> None:
        self._snapshots[seq] = snap
        self._snapshots.move_to_end(seq)
        while len(self._snapshots) > MAX_ENTRIES:
            self._snapshots.popitem(last=False)

    def _drop_group(self, group: _Group) -> None:
        for key in self._by_group.pop(group, ()):
            self._answers.pop(key, None)


# -- one cache per store per process ------------------------------------------------

_registry_lock = threading.Lock()
_registry: dict[tuple[int, str, str], tuple[ReadCache, int]] = {}


def acquire(address: Address, channel: str) -> ReadCache:
    """The cache of the store ``address`` names in this process (made on first use)."""
    key = (os.getpid(), address.conninfo, address.schema)
    with _registry_lock:
        cache, users = _registry.get(key, (None, 0))
        if cache is None:
            cache = ReadCache(address, channel)
        _registry[key] = (cache, users + 1)
        return cache


def release(address: Address, cache: ReadCache) -> None:
    """A handle is done with ``cache``: the last one closes it."""
    key = (os.getpid(), address.conninfo, address.schema)
    with _registry_lock:
        found, users = _registry.get(key, (None, 0))
        if found is not cache:
            return  # a cache of the parent process, inherited through fork: not ours
        if users > 1:
            _registry[key] = (cache, users - 1)
            return
        del _registry[key]
    cache.close()
