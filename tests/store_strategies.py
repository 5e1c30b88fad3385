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
