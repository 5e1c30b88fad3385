"""The local directory backend as the public classes see it: targets and the store handle.

Above the checks (``repair``): a store handle verifies and repairs its
directory with them, and they open a bare ``LocalStore`` of their own to
rebuild the indices. They are imported by ``verify`` and ``repair`` only: a
process that saves and reads snapshots never runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapstore._errors import InvalidInputError
from snapstore._names import check_fs_path, check_history_name
from snapstore._options import check_flag, check_int_at_least
from snapstore.backends.local.checkpoint import INDEX_JSON, INDEX_PARQUET
from snapstore.backends.local.disk_index import INDEX_DB
from snapstore.backends.local.history import LocalHistory
from snapstore.backends.local.layout import BASELINE_LOG, HISTORY_DIR, QUARANTINE_DIR, SNAPSHOT_LOG
from snapstore.backends.local.store import LocalStore

if TYPE_CHECKING:
    import os

    from snapstore._options import Options
    from snapstore._report import CheckReport

DEFAULT_CHECKPOINT_EVERY = 10_000


class LocalSnapshotBackend(LocalStore):
    """A store directory: ``LocalStore``, its checks, and its histories under ``history/``."""

    def open_history(self, name: str) -> LocalHistory:
        return LocalHistory(
            self.root / HISTORY_DIR / f"{name}.jsonl",
            self.options,
            strict=self._strict,
            quarantine_dir=self.root / QUARANTINE_DIR,
        )

    def history_names(self) -> list[str]:
        # Opening a history creates its file: an empty one was opened, never written.
        return sorted(
            path.stem
            for path in (self.root / HISTORY_DIR).glob("*.jsonl")
            if _is_history_name(path.stem) and path.stat().st_size
        )

    def details(self) -> dict[str, str]:
        facts = {"directory": str(self.root)}
        for name in (SNAPSHOT_LOG, BASELINE_LOG, INDEX_DB, INDEX_PARQUET, INDEX_JSON):
            path = self.root / name
            facts[name] = f"{path.stat().st_size:,} bytes" if path.exists() else "absent"
        for name in (HISTORY_DIR, QUARANTINE_DIR):
            directory = self.root / name
            listed = directory.iterdir() if directory.is_dir() else iter(())
            files = [path for path in listed if path.is_file()]
            size = sum(path.stat().st_size for path in files)
            facts[f"{name}/"] = f"{len(files)} file(s), {size:,} bytes"
        facts["index"] = self._index.describe()
        return facts

    def verify(self) -> CheckReport:
        from snapstore.backends.local.repair import check_store  # noqa: PLC0415 - only checks need it

        return check_store(self.root, lock_timeout=self.options.lock_timeout)

    def repair(self, *, dry_run: bool) -> CheckReport:
        from snapstore.backends.local.repair import check_store  # noqa: PLC0415 - only checks need it

        report = check_store(
            self.root, repair=True, dry_run=dry_run, lock_timeout=self.options.lock_timeout
        )
        self.refresh()
        return report


def _is_history_name(name: str) -> bool:
    """Whether ``name`` is one a history could be given (not a stray file's)."""
    try:
        check_history_name(name)
    except InvalidInputError:
        return False
    return True


class LocalStoreTarget:
    """A store directory, named by its path: ``SnapshotStore(path)``.

    Its own options: ``checkpoint_every`` (a handle writes ``index.parquet``
    and ``snapshot_index.json`` every that many saves it sees) and ``strict``
    (refuse a file system whose locks or syncs cannot be trusted, instead of
    warning).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_fs_path("store path", path)

    def open_store(
        self,
        options: Options,
        *,
        checkpoint_every: object = DEFAULT_CHECKPOINT_EVERY,
        strict: object = False,
    ) -> LocalSnapshotBackend:
        return LocalSnapshotBackend(
            self.path,
            options,
            checkpoint_every=check_int_at_least("checkpoint_every", checkpoint_every, 1),
            strict=check_flag("strict", strict),
        )


class LocalHistoryTarget:
    """A history file, named by its path (``.jsonl``): ``IterationHistory(path)``.

    Its own options: ``tolerant`` (skip damaged lines instead of raising),
    ``strict`` (as for a store) and ``quarantine_dir`` (where repair and
    recovery move damaged bytes; beside the file by default).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_fs_path("history path", path)

    def open_history(
        self,
        options: Options,
        *,
        tolerant: object = False,
        strict: object = False,
        quarantine_dir: str | os.PathLike[str] | None = None,
    ) -> LocalHistory:
        return LocalHistory(
            self.path,
            options,
            tolerant=check_flag("tolerant", tolerant),
            strict=check_flag("strict", strict),
            quarantine_dir=(
                None if quarantine_dir is None else check_fs_path("quarantine_dir", quarantine_dir)
            ),
        )
