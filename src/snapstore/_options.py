"""The options every handle takes, whatever its backend, and the checks of call arguments.

Checked once, by the public classes, before any backend is opened: exact
types, because a bool is an int to Python, but ``lock_timeout=True`` is a
mistake, not a number, and a string given for a flag would be taken as true
whatever it says. Options that only one backend understands (the local
directory's ``checkpoint_every``, say) are that backend's to check.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, TypeGuard

from snapstore._errors import InvalidInputError

Durability = Literal["fsync", "write"]
DURABILITY_MODES: tuple[Durability, ...] = ("fsync", "write")
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024


class Options(NamedTuple):
    """What a handle asks of its backend.

    ``durability``: "fsync" acknowledges a write once it is on stable storage;
    "write" once it survives the process (not the machine). ``lock_timeout``:
    how long one wait for the writer lock may take. ``read_only``: nothing is
    created or written.
    """

    durability: Durability = "fsync"
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    read_only: bool = False


def checked_options(
    durability: object, lock_timeout: object, max_record_bytes: object, read_only: object
) -> Options:
    """The options of a history or store handle, refused before anything is opened."""
    if durability not in DURABILITY_MODES:
        raise InvalidInputError(
            f"durability must be one of {', '.join(DURABILITY_MODES)}, not {durability!r}"
        )
    if (
        not isinstance(lock_timeout, int | float)
        or isinstance(lock_timeout, bool)
        or not math.isfinite(lock_timeout)
        or (lock_timeout < 0)
    ):
        raise InvalidInputError(f"lock_timeout must be a finite number >= 0, not {lock_timeout!r}")
    return Options(
        durability,
        lock_timeout,
        check_int_at_least("max_record_bytes", max_record_bytes, 1),
        check_flag("read_only", read_only),
    )


def check_flag(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be True or False, not {value!r}")
    return value


def check_seq(seq: object, what: str = "seq") -> int:
    """A seq asked for: an int (a float, a string or a bool is refused, not looked up)."""
    if not _is_int(seq):
        raise InvalidInputError(f"{what} must be an int, not {type(seq).__name__}")
    return seq


def check_int_at_least(what: str, value: object, least: int) -> int:
    """An int (not a bool) of at least ``least``, or InvalidInputError naming ``what``."""
    if not _is_int(value) or value < least:
        raise InvalidInputError(f"{what} must be an int >= {least}, not {value!r}")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def refuse_backend_options(backend: str, extra: dict[str, object]) -> None:
    """InvalidInputError if ``extra`` holds options: ``backend`` takes none of its own."""
    if extra:
        raise InvalidInputError(
            f"the {backend} backend takes no option {', '.join(sorted(extra))} "
            "(options of the local directory backend)"
        )
