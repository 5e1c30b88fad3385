"""Hypothesis strategies for snapshots: names the store accepts and JSON that round-trips."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from snapstore._names import MAX_NAME_LENGTH

# What check_text refuses; everything else (colons, spaces, non-ASCII) is a valid run id.
_CONTROL = "".join(map(chr, [*range(0x20), 0x7F]))

run_ids = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters=_CONTROL),
    min_size=1,
    max_size=MAX_NAME_LENGTH,
)
# Colons are what made keys ambiguous once: draw them often.
colon_run_ids = st.lists(st.sampled_from(["a", "b", ":", "::", "a:b"]), min_size=1, max_size=5).map(
    "".join
)
stages = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,40}", fullmatch=True)
comparison_keys = run_ids

_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8), json_values, max_size=4
)

# Everything a record may hold, to the edges: NaN and the infinities, integers
# from int64's lowest to uint64's highest (beyond int64 a table column is JSON
# text), and those around 2**53, beyond which a float holds no integer exactly.
_EDGE_INTS = [-(2**63), -(2**53) - 1, -(2**53), 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]
_record_scalars: st.SearchStrategy[Any] = st.one_of(
    _scalars,
    st.floats(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(_EDGE_INTS),
)
record_values: st.SearchStrategy[Any] = st.recursive(
    _record_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["x", "y", "", "x.y"]), children, max_size=3)
    ),
    max_leaves=6,
)
# Records that share their few field names, so that each column gathers the
# values of several records (and keys with dots meet nested keys).
table_records: st.SearchStrategy[list[dict[str, Any]]] = st.lists(
    st.fixed_dictionaries(
        {}, optional=dict.fromkeys(["a", "b", "a.x", ""], _record_scalars | record_values)
    ),
    min_size=1,
    max_size=8,
)
