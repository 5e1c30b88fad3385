"""The shipped store machine on a store directory, with lost and stale checkpoints too.

Between any two steps, every answer the store gives must be the model's, also
across reopening, lost or stale checkpoints, and saves made through another
handle.
"""

from __future__ import annotations

import os
import shutil

from hypothesis import settings
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import precondition, rule

from snapstore import SnapshotStore
from snapstore.backends.local import store as local_store
from snapstore.testing.machines import SnapshotStoreMachine
from store_fixtures import DERIVED_FILES, INDEX_FILES, remove_checkpoint, scratch_dir

# The checkpoint's files and the index file: what a crash could leave older than the log.
STASHED = (*DERIVED_FILES, INDEX_FILES[0])


def machine_settings() -> settings:
    try:  # the profile the test run selected, when the conftest registers profiles
        chosen = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    except InvalidArgument:
        chosen = settings(max_examples=40, stateful_step_count=20)
    # Every step writes real files: a deadline would only measure the disk.
    return settings(chosen, deadline=None)


class LocalStoreMachine(SnapshotStoreMachine):
    """The shipped machine on a store directory, and what only a directory has: checkpoints."""

    def __init__(self) -> None:
        # Every save goes to the index file, and every reopening catches it up
        # in bulk, however small the store.
        self.tuned = (local_store.FLUSH_ROWS, local_store.BULK_CATCH_UP_BYTES)
        local_store.FLUSH_ROWS, local_store.BULK_CATCH_UP_BYTES = 1, 0
        self.root = scratch_dir("snapstore-machine-") / "store"
        self.stashed: dict[str, bytes] | None = None
        super().__init__()

    def open_store(self) -> SnapshotStore:
        return SnapshotStore(self.root, durability="write")

    @rule()
    def reopen_without_checkpoint(self) -> None:
        self.store.close()
        remove_checkpoint(self.root)
        self.store = self.open_store()

    @precondition(lambda self: (self.root / INDEX_FILES[0]).exists())
    @rule()
    def stash_checkpoint(self) -> None:
        # Taken with no connection open (between two handles), the index
        # file is whole: SQLite moved its log into it at the last close.
        self.store.close()
        self.stashed = {
            name: (self.root / name).read_bytes() for name in STASHED if (self.root / name).exists()
        }
        self.store = self.open_store()

    @precondition(lambda self: self.stashed is not None)
    @rule()
    def reopen_with_the_stashed_checkpoint(self) -> None:
        self.store.close()
        assert self.stashed is not None
        for name, data in self.stashed.items():
            (self.root / name).write_bytes(data)
        self.store = self.open_store()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self.root.parent)
            local_store.FLUSH_ROWS, local_store.BULK_CATCH_UP_BYTES = self.tuned


LocalStoreMachine.TestCase.settings = machine_settings()
TestLocalStoreMachine = LocalStoreMachine.TestCase
