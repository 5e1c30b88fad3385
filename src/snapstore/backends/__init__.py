"""Where snapshots and histories live: the backend protocols, and which backend a target names.

``base`` holds the protocols; ``local`` (a directory of checked logs, the
default), ``memory`` and ``postgres`` implement them. A target is a path (the
local backend), a ``memory://`` or ``postgresql://`` URL, or an object that
opens handles itself (``base.StoreTarget`` / ``base.HistoryTarget``).
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, TypeGuard

from snapstore._errors import InvalidInputError
from snapstore.backends.base import HistoryTarget, StoreTarget
from snapstore.backends.local.backend import LocalHistoryTarget, LocalStoreTarget

if TYPE_CHECKING:
    from types import ModuleType

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# "scheme://": a URL, not a relative path (a path with "://" in it is given as
# a pathlib.Path, which is always a path).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(target: object) -> TypeGuard[str]:
    """Whether ``target`` is a URL (``scheme://...``) rather than a path."""
    return isinstance(target, str) and _URL.match(target) is not None


def store_target(target: object, *, read_only: bool) -> StoreTarget:
    """What ``SnapshotStore(target)`` opens: anything but a URL or a target is a path."""
    if is_url(target):
        if target.startswith(POSTGRES_SCHEMES):
            return _postgres().PostgresStoreTarget(target)  # type: ignore[no-any-return]
        # Imported here, as the next: most processes never open a memory:// target.
        from snapstore.backends.memory import store_named  # noqa: PLC0415

        return store_named(_memory_url(target, "store"), create=not read_only)
    if isinstance(target, StoreTarget):
        return target
    return LocalStoreTarget(target)  # type: ignore[arg-type]  # its path is checked there


def history_target(target: object, *, read_only: bool) -> HistoryTarget:
    """What ``IterationHistory(target)`` opens: anything but a URL or a target is a path."""
    if is_url(target):
        if target.startswith(POSTGRES_SCHEMES):
            return _postgres().PostgresHistoryTarget(target)  # type: ignore[no-any-return]
        from snapstore.backends.memory import history_named  # noqa: PLC0415

        return history_named(_memory_url(target, "history"), create=not read_only)
    if isinstance(target, HistoryTarget):
        return target
    return LocalHistoryTarget(target)  # type: ignore[arg-type]  # its path is checked there


def _postgres() -> ModuleType:
    """The PostgreSQL backend, imported when a URL first names it (it needs psycopg)."""
    from snapstore._extras import import_extra  # noqa: PLC0415 - a short process never needs it

    import_extra("psycopg", "postgres", "a postgresql:// store")  # says what to install
    return importlib.import_module("snapstore.backends.postgres.target")


def _memory_url(url: str, what: str) -> str:
    if not url.startswith("memory://"):
        scheme = url.split("://", 1)[0]
        raise InvalidInputError(
            f"no {what} backend for {scheme}:// URLs; a {what} is a path, a memory:// "
            "or a postgresql:// URL "
            "(give a path that looks like a URL as a pathlib.Path)"
        )
    return url
