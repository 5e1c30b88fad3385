"""NormalizedSnapshot: what one stage of one run produced."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, Self

from snapstore._errors import InvalidInputError
from snapstore._names import check_stage, check_text
from snapstore._options import check_seq
from snapstore._values import canonical_json, encode_data


class ReadOnlyDict(dict[str, Any]):
    """A dict that refuses changes: what a snapshot's metrics, config and data are.

    A dict, not a read-only view of one, so that a snapshot is a plain value:
    ``json.dumps``, ``pickle``, ``copy.deepcopy``, ``dataclasses.asdict`` and
    a process pool's return path all take it, and one snapshot's metrics can
    go into another's data. Values nested inside are plain dicts and lists.
    """

    __slots__ = ()

    def _refuse(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("a snapshot's mappings are read-only: build a new snapshot to change one")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type[ReadOnlyDict], tuple[dict[str, Any]]]:
        # dict's own pickling would rebuild it item by item through __setitem__.
        return (type(self), (dict(self),))

    def __copy__(self) -> Self:
        return self  # immutable: a copy is the same value

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return type(self)(copy.deepcopy(dict(self), memo))


def _frozen(mapping: Mapping[str, Any]) -> ReadOnlyDict:
    return mapping if type(mapping) is ReadOnlyDict else ReadOnlyDict(mapping)


@dataclass(frozen=True, slots=True)
class NormalizedSnapshot:
    """One stage of one run: its metrics, config and free-form data.

    ``snapshot_seq`` and ``created_at`` are set by ``SnapshotStore.save_snapshot``;
    ``comparison_key`` is derived from ``config`` on save when left ``None``. The
    mappings are read-only dicts (``ReadOnlyDict``); build a new snapshot to
    change one. A plain value: equal when every field is equal, hashable,
    picklable and deep-copyable.
    """

    run_id: str
    stage: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    comparison_key: str | None = None
    created_at: datetime | None = None
    snapshot_seq: int | None = None

    def __post_init__(self) -> None:
        for name in MAPPINGS:
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise InvalidInputError(f"{name} must be a mapping, not {type(value).__name__}")
            object.__setattr__(self, name, _frozen(value))
        # Checked here: a store compares and looks up snapshot_seq, and would
        # fail with a TypeError (or take True for seq 1) far from the mistake.
        if self.snapshot_seq is not None:
            check_seq(self.snapshot_seq, "snapshot_seq")
        if self.created_at is not None and not isinstance(self.created_at, datetime):
            raise InvalidInputError(
                f"created_at must be a datetime, not {type(self.created_at).__name__}"
            )

    def __hash__(self) -> int:
        # Equality compares every field; the hash, the identifying ones (equal
        # snapshots have equal identities), since mappings are not hashable.
        return hash((self.run_id, self.stage, self.comparison_key, self.snapshot_seq))

    @property
    def saved(self) -> bool:
        return self.snapshot_seq is not None

    def with_comparison_key(self) -> NormalizedSnapshot:
        """This snapshot with its names checked and its comparison key filled in."""
        check_text("run_id", self.run_id)
        check_stage(self.stage)
        if self.comparison_key is not None:
            check_text("comparison_key", self.comparison_key)
            return self
        # Its mappings are frozen already: no need for the checks and copies of
        # dataclasses.replace, which cost more than the rest of a save's checks.
        return _assembled(
            self.run_id,
            self.stage,
            self.metrics,
            self.config,
            self.data,
            config_fingerprint(self.config),
            self.created_at,
            self.snapshot_seq,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``created_at`` as ISO-8601 text), fields in declaration order."""
        fields = {name: getattr(self, name) for name in FIELDS}
        for name in MAPPINGS:
            fields[name] = dict(fields[name])
        if self.created_at is not None:
            fields["created_at"] = self.created_at.isoformat()
        return fields

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Self:
        """The inverse of :meth:`to_dict`; unknown fields are refused."""
        if not isinstance(value, Mapping):
            raise InvalidInputError(
                f"a snapshot dict must be a mapping, not {type(value).__name__}"
            )
        unknown = set(value) - set(FIELDS)
        if unknown:
            raise InvalidInputError(f"unknown snapshot fields: {', '.join(sorted(unknown))}")
        created = value.get("created_at")
        if isinstance(created, str):
            try:
                created = datetime.fromisoformat(created)
            except ValueError:
                raise InvalidInputError(f"created_at {created!r} is not ISO-8601") from None
        try:
            fields: dict[str, Any] = {name: value.get(name) for name in FIELDS}
            fields["run_id"], fields["stage"] = value["run_id"], value["stage"]
        except KeyError as missing:
            raise InvalidInputError(f"snapshot dict lacks the field {missing}") from None
        for name in MAPPINGS:
            fields[name] = fields[name] or {}
        fields["created_at"] = created
        return cls(**fields)


