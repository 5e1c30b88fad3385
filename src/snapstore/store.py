"""SnapshotStore: every stage of every run, in commit order, with comparable runs and baselines."""

from __future__ import annotations

import contextlib
import fnmatch
import re
import threading
import warnings
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Self

from snapstore import _fork
from snapstore._errors import ClosedError, InvalidInputError, NotFoundError, ReadOnlyError
from snapstore._names import check_fs_path, check_history_name, check_stage, check_text
from snapstore._options import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_MAX_RECORD_BYTES,
    Durability,
    check_flag,
    check_seq,
    checked_options,
)
from snapstore._values import canonical_json
from snapstore.backends import store_target
from snapstore.history import IterationHistory
from snapstore.snapshot import NormalizedSnapshot, encode_payload

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator
    from pathlib import Path
    from types import TracebackType

    import pandas as pd
    import pyarrow as pa

    from snapstore._report import CheckReport, StoreInfo
    from snapstore.backends.base import StoreTarget
    from snapstore.diff import SnapshotDiff
    from snapstore.sync import SyncReport

# How many of its most recently used histories a store keeps open (a local
# history holds two descriptors) when nobody else holds them.
RECENT_HISTORIES = 32
# What makes a run name in to_arrow(run=...) a glob rather than a name.
_GLOB = re.compile(r"[*?\[]")


