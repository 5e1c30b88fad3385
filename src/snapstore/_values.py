"""What a record may hold: the rule for every kind of value, and errors that say where.

A record is stored as JSON and read back as JSON: a value is accepted only if
what is read back is the value written, or the one documented JSON form of it.

- JSON's own types (dict with str keys, list, str, int, float, bool, None)
  are stored as they are; a tuple is stored as a list.
- numpy numbers and booleans (every float, int, uint and bool dtype) are
  stored as the JSON number or boolean they equal and read back as ``float``,
  ``int`` or ``bool``; numpy arrays of those dtypes as nested lists. numpy is
  never imported here: its values are recognised by their type's module.
- NaN, +inf and -inf (Python's or numpy's) are stored as the bare tokens
  ``NaN``, ``Infinity`` and ``-Infinity``, Python's ``json`` spelling, and read
  back as exactly those floats. Strict JSON has no spelling for them; these
  tokens are read as numbers by Python's ``json``, DuckDB and pandas, and jq
  reads them as null and the largest finite doubles. Only lines that hold
  one pay for it: orjson writes them as null, so a payload is walked for them
  only when its encoding holds ``null``, and a line is parsed again by
  Python's ``json`` only when orjson refuses it.
- ``uuid.UUID`` is stored as its hyphenated text, an ``enum.Enum`` member as
  its value (orjson's own forms).
- Everything else is refused with an InvalidInputError that names the value's
  place (``metrics["loss"]``) and type, and says how to store it: datetime,
  date and time (store ``.isoformat()`` or a timestamp), Decimal, Path, set,
  bytes, numpy datetimes and arrays of objects or text, and any other object.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

import orjson

from snapstore._errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable

# numpy dtype kinds stored as JSON: bool, signed and unsigned int, float.
_NUMERIC_KINDS = frozenset("biuf")


# A non-finite float is encoded as a text sentinel that no caller's text holds
# (a NUL, a random token), which is then replaced by its bare token. The token
# is what secrets.token_hex(8) makes, without importing secrets (and with it
# hmac, base64 and random) into every process.
_SENTINEL = f"\x00{os.urandom(8).hex()}:"
_SPELLINGS = {"NaN": b"NaN", "Infinity": b"Infinity", "-Infinity": b"-Infinity"}
_ENCODED_SENTINELS = {orjson.dumps(_SENTINEL + name): token for name, token in _SPELLINGS.items()}


def dumps(value: Any, option: int) -> bytes:
    """``value`` as snapstore stores it (see the rules above); TypeError if unstorable."""
    encoded = orjson.dumps(value, default=json_default, option=option)
    if b"null" in encoded and has_non_finite(value):
        encoded = orjson.dumps(_marked(value), default=json_default, option=option)
        for sentinel, token in _ENCODED_SENTINELS.items():
            encoded = encoded.replace(sentinel, token)
    return encoded


def loads(data: bytes | str) -> Any:
    """Parse what ``dumps`` wrote: orjson, and Python's json for NaN and infinities."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raw = data.encode() if isinstance(data, str) else data
        if b"NaN" in raw or b"Infinity" in raw:
            return json.loads(raw)
        raise


def _marked(value: Any) -> Any:
    """A copy of ``value`` with each non-finite float replaced by its sentinel text."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        name = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
        return _SENTINEL + name
    if isinstance(value, dict):
        return {key: _marked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_marked(item) for item in value]
    if _numpy_kind(value) == "f":
        return _marked(value.tolist())
    return value


def json_default(value: Any) -> Any:
    """orjson's hook for the values it does not encode itself: numpy numbers and arrays.

    Anything else raises TypeError, which orjson reports as its own error and
    ``unstorable`` then explains.
    """
    if _numpy_kind(value) in _NUMERIC_KINDS:
        # A scalar's tolist() is the Python number; an array's, nested lists of them.
        return value.tolist()
    raise TypeError


def has_non_finite(value: Any) -> bool:
    """Whether NaN or an infinity is anywhere in ``value``, numpy values included."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(has_non_finite, value.values()))
    if isinstance(value, list | tuple):
        return any(map(has_non_finite, value))
    if _numpy_kind(value) == "f":
        return has_non_finite(value.tolist())
    return False


def unstorable(data: Any, dumps: Callable[[Any], bytes], root: str | None) -> str:
    """Say where in ``data`` the first value ``dumps`` refuses is, what it is, and what to do.

    ``root`` names the whole payload in the place (``record["loss"]``); None
    leaves the first key bare (``metrics["loss"]``, for a snapshot's fields).
    Only called once encoding failed, so it may take its time.
    """
    found = _first_unstorable(data, (), dumps)
    if found is None:  # pragma: no cover - dumps refused the whole but no part
        return "record data is not storable"
    path, _, reason = found
    return f"{_place(path, root)}: {reason}"


