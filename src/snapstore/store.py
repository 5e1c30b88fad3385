"""SnapshotStore: every stage of every run, in commit order, with comparable runs and baselines."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any, Self

from snapstore import _fork
from snapstore._errors import ClosedError, InvalidInputError, NotFoundError, ReadOnlyError
from snapstore._log.checked import Durability, check_seq, check_write_options
from snapstore._log.record import DEFAULT_MAX_RECORD_BYTES, canonical_json
from snapstore._names import check_fs_path, check_history_name, check_stage, check_text
from snapstore.backends.local.repair import check_store
from snapstore.backends.local.store import LocalBackend
from snapstore.history import DEFAULT_LOCK_TIMEOUT
from snapstore.snapshot import NormalizedSnapshot

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator
    from types import TracebackType

    import pandas as pd
    import pyarrow as pa

    from snapstore._report import CheckReport
    from snapstore.backends.base import Backend
    from snapstore.history import IterationHistory

DEFAULT_CHECKPOINT_EVERY = 10_000


class SnapshotStore:
    """A directory of snapshots: one durable commit log plus derived indices.

    ``save_snapshot`` gives each snapshot the next ``snapshot_seq`` (1, 2, 3, ...
    per store: unique across threads and processes, gap-free, never reused) and,
    with the default ``durability="fsync"``, returns only once it is on stable
    storage. Every answer about order ("latest", "previous comparable") comes
    from ``snapshot_seq``, never from a clock or a file's mtime.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        durability: Durability = "fsync",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        strict: bool = False,
        read_only: bool = False,
    ) -> None:
        check_write_options(
            durability,
            lock_timeout,
            max_record_bytes,
            strict=strict,
            read_only=read_only,
            checkpoint_every=checkpoint_every,
        )
        self.root = check_fs_path("store path", root)
        self.durability: Durability = durability
        self.read_only = read_only
        self._opened_at = _fork.forks()
        self._backend: Backend = LocalBackend(
            self.root,
            durability=durability,
            lock_timeout=lock_timeout,
            max_record_bytes=max_record_bytes,
            checkpoint_every=checkpoint_every,
            strict=strict,
            read_only=read_only,
        )
        self._closed = False

    # -- writing -------------------------------------------------------------

    def save_snapshot(self, snap: NormalizedSnapshot) -> NormalizedSnapshot:
        """Commit ``snap`` as the newest version of ``(run_id, stage)``.

        Returns a copy with ``snapshot_seq``, ``created_at`` and ``comparison_key``
        set. Saving content identical to the latest version of that key returns
        that version and writes nothing, so retries are idempotent.

        A snapshot that carries a ``snapshot_seq`` (or a ``created_at``) of its
        own is one a store returned: saving it again returns the stored
        snapshot unchanged if it is the one stored under that seq, and raises
        InvalidInputError otherwise, never saving its content under a seq
        and time it did not get.
        """
        self._check_open()
        snap = self._checked(snap)
        if snap.snapshot_seq is None and snap.created_at is None:
            return self._backend.save(snap)
        stored = None
        if snap.snapshot_seq is not None:
            self._backend.refresh(pins=False)
            stored = self._backend.get_by_seq(snap.snapshot_seq)
        # Compared as stored (JSON), not with ==: a NaN read back is not == to itself.
        if stored is not None and _as_stored(stored) == _as_stored(snap):
            return stored
        raise InvalidInputError(
            f"snapshot {snap.run_id}:{snap.stage} carries snapshot_seq {snap.snapshot_seq} and "
            f"created_at {snap.created_at}, but {self.root} stores no such snapshot: a snapshot "
            "gets both from save_snapshot. To save its content as a new version, save "
            "dataclasses.replace(snap, snapshot_seq=None, created_at=None)"
        )

    def get_or_establish_baseline(self, snap: NormalizedSnapshot) -> NormalizedSnapshot:
        """The baseline of snap's ``(stage, comparison_key)``; pins ``snap`` if there is none.

        Only when ``snap`` becomes the baseline is an unsaved ``snap`` saved
        (first, then pinned): asking for the baseline of a group that has one
        writes nothing. The decision is taken under the writer lock: processes
        racing on an empty group all get the same answer.
        """
        self._check_open()
        snap = self._checked(snap)
        # Another handle may have pinned (or re-pinned) the group since we last looked.
        self._backend.refresh()
        assert snap.comparison_key is not None
        existing = self._backend.baseline(snap.stage, snap.comparison_key)
        return existing if existing is not None else self._backend.establish_baseline(snap)

    def set_baseline(self, snap: NormalizedSnapshot) -> None:
        """Pin a saved snapshot as the baseline of its group, replacing the current pin."""
        self._check_open()
        snap = self._checked(snap)  # first: anything but a snapshot gets a typed error
        if not snap.saved:
            raise InvalidInputError("set_baseline needs a saved snapshot (save_snapshot first)")
        self._backend.pin_baseline(snap)

    # -- reading -------------------------------------------------------------

    def get(self, run_id: str, stage: str) -> NormalizedSnapshot | None:
        """The latest version of ``(run_id, stage)``, or None."""
        self._check_open()
        check_text("run_id", run_id)
        check_stage(stage)
        # Refresh first, not only on a miss: another process may have saved a
        # newer version of a key this handle already knows, and "latest" must
        # agree with versions(). (get_by_seq may refresh on a miss only: the
        # snapshot a seq names never changes.) Reads of snapshots need only
        # the snapshot log: no stat of the pin log on this hot path.
        self._backend.refresh(pins=False)
        return self._backend.get_latest(run_id, stage)

    def get_by_seq(self, seq: int) -> NormalizedSnapshot:
        """The snapshot with ``snapshot_seq == seq``; NotFoundError (a KeyError) if none."""
        self._check_open()
        check_seq(seq)
        found = self._backend.get_by_seq(seq)
        if found is None:
            self._backend.refresh(pins=False)
            found = self._backend.get_by_seq(seq)
        if found is None:
            raise NotFoundError(f"{self.root} has no snapshot with snapshot_seq {seq}")
        return found

    def versions(self, run_id: str, stage: str) -> list[NormalizedSnapshot]:
        """Every version of ``(run_id, stage)``, oldest first."""
        self._check_open()
        self._backend.refresh(pins=False)
        return self._backend.versions(check_text("run_id", run_id), check_stage(stage))

    def snapshots(
        self, *, run_id: str | None = None, stage: str | None = None
    ) -> Iterator[NormalizedSnapshot]:
        """Snapshots in seq order, optionally only one run's or one stage's."""
        self._check_open()
        if run_id is not None:
            check_text("run_id", run_id)
        if stage is not None:
            check_stage(stage)
        self._backend.refresh(pins=False)
        return self._backend.snapshots(run_id, stage)

    def __len__(self) -> int:
        self._check_open()
        self._backend.refresh(pins=False)
        return self._backend.count()

    def find_previous_comparable(self, snap: NormalizedSnapshot) -> NormalizedSnapshot | None:
        """The latest earlier snapshot of the same stage and comparison key from another run.

        "Before" is by ``snapshot_seq``: below snap's own seq if it is saved,
        otherwise among everything stored.
        """
        self._check_open()
        snap = self._checked(snap)
        assert snap.comparison_key is not None
        self._backend.refresh(pins=False)
        return self._backend.previous_comparable(
            snap.stage, snap.comparison_key, snap.run_id, snap.snapshot_seq
        )

    def baseline(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None:
        """The pinned baseline of ``(stage, comparison_key)``, or None."""
        self._check_open()
        self._backend.refresh()
        return self._backend.baseline(
            check_stage(stage), check_text("comparison_key", comparison_key)
        )

    def history(self, name: str) -> IterationHistory:
        """The IterationHistory ``name`` stored in this store (closed with the store)."""
        self._check_open()
        return self._backend.history(check_history_name(name))

    # -- exports -------------------------------------------------------------

    def to_arrow(self) -> pa.Table:
        """Every snapshot as an Arrow table; metrics, config and data as JSON text."""
        import orjson  # noqa: PLC0415
        import pyarrow as pa  # noqa: PLC0415 - heavy; only exports need it

        rows: dict[str, list[Any]] = {
            name: []
            for name in (
                "snapshot_seq",
                "run_id",
                "stage",
                "comparison_key",
                "created_at",
                "metrics",
                "config",
                "data",
            )
        }
        for snap in self.snapshots():
            rows["snapshot_seq"].append(snap.snapshot_seq)
            rows["run_id"].append(snap.run_id)
            rows["stage"].append(snap.stage)
            rows["comparison_key"].append(snap.comparison_key)
            rows["created_at"].append(snap.created_at)
            for name in ("metrics", "config", "data"):
                rows[name].append(orjson.dumps(dict(getattr(snap, name))).decode())
        schema = pa.schema(
            [
                ("snapshot_seq", pa.int64()),
                ("run_id", pa.string()),
                ("stage", pa.string()),
                ("comparison_key", pa.string()),
                ("created_at", pa.timestamp("us", tz="UTC")),
                ("metrics", pa.string()),
                ("config", pa.string()),
                ("data", pa.string()),
            ]
        )
        return pa.table(rows, schema=schema)

    def to_pandas(self) -> pd.DataFrame:
        """Every snapshot as a pandas DataFrame (needs the ``pandas`` extra)."""
        return self.to_arrow().to_pandas()

    # -- checking ------------------------------------------------------------

    def verify(self) -> CheckReport:
        """Check every log line, every pin, every history and the derived indices."""
        self._check_open()
        return check_store(self.root)

    def repair(self, *, dry_run: bool = False) -> CheckReport:
        """Quarantine damage, keep every valid record, rebuild the derived indices."""
        self._check_open()
        if self.read_only:
            raise ReadOnlyError(f"{self.root} was opened with read_only=True: it is not repaired")
        report = check_store(self.root, repair=True, dry_run=dry_run)
        self._backend.refresh()
        return report

    # -- lifecycle -----------------------------------------------------------

    def refresh(self) -> None:
        """Take in snapshots and pins other processes committed since the last look."""
        self._check_open()
        self._backend.refresh()

    def checkpoint(self) -> None:
        """Write the derived indices now (they are also written every N saves and on close)."""
        self._check_open()
        self._backend.checkpoint()

    def close(self) -> None:
        """Checkpoint if anything is new, then release every file. Idempotent.

        A handle inherited through ``fork()`` only releases its descriptors.
        A second call releases whatever a first one, cut short by an
        interrupt, left open (releasing is idempotent), and checkpoints nothing.
        """
        finishing = not self._closed
        self._closed = True
        self._backend.close(finish=finishing and self._opened_at == _fork.forks())

    def __del__(self) -> None:
        # Like a file: a store reclaimed while open gives its descriptors and
        # locks back, and says it was not closed. No checkpoint here (a cache,
        # and the collector may run anywhere); a copy inherited through fork()
        # is the parent's to close. A closed one releases again (idempotent):
        # its close may have been cut short by an interrupt.
        if not hasattr(self, "_closed"):
            return  # __init__ failed before there was anything to close
        if not self._closed and self._opened_at == _fork.forks():
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
        self._closed = True
        with contextlib.suppress(Exception):
            self._backend.close(finish=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SnapshotStore({str(self.root)!r})"

    @classmethod
    def import_legacy(
        cls, source_dir: str | os.PathLike[str], root: str | os.PathLike[str], **options: Any
    ) -> Self:
        """Migrate an older ``snapshot_index.json`` layout into the store at ``root``.

        See :func:`snapstore.backends.local.legacy.import_legacy`; the source is only read.
        """
        from snapstore.backends.local.legacy import read_legacy  # noqa: PLC0415

        snaps = read_legacy(check_fs_path("source_dir", source_dir))
        store = cls(root, **options)
        try:
            for snap in snaps:
                store.save_snapshot(snap)
        except BaseException:
            store.close()
            raise
        return store

    # -- internals -----------------------------------------------------------

    def _checked(self, snap: NormalizedSnapshot) -> NormalizedSnapshot:
        if not isinstance(snap, NormalizedSnapshot):
            raise InvalidInputError(f"expected a NormalizedSnapshot, not {type(snap).__name__}")
        return snap.with_comparison_key()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self} is closed")
        _fork.check_not_inherited(self._opened_at, self)


def _as_stored(snap: NormalizedSnapshot) -> bytes:
    return canonical_json(snap.to_dict(), "snapshot")  # see canonical_json: not ==