# The field list, written once (by the dataclass). A backend stores a snapshot
# as the JSON object encode_payload makes; the other two fields, snapshot_seq
# and created_at, are the record's own seq and commit time.
FIELDS = tuple(spec.name for spec in dataclasses.fields(NormalizedSnapshot))
MAPPINGS = ("metrics", "config", "data")


def from_fresh_dicts(  # noqa: PLR0917 - mirrors the fields, called from one place
    run_id: str,
    stage: str,
    metrics: dict[str, Any],
    config: dict[str, Any],
    data: dict[str, Any],
    comparison_key: str,
    created_at: datetime,
    snapshot_seq: int,
) -> NormalizedSnapshot:
    """A snapshot whose mappings are dicts that nothing else holds (just decoded).

    They are made read-only without the checks ``__init__`` makes: reading a
    snapshot back from a store builds one per call. Anything but plain dicts
    takes the checked path.
    """
    if not (type(metrics) is dict and type(config) is dict and type(data) is dict):
        return NormalizedSnapshot(
            run_id, stage, metrics, config, data, comparison_key, created_at, snapshot_seq
        )
    return _assembled(
        run_id,
        stage,
        ReadOnlyDict(metrics),
        ReadOnlyDict(config),
        ReadOnlyDict(data),
        comparison_key,
        created_at,
        snapshot_seq,
    )


def _assembled(  # noqa: PLR0917 - mirrors the fields
    run_id: str,
    stage: str,
    metrics: Mapping[str, Any],
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    comparison_key: str | None,
    created_at: datetime | None,
    snapshot_seq: int | None,
) -> NormalizedSnapshot:
    """A snapshot of fields that are checked and frozen already, built without ``__init__``."""
    snap = object.__new__(NormalizedSnapshot)
    _set_run_id(snap, run_id)
    _set_stage(snap, stage)
    _set_metrics(snap, metrics)
    _set_config(snap, config)
    _set_data(snap, data)
    _set_comparison_key(snap, comparison_key)
    _set_created_at(snap, created_at)
    _set_snapshot_seq(snap, snapshot_seq)
    return snap


# The fields are frozen: _assembled sets them through their slots'
# descriptors, which costs a third less than object.__setattr__ (that looks
# the descriptor up by name on every call). Looked up by name, so that a
# reordering of the fields cannot bind a setter to the wrong one.
(
    _set_run_id,
    _set_stage,
    _set_metrics,
    _set_config,
    _set_data,
    _set_comparison_key,
    _set_created_at,
    _set_snapshot_seq,
) = (vars(NormalizedSnapshot)[name].__set__ for name in FIELDS)


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """The comparison key of a config: a hash of its canonical JSON (sorted keys).

    Computed from the JSON the config is stored as (see ``_values``), so a
    numpy value groups with the plain value it is stored as.
    """
    return "cfg-" + hashlib.sha256(canonical_json(dict(config), "config")).hexdigest()[:32]


# -- the stored form ------------------------------------------------------------


def encode_payload(snap: NormalizedSnapshot, max_bytes: int) -> bytes:
    """The JSON that stores ``snap`` (its names checked and comparison key set).

    Refuses an unstorable value, naming its place (``metrics["loss"]``), or a
    payload over ``max_bytes``: checked before any backend sees it.
    """
    # Spelled out, not built from the field list: a save's hottest line, and a
    # literal costs a third of what a loop over getattr does. orjson encodes
    # dicts, not their subclasses: the read-only mappings are copied.
    payload = {
        "run_id": snap.run_id,
        "stage": snap.stage,
        "comparison_key": snap.comparison_key,
        "metrics": dict(snap.metrics),
        "config": dict(snap.config),
        "data": dict(snap.data),
    }
    return encode_data(payload, max_bytes, root=None)


def payload_problem(payload: dict[str, Any]) -> str | None:
    """Why a stored JSON object is not a snapshot's payload, or None if it is one."""
    try:
        check_text("run_id", payload.get("run_id"))
        check_stage(payload.get("stage"))
        check_text("comparison_key", payload.get("comparison_key"))
    except InvalidInputError as exc:
        return str(exc)
    missing = [name for name in MAPPINGS if not isinstance(payload.get(name), dict)]
    return f"snapshot record lacks {', '.join(missing)}" if missing else None


def stored_snapshot(seq: int, created_at: datetime, payload: dict[str, Any]) -> NormalizedSnapshot:
    """The snapshot stored as ``seq``; ``payload``'s dicts, just decoded, become its own."""
    return from_fresh_dicts(
        payload["run_id"],
        payload["stage"],
        payload["metrics"],
        payload["config"],
        payload["data"],
        payload["comparison_key"],
        created_at,
        seq,
    )
