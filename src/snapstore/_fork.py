"""Handles belong to the process that opened them.

After ``fork()`` a child holds copies of its parent's handles taken at one
instant, while other threads of the parent may have been inside them: holding
a thread lock, leading a group commit, halfway through updating an index.
Those threads do not exist in the child, so nothing there would ever release
what they held, and the child's first write would wait forever. A copy cannot
be repaired from the inside either: which of its states are half-done is
exactly what the child cannot know.

So a handle remembers how many forks its process had been through when it
was opened (``forks()``); every call of a handle opened before a fork raises
InheritedHandleError at once, saying to open a new handle. Closing such a copy
gives back its descriptors and nothing else: it takes no lock, writes no
checkpoint and never unlocks, since an ``flock`` belongs to the open file
description that the parent still shares.
"""

from __future__ import annotations

import os
import threading

from snapstore._errors import InheritedHandleError

_forks = 0

# Held around work that a fork must not cut in two: pyarrow's (a checkpoint
# written or read). Its allocator and thread pools take locks of their own,
# and a child forked while another thread holds one deadlocks at its first
# allocation, even in a store of its own. A fork waits here until no such work
# is running (at most one checkpoint); the child starts with it free.
arrow_barrier = threading.Lock()
# Held around each write transaction on an index file. SQLite records, per
# process, which locks the process's connections hold on a file; a child
# forked inside a parent thread's write transaction inherits the record but
# not the locks, and its own connection would wait for a lock nobody can
# release. A fork waits here until no such transaction is open.
index_barrier = threading.Lock()
# Taken in this order by the thread that forks, released after in both processes.
_BARRIERS = (arrow_barrier, index_barrier)


def forks() -> int:
    """How many forks this process's line has been through since snapstore was imported."""
    return _forks


def check_not_inherited(opened_at: int, what: object) -> None:
    """Raise InheritedHandleError if ``what`` was opened (at ``opened_at`` forks) before a fork."""
    if opened_at != _forks:
        raise InheritedHandleError(
            f"{what} was opened in the parent of this forked process (pid {os.getpid()}); "
            "a handle cannot be used across fork(): open a new one in this process"
        )


def _before_fork() -> None:
    for barrier in _BARRIERS:
        barrier.acquire()


def _release_barriers() -> None:
    for barrier in reversed(_BARRIERS):
        barrier.release()


def _in_child() -> None:
    global _forks  # noqa: PLW0603 - the one counter every handle compares with
    _forks += 1
    _release_barriers()  # taken by the thread that forked, the child's only one


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_release_barriers, after_in_child=_in_child
    )
