"""Hypothesis strategies for record payloads: the JSON that round-trips exactly."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from snapstore._log.record import MAX_KEY_LENGTH

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Text without lone surrogates (they are not encodable as UTF-8).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)

json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=16,
)

json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(texts, json_values, max_size=6)

# Keys are printable: control characters are refused.
record_keys = st.text(
    st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=MAX_KEY_LENGTH
)
