"""What the benchmark chart draws, prepared from a saved run (the drawing itself is not run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.chart import THROUGHPUT, margin, target_bars, throughput_bars, title
from benchmarks.targets import TARGETS, Verdict

from benchmark_runs import figure, good_run

ROOT = Path(__file__).resolve().parent.parent


def test_every_target_gets_a_bar_in_order() -> None:
    bars = target_bars(good_run())
    assert [bar.label for bar in bars] == [target.name for target in TARGETS]
    assert all(bar.length is not None and bar.length >= 1 for bar in bars)
    assert len({bar.color for bar in bars}) == 1


def test_a_bar_shows_the_value_the_status_and_the_bound() -> None:
    run = good_run()
    run["figures"]["store.get"] = figure(50_000, median_us=16.3)
    bars = {bar.label: bar for bar in target_bars(run)}
    get = bars["get, median"]
    assert get.note == "16.3 µs missed (target ≤ 10 µs)"
    assert get.length == pytest.approx(10 / 16.3)
    assert get.color != bars["find_previous_comparable, median"].color


def test_a_target_not_measured_gets_no_bar() -> None:
    run = good_run()
    del run["figures"]["history.threads.8"]
    bars = {bar.label: bar for bar in target_bars(run)}
    threads = bars["durable append, 8 threads / 1 thread"]
    assert threads.length is None
    assert threads.note == "not measured (target ≥ 4.00x)"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("durable append / raw write+fdatasync", 0.45, 0.5),  # at least 0.9: half of it
        ("save cost at 1,000,000 / at 1,000", 2.6, 0.5),  # at most 1.3: twice it
        ("get, median", 5.0, 2.0),  # at most 10 µs: half of it, met twice over
    ],
)
def test_the_margin_is_above_one_when_met_whichever_the_bound(
    name: str, value: float, expected: float
) -> None:
    target = next(t for t in TARGETS if t.name == name)
    assert margin(Verdict(target, value)) == pytest.approx(expected)


def test_the_throughput_panel_shows_the_durable_writes_measured() -> None:
    run = good_run()
    bars = throughput_bars(run)
    assert [bar.label for bar in bars] == [name for name in THROUGHPUT if name in run["figures"]]
    lengths = {bar.label: bar.length for bar in bars}
    assert lengths["raw.write+fdatasync"] == 1000
    assert {bar.label for bar in bars} >= {"history.append.fsync", "store.save.fsync"}
    colors = {bar.label: bar.color for bar in bars}
    assert colors["store.save.fsync"] == colors["history.threads.8"]
    assert colors["store.save.fsync"] != colors["sqlite.wal.full"]


def test_the_title_describes_the_run_and_its_machine() -> None:
    text = title(good_run())
    assert "full run" in text
    assert "2 CPUs, 23.5 GiB, ext4, Python 3.11.7 (cpython), SQLite 3.40.1" in text


def test_the_chart_module_loads_without_matplotlib() -> None:
    # The benchmarks and these tests run without the bench extra: only drawing imports it.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, benchmarks.chart; assert 'matplotlib' not in sys.modules",
        ],
        cwd=ROOT,
        check=True,
    )
