"""The benchmark command runs end to end and reports every figure (no timings are asserted)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _benchmarks(*args: str) -> str:
    # Run as users do: the benchmarks package is not installed, it runs from the root.
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    _benchmarks("--quick", "--dir", str(tmp_path), "--json", str(out))
    result = json.loads(out.read_text())
    assert result["mode"] == "quick"
    assert {"nproc", "memory_gib", "file_system", "python"} <= result["machine"].keys()
    assert set(result["figures"]) == set(_benchmarks("--list").split())
    for name, figure in result["figures"].items():
        assert figure["ops"] > 0, name
        assert math.isfinite(figure["ops_per_s"]), name
        assert figure["limit_ratio"] is not None or name in {"raw.write", "raw.write+fdatasync"}
    # A run of every figure judges every target.
    assert {target["status"] for target in result["targets"]} <= {"met", "missed"}
    # The scratch files are removed; only the JSON is left.
    assert [p.name for p in tmp_path.iterdir()] == ["figures.json"]


def test_quick_run_reports_the_store_figures(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    _benchmarks("--quick", "--dir", str(tmp_path), "--json", str(out), "--only", "store.")
    figures = json.loads(out.read_text())["figures"]
    for scale in ("small", "medium", "large"):
        extra = figures[f"store.scale.{scale}"]["extra"]
        assert extra["snapshots"] > 0, scale
        assert extra["checkpoint_s"] > 0, scale
    assert figures["store.scale.large"]["ref_ratio"] is not None
    assert figures["store.open.large"]["extra"]["peak_rss_mb"] > 0
    for lookup in ("store.get", "store.previous_comparable"):
        assert figures[lookup]["extra"]["median_us"] > 0, lookup
    assert {"store.save.fsync", "store.save.write", "store.threads.8"} <= figures.keys()
    # The store's own targets are judged; those of the figures it left out are not.
    statuses = {t["name"]: t["status"] for t in json.loads(out.read_text())["targets"]}
    assert statuses["get, median"] in {"met", "missed"}
    assert statuses["open 1,000,000 snapshots: peak RSS"] in {"met", "missed"}
    assert statuses["durable append / raw write+fdatasync"] == "not measured"
