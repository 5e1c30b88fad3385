"""The benchmark command runs end to end and reports every figure (no timings are asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.postgres import DSN_VARIABLES

from postgres_server import server_dsn

ROOT = Path(__file__).resolve().parent.parent


def _benchmarks(*args: str, env: dict[str, str] | None = None) -> str:
    # Run as users do: the benchmarks package is not installed, it runs from the root.
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
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
    # A run of every figure judges every target (those of PostgreSQL need a server).
    judged = [
        target["status"]
        for target in result["targets"]
        if server_dsn_given() or "PostgreSQL" not in target["name"]
    ]
    assert set(judged) <= {"met", "missed"}
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


def server_dsn_given() -> bool:
    return any(os.environ.get(name) for name in DSN_VARIABLES)


def test_without_a_server_the_postgres_figures_are_left_out_and_said_to_be(
    tmp_path: Path,
) -> None:
    env = {name: value for name, value in os.environ.items() if name not in DSN_VARIABLES}
    assert not [name for name in _benchmarks("--list", env=env).split() if "postgres" in name]
    out = _benchmarks(
        "--quick",
        "--dir",
        str(tmp_path),
        "--json",
        str(tmp_path / "f.json"),
        "--only",
        "raw.write",
        env=env,
    )
    assert f"set {DSN_VARIABLES[0]}" in out


def test_quick_run_reports_the_postgres_figures_against_local(tmp_path: Path) -> None:
    server_dsn()  # skips without a server (fails under CI=true)
    out = tmp_path / "figures.json"
    _benchmarks("--quick", "--dir", str(tmp_path), "--json", str(out), "--only", "postgres.")
    result = json.loads(out.read_text())
    for kind in ("threads", "processes"):
        for count in (1, 8, 16):
            figure = result["figures"][f"postgres.{kind}.{count}"]
            assert figure["ref_ratio"] is not None, (kind, count)
    for what in ("get", "previous"):
        assert result["figures"][f"postgres.{what}"]["extra"]["median_us"] > 0
    statuses = {t["name"]: t["status"] for t in result["targets"]}
    assert statuses["16 processes saving: PostgreSQL / local"] in {"met", "missed"}
    assert statuses["warm get: PostgreSQL time / local's"] in {"met", "missed"}