def _first_unstorable(
    value: Any, path: tuple[str | int, ...], dumps: Callable[[Any], bytes]
) -> tuple[tuple[str | int, ...], Any, str] | None:
    children: list[tuple[str | int, Any]]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                return path, key, f"a key of type {_type_name(key)}: keys must be text"
            if _refused(key, dumps):
                return path, key, f"the key {key!r}: {_refusal(key)}"
        children = list(value.items())
    elif isinstance(value, list | tuple):
        children = list(enumerate(value))
    else:
        return (path, value, _refusal(value)) if _refused(value, dumps) else None
    for key, item in children:
        found = _first_unstorable(item, (*path, key), dumps)
        if found is not None:
            return found
    return None


def _refused(value: Any, dumps: Callable[[Any], bytes]) -> bool:
    try:
        dumps(value)
    except TypeError:
        return True
    return False


def _refusal(value: Any) -> str:
    name = _type_name(value)
    if isinstance(value, str):
        return "text with a lone surrogate is not valid Unicode"
    if isinstance(value, int):
        return f"the int {value} is beyond 64 bits, which JSON readers cannot hold: store text"
    kind = _numpy_kind(value)
    if kind is not None and hasattr(value, "shape") and value.shape:
        return f"{name} of dtype {value.dtype} is not storable (only bool, int, uint and float)"
    advice = _advice(value)
    if advice is None and kind in ("M", "m"):
        advice = "store value.astype(str).tolist() (text) or an integer count of a unit"
    if advice is None:
        return f"{name} is not storable (not JSON, and no rule converts it)"
    return f"{name} is not storable: {advice}"


def _advice(value: Any) -> str | None:
    """How to store a refused value instead, by its type (pandas.Timestamp is a datetime)."""
    # Imported here, on the way to an error: not worth a millisecond of every import.
    import datetime as dt  # noqa: PLC0415
    import decimal  # noqa: PLC0415
    import pathlib  # noqa: PLC0415

    advice: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (dt.datetime, "store value.isoformat() (text) or value.timestamp() (a number)"),
        ((dt.date, dt.time), "store value.isoformat() (text)"),
        (decimal.Decimal, "store float(value) or str(value)"),
        (pathlib.PurePath, "store str(value)"),
        ((set, frozenset), "store a list, e.g. sorted(value)"),
        ((bytes, bytearray), "store text, e.g. base64.b64encode(value).decode()"),
    )
    return next((text for kinds, text in advice if isinstance(value, kinds)), None)


def _place(path: tuple[str | int, ...], root: str | None) -> str:
    parts = [f"[{orjson.dumps(key).decode()}]" for key in path]
    if root is None and path and isinstance(path[0], str):
        return path[0] + "".join(parts[1:])
    return (root or "record") + "".join(parts)


def _numpy_kind(value: Any) -> str | None:
    """The dtype kind of a numpy value (a scalar or an array), or None for anything else."""
    if type(value).__module__ != "numpy":
        return None
    dtype = getattr(value, "dtype", None)
    return None if dtype is None else str(dtype.kind)


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


# -- a payload, encoded and compared as stored -------------------------------

# A datetime or a dataclass would be converted silently (to a string, to a
# dict) and read back as something else: refuse them instead.
_DUMP_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def encode_data(data: object, max_bytes: int, *, root: str | None = "record") -> bytes:
    """Serialize a record's payload, refusing anything that would not round-trip.

    See the rules above for each kind of value; a refusal names the
    value's place, under ``root`` (see ``unstorable``). Called before
    the record joins a group commit, and complete: a payload that passes
    encodes into its line without error, so no bad record can fail the others
    of a batch.
    """
    if not isinstance(data, dict):
        if not _is_mapping(data):
            raise InvalidInputError(
                f"record data must be a mapping with string keys, not {type(data).__name__}"
            )
        data = dict(data)  # type: ignore[call-overload]
    try:
        encoded = _dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        raise InvalidInputError(unstorable(data, _dumps, root)) from None
    if len(encoded) > max_bytes:
        raise InvalidInputError(
            f"record data is {len(encoded)} bytes, over the maximum of {max_bytes} bytes "
            "(raise max_record_bytes to store larger records)"
        )
    return encoded


def canonical_json(data: dict[str, Any], root: str = "record") -> bytes:
    """``data`` as it would be stored, keys sorted: the same content, the same bytes.

    What "identical content" means for a retry: Python's ``==`` holds
    ``1 == 1.0 == True`` and ``nan != nan``, so comparing dicts would take a
    changed type for a retry, and a NaN read back for a change.
    """
    try:
        return dumps(data, _DUMP_OPTIONS | orjson.OPT_SORT_KEYS)
    except TypeError:
        raise InvalidInputError(unstorable(data, _dumps, root)) from None


def same_content(data: dict[str, Any], encoded: bytes) -> bool:
    """Whether decoded ``data`` holds what ``encoded`` (an entry's data) holds."""
    # The usual case first: data decoded from these very bytes encodes to them.
    return _dumps(data) == encoded or canonical_json(data) == canonical_json(loads(encoded))


def _dumps(value: object) -> bytes:
    return dumps(value, _DUMP_OPTIONS)


def _is_mapping(value: object) -> bool:
    from collections.abc import Mapping  # noqa: PLC0415 - only on the slow path

    return isinstance(value, Mapping)
