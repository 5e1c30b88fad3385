"""The synced mark: how far a log is known to be on stable storage, shared by its processes.

Durable before visible: no handle may count, return, pin or build on a record
before it is on stable storage, whichever process wrote it. A writer syncs its
own lines before it acknowledges them, but another process sees them in the
page cache as soon as they are written, and their writer may die (or run with
``durability="write"``) before it syncs. So a handle that takes in lines it did
not write first asks the mark whether they are durable; when it cannot tell,
it syncs the file itself, which makes every byte written so far durable, and
only then takes them in. PostgreSQL's flush pointer plays the same part.

The mark of a log is a fixed slot in the log's lock file: the log's identity
(device, inode), the end of the synced prefix and a CRC-32 of both. Only the
writer-lock holder writes it: after its data sync returned (never before: a
mark ahead of the disk would let readers take in bytes a power cut removes),
and lowered before any truncation, so it never claims bytes the file may not
hold. The lock file is never synced: after a power loss the mark may be stale,
zeroed or garbage, and every such mark only claims less (the CRC rejects a torn
slot), which costs a sync, never a record. Publishing one costs a ``pwrite``
to the page cache; a handle that takes in nothing new never reads it.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snapstore._log.lock import WriterLock
    from snapstore._log.seam import FileSystem

_BODY = struct.Struct("<QQQ")  # device, inode, synced end
_CRC = struct.Struct("<I")
_SLOT_BYTES = 32  # the body and its CRC, padded: one slot never straddles two

# The slots of the logs that share one lock file (a store's snapshot and pin logs).
SNAPSHOT_SLOT = 0
BASELINE_SLOT = 1


class SyncedMark:
    """The synced mark of one log: its slot in the log's lock file."""

    __slots__ = ("_fs", "_lock", "_offset")

    def __init__(self, fs: FileSystem, lock: WriterLock, slot: int = 0) -> None:
        self._fs = fs
        self._lock = lock
        self._offset = slot * _SLOT_BYTES

    def covers(self, identity: tuple[int, int], end: int) -> bool:
        """Whether bytes ``[0, end)`` of the file ``identity`` are known to be durable."""
        if self._lock.fd < 0:
            return False  # no lock file (a read-only handle's): nothing was published
        slot = self._fs.read(self._lock.fd, _BODY.size + _CRC.size, self._offset)
        if len(slot) < _BODY.size + _CRC.size:
            return False  # never published (a new lock file)
        body = slot[: _BODY.size]
        if _CRC.unpack_from(slot, _BODY.size)[0] != zlib.crc32(body):
            return False  # torn by a concurrent publish, or left half-written by a crash
        device, inode, synced = _BODY.unpack(body)
        return (device, inode) == identity and synced >= end

    def publish(self, identity: tuple[int, int], end: int) -> None:
        """Record that ``[0, end)`` of ``identity`` is durable (or lower the mark to ``end``).

        The caller holds the writer lock, so publishes never race each other.
        """
        body = _BODY.pack(*identity, end)
        self._fs.write_at(self._lock.fd, body + _CRC.pack(zlib.crc32(body)), self._offset)
