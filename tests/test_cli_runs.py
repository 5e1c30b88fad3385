"""``ls``, ``show``, ``diff``, ``baseline``, ``export`` and ``info``: what they print."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with SnapshotStore(root) as opened:
        for number, auc in enumerate((0.7, 0.8), 1):
            opened.save_snapshot(
                NormalizedSnapshot(f"run-{number}", "TRAINING", metrics={"auc": auc})
            )
        opened.set_baseline(opened.get_by_seq(1))
    return root


@pytest.mark.parametrize("output_format", ["json", "csv", "md"])
def test_baseline_set_prints_the_pin_in_the_format_asked_for(
    store: Path, output_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", str(store), "--set", "run-2:TRAINING", "--format", output_format]) == 0
    out = capsys.readouterr().out
    assert not out.startswith("pinned"), out
    if output_format == "json":
        pinned = json.loads(out)
        assert pinned["snapshot_seq"] == 2
        assert (pinned["run_id"], pinned["stage"], pinned["replaced"]) == ("run-2", "TRAINING", 1)
        assert pinned["comparison_key"]
    else:
        assert "replaced" in out
    with SnapshotStore(store, read_only=True) as opened:
        (baseline,) = opened.baselines()
        assert baseline.snapshot_seq == 2


def test_baseline_set_says_what_it_replaced(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", str(store), "--set", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pinned seq 2 (run-2) as the baseline of TRAINING / ")
    assert out.endswith("(was seq 1 (run-1))\n")
