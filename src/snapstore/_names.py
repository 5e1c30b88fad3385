"""Rules for the names users give: run ids, stages, comparison keys, history names.

Index keys are ``"<run_id>:<stage>"``. A stage may not contain ``:``, so the key
splits unambiguously at its *last* colon: ``("a:b", "c")`` is ``"a:b:c"``, and
``("a", "b:c")`` is refused. Comparison groups are ``"<stage>:<comparison_key>"``
and split at the *first* colon for the same reason.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from snapstore._errors import InvalidInputError

# A store's history names are ASCII, so at this length every file derived from
# one (``<name>.jsonl.lock``, quarantined copies, temp files) fits in NAME_MAX
# bytes without being shortened: see fit_name for names that do not.
MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 256
# The longest file name, in bytes, of the file systems snapstore runs on (ext4,
# XFS, btrfs, APFS; NTFS counts 255 UTF-16 units, never more than the UTF-8 bytes).
NAME_MAX = 255
_DIGEST_CHARS = 16
_STAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_HISTORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_text(what: str, value: object, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """A free-form identifier: non-empty, printable, at most ``max_length`` characters.

    Names are held to MAX_NAME_LENGTH because some become file names; text
    that never does (a record's key) has a documented limit of its own.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > max_length:
        raise InvalidInputError(f"{what} is {len(value)} characters, over {max_length}")
    if _CONTROL.search(value):
        raise InvalidInputError(f"{what} {value!r} contains a control character")
    return value


def check_fs_path(what: str, value: object) -> Path:
    """A path the user gives: text the file system can take, checked before any is touched.

    Without this a NUL or a lone surrogate would surface as a ValueError from
    deep inside the first system call, and a path of another type as a
    TypeError; and the call may have created directories by then.
    """
    if not isinstance(value, str | os.PathLike):
        raise InvalidInputError(f"{what} must be a str or os.PathLike, not {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be text, not {type(text).__name__}")
    if "\x00" in text:
        raise InvalidInputError(f"{what} {text!r} contains a NUL character")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} {text!r} cannot be encoded as a file name (a lone surrogate?)"
        ) from None
    return Path(text)


def check_stage(value: object) -> str:
    # The pattern admits neither an empty stage nor a control character: for a
    # valid stage (every lookup names one) the match alone settles it, and
    # check_text only words the error of an invalid one.
    if isinstance(value, str) and len(value) <= MAX_NAME_LENGTH and _STAGE.fullmatch(value):
        return value
    stage = check_text("stage", value)
    if not _STAGE.fullmatch(stage):
        raise InvalidInputError(
            f"stage {stage!r} may hold only letters, digits, '_', '.' and '-' "
            "(and must start with a letter or digit)"
        )
    return stage


def check_history_name(value: object) -> str:
    """A history name becomes a file name: no separators, no leading dot, no '..'."""
    name = check_text("history name", value)
    if not _HISTORY_NAME.fullmatch(name) or ".." in name:
        raise InvalidInputError(
            f"history name {name!r} may hold only letters, digits, '_', '.' and '-', "
            "must start with a letter or digit and may not contain '..'"
        )
    return name


def fit_name(name: str, suffix: str = "", room: int = NAME_MAX) -> str:
    """``name + suffix``, with ``name`` shortened if needed to fit in ``room`` bytes.

    Files derived from a log (its lock, its quarantine, temp files of atomic
    writes) are named after it, and a log whose own name is near the limit
    would make names the file system refuses. A name that fits is returned
    unchanged, so derived names that fit never change. One that does not
    keeps its start, cut at a character boundary, and ``~`` and a hash of the
    whole name: different names stay different (two logs must never share a
    lock file, which also holds their synced marks), and the same name always
    gives the same result, in every process.
    """
    room -= len(os.fsencode(suffix))
    encoded = os.fsencode(name)
    if len(encoded) <= room:
        return name + suffix
    digest = hashlib.sha256(encoded).hexdigest()[:_DIGEST_CHARS]
    budget = room - len(digest) - 1
    kept = 0
    for char in name:
        size = len(os.fsencode(char))
        if size > budget:
            break
        budget -= size
        kept += 1
    return f"{name[:kept]}~{digest}{suffix}"


def index_key(run_id: str, stage: str) -> str:
    return f"{run_id}:{stage}"


def split_index_key(key: str) -> tuple[str, str]:
    run_id, _, stage = key.rpartition(":")
    return run_id, stage


def group_key(stage: str, comparison_key: str) -> str:
    return f"{stage}:{comparison_key}"


def split_group_key(key: str) -> tuple[str, str]:
    stage, _, comparison_key = key.partition(":")
    return stage, comparison_key


def validate_key(key: object) -> str | None:
    """A record's key (None: no key): text as a name is, up to MAX_KEY_LENGTH characters."""
    if key is None:
        return None
    text = check_text("key", key, max_length=MAX_KEY_LENGTH)
    # Encoded here, not only when its line is written: that happens in a group
    # commit, where an error would fail every other caller of the batch too.
    # (A name needs no such check: it is either looked up, or stored in a
    # record's data, which encode_data checks whole.)
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"key {text!r} is not valid text: it holds a lone surrogate"
        ) from None
    return text
