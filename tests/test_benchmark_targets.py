"""The performance targets are judged from a run's saved figures (no timings are taken here)."""

from __future__ import annotations

import pytest
from benchmarks.targets import TARGETS, Extra, Ratio, Target, Verdict, amount, evaluate, table

from benchmark_runs import figure, good_figures


def verdict(verdicts: list[Verdict], name: str) -> Verdict:
    return next(v for v in verdicts if v.target.name == name)


def test_a_run_that_meets_every_target() -> None:
    verdicts = evaluate(good_figures())
    assert [v.target for v in verdicts] == list(TARGETS)
    assert {v.status for v in verdicts} == {"met"}


def test_a_run_without_the_figures_measures_no_target() -> None:
    verdicts = evaluate({})
    assert {v.status for v in verdicts} == {"not measured"}
    assert {v.value for v in verdicts} == {None}


def test_a_subset_run_measures_only_the_targets_of_its_figures() -> None:
    run = good_figures()
    del run["sqlite.wal.full"]
    del run["store.open.large"]["extra"]["peak_rss_mb"]
    verdicts = evaluate(run)
    unmeasured = {v.target.name for v in verdicts if v.status == "not measured"}
    assert unmeasured == {
        "durable append, 16 threads / SQLite WAL FULL",
        "open 1,000,000 snapshots: peak RSS",
    }


def test_a_missed_target_reports_its_value() -> None:
    run = good_figures()
    run["history.threads.8"] = figure(3000)
    run["store.get"] = figure(50_000, median_us=16.3)
    verdicts = evaluate(run)
    threads = verdict(verdicts, "durable append, 8 threads / 1 thread")
    assert threads.status == "missed"
    assert threads.value == pytest.approx(3.0)
    get = verdict(verdicts, "get, median")
    assert (get.status, get.value) == ("missed", 16.3)


def test_a_ratio_is_the_median_of_the_ratios_within_rounds() -> None:
    # Round by round: 1.0, 0.8, 10.0 -> 1.0. The ratio of the median rates
    # (100 / 100 = 1.0) would agree here by chance; the mean (3.9) would not.
    figures = {"a": figure(100, 80, 1000), "b": figure(100, 100, 100)}
    assert Ratio("a", "b").measure(figures) == pytest.approx(1.0)
    # Rates that swing with the disk's load, with the ratio steady in every round.
    figures = {"a": figure(900, 90, 450), "b": figure(1000, 100, 500)}
    assert Ratio("a", "b").measure(figures) == pytest.approx(0.9)


def test_a_save_cost_ratio_is_the_inverse_of_the_rates() -> None:
    # A save on the large store takes 1.25 times as long as on the small one.
    run = good_figures()
    run["store.scale.large"] = figure(800)
    cost = verdict(evaluate(run), "save cost at 1,000,000 / at 1,000")
    assert cost.status == "met"
    assert cost.value == pytest.approx(1.25)
    run["store.scale.large"] = figure(700)
    assert verdict(evaluate(run), "save cost at 1,000,000 / at 1,000").status == "missed"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_a_value_on_the_threshold_meets_it(target: Target) -> None:
    assert target.met_by(target.threshold)
    beyond = target.threshold * (0.999 if target.bound == "≥" else 1.001)
    assert not target.met_by(beyond)


def test_an_extra_value_on_the_threshold_is_met_through_evaluate() -> None:
    run = good_figures()
    run["store.open.large"] = figure(1.0, open_s=1.0, peak_rss_mb=300.0)
    run["store.get"] = figure(100_000, median_us=10.0)
    run["history.append.fsync"] = figure(900)  # 900 / 1000 = 0.9
    verdicts = evaluate(run)
    assert {v.status for v in verdicts} == {"met"}


def test_the_saved_verdict_names_its_figures() -> None:
    saved = verdict(evaluate(good_figures()), "open 1,000,000 snapshots: time").as_json()
    assert saved == {
        "name": "open 1,000,000 snapshots: time",
        "of": "store.open.large open_s",
        "value": 0.8,
        "unit": "s",
        "bound": "≤",
        "threshold": 1.0,
        "status": "met",
    }
    ratio = verdict(evaluate({}), "durable append / raw write+fdatasync").as_json()
    assert ratio["of"] == "history.append.fsync / raw.write+fdatasync"
    assert (ratio["value"], ratio["status"]) == (None, "not measured")


def test_the_table_lists_every_target_with_its_result() -> None:
    run = good_figures()
    del run["store.get"]
    lines = table(evaluate(run)).splitlines()
    assert len(lines) == 2 + len(TARGETS)
    get = next(line for line in lines if line.startswith("get, median"))
    assert get.split()[-2:] == ["not", "measured"]
    rss = next(line for line in lines if line.startswith("open 1,000,000 snapshots: peak RSS"))
    assert "250 MB" in rss
    assert "≤ 300 MB" in rss
    assert rss.endswith("met")


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.856, "x", "0.86x"),
        (0.92, "s", "0.92 s"),
        (339.4, "MB", "339 MB"),
        (16.31, "µs", "16.3 µs"),
    ],
)
def test_amounts_are_printed_in_their_unit(value: float, unit: str, text: str) -> None:
    assert amount(value, unit) == text


def test_an_extra_value_is_read_as_a_number() -> None:
    assert Extra("f", "n", "MB").measure({"f": figure(1, n=3)}) == 3.0