class SnapshotStore:
    """A store of snapshots: one durable commit log, baseline pins and named histories.

    ``save_snapshot`` gives each snapshot the next ``snapshot_seq`` (1, 2, 3, ...
    per store: unique across threads and processes, gap-free, never reused) and,
    with the default ``durability="fsync"``, returns only once it is on stable
    storage. Every answer about order ("latest", "previous comparable") comes
    from ``snapshot_seq``, never from a clock or a file's mtime.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | StoreTarget,
        *,
        durability: Durability = "fsync",
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        read_only: bool = False,
        **backend_options: Any,
    ) -> None:
        """Open the store ``target`` names: a directory path, a ``memory://`` URL, or a target.

        ``backend_options`` are those of the target's backend: for a
        directory, ``checkpoint_every`` and ``strict`` (see docs/api.md).
        """
        self._options = options = checked_options(
            durability, lock_timeout, max_record_bytes, read_only
        )
        self._backend = store_target(target, read_only=options.read_only).open_store(
            options, **backend_options
        )
        self.durability: Durability = options.durability
        self.read_only = options.read_only
        self._opened_at = _fork.forks()
        # The histories handed out: the most recently used few kept open here,
        # any other one open while its caller still holds it (see history()).
        self._histories_lock = threading.Lock()
        self._recent_histories: OrderedDict[str, IterationHistory] = OrderedDict()
        self._histories: weakref.WeakValueDictionary[str, IterationHistory] = (
            weakref.WeakValueDictionary()
        )
        self._closed = False

    @property
    def identity(self) -> str:
        """What tells this store from every other: the origin copies made from it name."""
        self._check_open()
        return self._backend.identity

    @property
    def root(self) -> Path:
        """The directory the store is kept in (the local backend's; no other has one)."""
        path = self._backend.path
        if path is None:
            raise AttributeError(f"{self._backend.location} is not kept in files: it has no root")
        return path

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
            payload = encode_payload(snap, self._options.max_record_bytes)
            self._check_not_read_only()
            return self._backend.save(snap, payload)
        stored = None
        if snap.snapshot_seq is not None:
            stored = self._backend.get_by_seq(snap.snapshot_seq)
        # Compared as stored (JSON), not with ==: a NaN read back is not == to itself.
        if stored is not None and _as_stored(stored) == _as_stored(snap):
            return stored
        raise InvalidInputError(
            f"snapshot {snap.run_id}:{snap.stage} carries snapshot_seq {snap.snapshot_seq} and "
            f"created_at {snap.created_at}, but {self._backend.location} stores no such snapshot: "
            "a snapshot gets both from save_snapshot. To save its content as a new version, save "
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
        assert snap.comparison_key is not None
        existing = self._backend.baseline(snap.stage, snap.comparison_key)
        if existing is not None:
            return existing
        payload = None if snap.saved else encode_payload(snap, self._options.max_record_bytes)
        self._check_not_read_only()
        return self._backend.establish_baseline(snap, payload)

    def set_baseline(self, snap: NormalizedSnapshot) -> None:
        """Pin a saved snapshot as the baseline of its group, replacing the current pin."""
        self._check_open()
        snap = self._checked(snap)  # first: anything but a snapshot gets a typed error
        if not snap.saved:
            raise InvalidInputError("set_baseline needs a saved snapshot (save_snapshot first)")
        self._check_not_read_only()
        self._backend.pin_baseline(snap)

    def sync_from(self, source: SnapshotStore) -> SyncReport:
        """Copy what this store lacks of ``source``, exactly once (see :mod:`snapstore.sync`).

        Snapshots get seqs of this store; each copy keeps its origin (the
        source's identity and seq: ``copies_from``). Baseline pins and
        histories follow; conflicting pins and keyed records are reported in
        the returned SyncReport, never replaced. Safe to interrupt and rerun.
        """
        self._check_open()
        if not isinstance(source, SnapshotStore):
            raise InvalidInputError(f"sync_from needs a SnapshotStore, not {type(source).__name__}")
        source._check_open()
        self._check_not_read_only()
        from snapstore.sync import sync_stores  # noqa: PLC0415 - most processes never sync

        return sync_stores(
            source._backend,
            self._backend,
            max_record_bytes=self._options.max_record_bytes,
        )

    def copies_from(self, identity: str) -> dict[int, int]:
        """The snapshots copied here from the store ``identity``: its seq -> this store's seq."""
        self._check_open()
        return self._backend.copies(check_text("identity", identity))

    # -- reading -------------------------------------------------------------

    def get(self, run_id: str, stage: str) -> NormalizedSnapshot | None:
        """The latest version of ``(run_id, stage)``, or None."""
        self._check_open()
        check_text("run_id", run_id)
        check_stage(stage)
        return self._backend.get_latest(run_id, stage)

    def get_by_seq(self, seq: int) -> NormalizedSnapshot:
        """The snapshot with ``snapshot_seq == seq``; NotFoundError (a KeyError) if none."""
        self._check_open()
        check_seq(seq)
        found = self._backend.get_by_seq(seq)
        if found is None:
            raise NotFoundError(f"{self._backend.location} has no snapshot with snapshot_seq {seq}")
        return found

    def versions(self, run_id: str, stage: str) -> list[NormalizedSnapshot]:
        """Every version of ``(run_id, stage)``, oldest first."""
        self._check_open()
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
        return self._backend.snapshots(run_id, stage)

    def __len__(self) -> int:
        self._check_open()
        return self._backend.count()

    def find_previous_comparable(self, snap: NormalizedSnapshot) -> NormalizedSnapshot | None:
        """The latest earlier snapshot of the same stage and comparison key from another run.

        "Before" is by ``snapshot_seq``: below snap's own seq if it is saved,
        otherwise among everything stored.
        """
        self._check_open()
        snap = self._checked(snap)
        assert snap.comparison_key is not None
        return self._backend.previous_comparable(
            snap.stage, snap.comparison_key, snap.run_id, snap.snapshot_seq
        )

    def baseline(self, stage: str, comparison_key: str) -> NormalizedSnapshot | None:
        """The pinned baseline of ``(stage, comparison_key)``, or None."""
        self._check_open()
        return self._backend.baseline(
            check_stage(stage), check_text("comparison_key", comparison_key)
        )

    def history(self, name: str) -> IterationHistory:
        """The IterationHistory ``name`` stored in this store (closed with the store)."""
        self._check_open()
        name = check_history_name(name)
        # A local history holds two descriptors (its file and its lock), so a
        # store with thousands of histories cannot keep them all open: it
        # keeps the most recently used ones, and one that drops out of them
        # is closed once its caller lets go of it too (at once: a history
        # handle holds no reference cycle). A handle that is still held stays
        # the one handed out, so one process writes a history through one
        # handle and one group commit.
        with self._histories_lock:
            history = self._histories.get(name)
            if history is None or history.closed:
                backend = self._backend.open_history(name)
                history = IterationHistory._over(backend, self._options)  # noqa: SLF001 - the store's own
                self._histories[name] = history
            self._recent_histories[name] = history
            self._recent_histories.move_to_end(name)
            if len(self._recent_histories) > RECENT_HISTORIES:
                self._recent_histories.popitem(last=False)
        return history

    def baselines(self) -> list[NormalizedSnapshot]:
        """Every pinned baseline, one per ``(stage, comparison_key)`` group, in that order."""
        self._check_open()
        return self._backend.baselines()

    def history_names(self) -> list[str]:
        """The names of the store's histories (those written at least once), sorted."""
        self._check_open()
        return self._backend.history_names()

    def info(self) -> StoreInfo:
        """Counts, the seq range, each history's length, and the backend's own facts."""
        from snapstore._report import StoreInfo  # noqa: PLC0415 - see snapstore._LAZY

        self._check_open()
        count = len(self)
        return StoreInfo(
            location=self._backend.location,
            snapshots=count,
            seq_range=(1, count) if count else None,
            baselines=len(self._backend.baselines()),
            histories={name: len(self.history(name)) for name in self.history_names()},
            details=self._backend.details(),
        )

    # -- comparing -----------------------------------------------------------

    def diff_previous(self, snap: NormalizedSnapshot) -> SnapshotDiff | None:
        """How ``snap`` differs from its previous comparable run; None if it has none."""
        return _diff(self.find_previous_comparable(snap), snap)

    def diff_baseline(self, snap: NormalizedSnapshot) -> SnapshotDiff | None:
        """How ``snap`` differs from its group's pinned baseline; None if none is pinned."""
        snap = self._checked(snap)
        assert snap.comparison_key is not None
        return _diff(self.baseline(snap.stage, snap.comparison_key), snap)

    # -- tables --------------------------------------------------------------

    def to_arrow(
        self,
        *,
        stage: str | None = None,
        run: str | None = None,
        comparison_key: str | None = None,
        latest_only: bool = False,
        where: str | Iterable[str] = (),
    ) -> pa.Table:
        """Snapshots as an Arrow table: one typed column per metric, config and data field.

        Every snapshot, in seq order, or those of one ``stage``, of the runs
        matching the glob ``run``, of one ``comparison_key``; with
        ``latest_only``, only the latest version of each ``(run_id, stage)``
        (``comparison_key`` and ``where`` are then asked of those latest
        versions). ``where`` holds conditions such as ``"metrics.auc > 0.8"``
        that a row must all meet. Columns and types: docs/api.md, "Tables".
        """
        from snapstore._tables import snapshot_table  # noqa: PLC0415 - only tables need it

        self._check_open()
        check_flag("latest_only", latest_only)
        if stage is not None:
            check_stage(stage)
        if comparison_key is not None:
            check_text("comparison_key", comparison_key)
        chosen = self.snapshots(
            # An exact run name is looked up; a glob is matched against each run.
            run_id=run if run is None or not _GLOB.search(check_text("run", run)) else None,
            stage=stage,
        )
        if run is not None:
            chosen = (snap for snap in chosen if fnmatch.fnmatchcase(snap.run_id, run))
        if latest_only:
            latest = {(snap.run_id, snap.stage): snap for snap in chosen}
            chosen = iter(sorted(latest.values(), key=_seq))
        if comparison_key is not None:
            # After latest_only, as the conditions are: a version superseded by
            # one in another group is not the latest of its run and stage.
            chosen = (snap for snap in chosen if snap.comparison_key == comparison_key)
        pinned = {snap.snapshot_seq for snap in self._backend.baselines()}
        return snapshot_table(chosen, {seq for seq in pinned if seq is not None}, where)

    def to_pandas(self, **selection: Any) -> pd.DataFrame:
        """``to_arrow(**selection)`` as a pandas DataFrame (needs the ``pandas`` extra)."""
        from snapstore._tables import to_pandas  # noqa: PLC0415 - only tables need it

        return to_pandas(self.to_arrow(**selection))

    # -- checking ------------------------------------------------------------

    def verify(self) -> CheckReport:
        """Check every log line, every pin, every history and the derived indices."""
        self._check_open()
        return self._backend.verify()

    def repair(self, *, dry_run: bool = False) -> CheckReport:
        """Quarantine damage, keep every valid record, rebuild the derived indices."""
        self._check_open()
        check_flag("dry_run", dry_run)
        if self.read_only:
            raise ReadOnlyError(
                f"{self._backend.location} was opened with read_only=True: it is not repaired"
            )
        return self._backend.repair(dry_run=dry_run)

    # -- lifecycle -----------------------------------------------------------

    def refresh(self) -> None:
        """Take in snapshots and pins other processes committed since the last look."""
        self._check_open()
        self._backend.refresh()

    def checkpoint(self) -> None:
        """Write the checkpoint now: the derived files for analytics (also every N saves).

        For a backend that keeps no derived files (memory), nothing to do.
        """
        self._check_open()
        self._check_not_read_only()
        self._backend.checkpoint()

    def close(self) -> None:
        """Finish the backend's work (the local one's index file), then release every file.

        Idempotent. A handle inherited through ``fork()`` only releases its
        descriptors. A second call releases whatever a first one, cut short by
        an interrupt, left open (releasing is idempotent), and finishes nothing.
        """
        finishing = not self._closed and self._opened_at == _fork.forks()
        self._closed = True
        self._release(finish=finishing)

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
            self._release(finish=False)

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
        return f"SnapshotStore({self._backend.location!r})"

    @classmethod
    def import_legacy(
        cls, source_dir: str | os.PathLike[str], root: str | os.PathLike[str], **options: Any
    ) -> Self:
        """Migrate an older ``snapshot_index.json`` layout into the store at ``root``.

        See :mod:`snapstore.backends.local.legacy`; the source is only read.
        """
        # Imported here: it needs the logging module, which nothing else does.
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

    def _release(self, *, finish: bool) -> None:
        """Close the histories handed out, then the backend (even when one of them fails)."""
        with contextlib.ExitStack() as closing:
            closing.callback(self._backend.close, finish=finish)
            for history in list(self._histories.values()):
                closing.callback(history.close)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self} is closed")
        _fork.check_not_inherited(self._opened_at, self)

    def _check_not_read_only(self) -> None:
        if self.read_only:
            raise ReadOnlyError(
                f"{self._backend.location} was opened with read_only=True: it is not written"
            )


def _as_stored(snap: NormalizedSnapshot) -> bytes:
    return canonical_json(snap.to_dict(), "snapshot")  # see canonical_json: not ==


def _seq(snap: NormalizedSnapshot) -> int:
    assert snap.snapshot_seq is not None  # a stored snapshot
    return snap.snapshot_seq


def _diff(before: NormalizedSnapshot | None, after: NormalizedSnapshot) -> SnapshotDiff | None:
    from snapstore.diff import diff_snapshots  # noqa: PLC0415 - see snapstore._LAZY

    return None if before is None else diff_snapshots(before, after)
