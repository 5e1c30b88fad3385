"""The naming rules: which names are accepted, and why no two keys collide."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapstore import InvalidInputError
from snapstore._names import (
    MAX_NAME_LENGTH,
    check_history_name,
    check_stage,
    check_text,
    group_key,
    index_key,
    split_group_key,
    split_index_key,
)
from store_strategies import colon_run_ids, comparison_keys, run_ids, stages


@given(run_id=run_ids | colon_run_ids, stage=stages)
def test_an_index_key_splits_back_into_its_run_id_and_stage(run_id: str, stage: str) -> None:
    assert split_index_key(index_key(run_id, stage)) == (run_id, stage)


@given(a=st.tuples(run_ids | colon_run_ids, stages), b=st.tuples(run_ids | colon_run_ids, stages))
def test_different_pairs_have_different_index_keys(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert (index_key(*a) == index_key(*b)) == (a == b)


@given(stage=stages, key=comparison_keys | colon_run_ids)
def test_a_group_key_splits_back_into_its_stage_and_comparison_key(stage: str, key: str) -> None:
    assert split_group_key(group_key(stage, key)) == (stage, key)


def test_the_one_pair_that_would_share_a_key_is_refused() -> None:
    # ("a", "b:c") would also be "a:b:c": its stage is what the rules refuse.
    assert index_key("a:b", "c") == "a:b:c"
    assert split_index_key("a:b:c") == ("a:b", "c")
    with pytest.raises(InvalidInputError):
        check_stage("b:c")


@given(run_id=run_ids)
def test_every_printable_run_id_up_to_the_limit_is_accepted(run_id: str) -> None:
    assert check_text("run_id", run_id) == run_id


@pytest.mark.parametrize(
    "value",
    ["", "x" * (MAX_NAME_LENGTH + 1), "a\tb", "a\nb", "\x00", "a\x7fb", "\x1b[31m", 5, None],
)
def test_check_text_refuses(value: Any) -> None:
    with pytest.raises(InvalidInputError):
        check_text("run_id", value)


@pytest.mark.parametrize("value", ["TRAINING", "stage_2", "v1.2-rc", "0", "S" * MAX_NAME_LENGTH])
def test_check_stage_accepts(value: str) -> None:
    assert check_stage(value) == value


@pytest.mark.parametrize(
    "value", ["", "b:c", "a b", "a/b", ".hidden", "-x", "_x", "é", "S" * (MAX_NAME_LENGTH + 1)]
)
def test_check_stage_refuses(value: str) -> None:
    with pytest.raises(InvalidInputError):
        check_stage(value)


@pytest.mark.parametrize("value", ["run-1.TRAINING", "a", "x_y-z.1"])
def test_check_history_name_accepts(value: str) -> None:
    assert check_history_name(value) == value


@pytest.mark.parametrize(
    "value", ["", "a/b", "..", "a..b", ".hidden", "../x", "a\\b", "a:b", "a\nb", "x" * 201]
)
def test_check_history_name_refuses(value: str) -> None:
    with pytest.raises(InvalidInputError):
        check_history_name(value)
