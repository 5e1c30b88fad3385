"""Run the benchmarks:  python -m benchmarks [--quick] [--dir DIR] [--json PATH] [--only TEXT]

Measures snapstore side by side with its baselines (raw write + fdatasync, raw
write, SQLite WAL, an atomically rewritten JSON index) in one run, on one disk,
and prints a table of rates with ratios against those baselines, then the
performance targets and whether this run met them. Results are saved as JSON
(default: benchmarks/results/<mode>-<time>.json, git-ignored); draw them with
python -m benchmarks.chart.

--dir     where the scratch files go (default: the working directory, so the
          figures are for the disk the project lives on, not a tmpfs /tmp)
--quick   small counts and one round: a smoke test, not figures to quote
--only    run only the benchmarks whose name contains TEXT (repeatable)
--list    print the names of the benchmarks and exit
--rounds  rounds (each runs every benchmark once); figures are medians (default 5)

The PostgreSQL figures need a server: SNAPSTORE_BENCH_POSTGRES_DSN (or the
tests' SNAPSTORE_TEST_POSTGRES_DSN) names it; without one they are left out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import targets
from benchmarks._report import Figure, as_json, describe, machine, table
from benchmarks.postgres import DSN_VARIABLES, server_dsn
from benchmarks.registry import REGISTRY, SUITES, Benchmark, Context, Measurement

_RESULTS = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one round")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="disk to measure")
    parser.add_argument("--json", type=Path, default=None, help="where to save the results")
    parser.add_argument("--only", action="append", default=[], help="name filter (repeatable)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per benchmark")
    parser.add_argument("--list", action="store_true", help="print the benchmark names")
    return parser.parse_args(argv)


def _selected(only: list[str]) -> list[Benchmark]:
    for suite in SUITES:
        importlib.import_module(suite)
    return [b for b in REGISTRY.values() if not only or any(text in b.name for text in only)]


def _measure(benches: list[Benchmark], root: Path, *, quick: bool, rounds: int) -> list[Figure]:
    # Round-robin: every benchmark runs once per round, so a burst of load on a
    # shared disk falls on a figure and its baselines alike, and the ratios
    # (taken per round) stay meaningful.
    measured: dict[str, list[Measurement]] = {bench.name: [] for bench in benches}
    shared = root / "shared"
    shared.mkdir()
    for round_no in range(1, rounds + 1):
        for bench in benches:
            scratch = Path(tempfile.mkdtemp(prefix=f"{bench.name}.", dir=root))
            try:
                measurement = bench.function(Context(scratch, quick, shared))
            finally:
                shutil.rmtree(scratch)
            measured[bench.name].append(measurement)
            rate = measurement.ops / measurement.seconds
            print(f"  round {round_no}/{rounds} {bench.name:<24} {rate:>12,.0f}/s", flush=True)
    return [Figure(bench, tuple(measured[bench.name])) for bench in benches]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    mode = "quick" if args.quick else "full"
    rounds = args.rounds or (1 if args.quick else 5)
    benches = _selected(args.only)
    if args.list:
        print("\n".join(bench.name for bench in benches))
        return 0
    info = machine(args.dir)
    print(f"snapstore benchmarks ({mode}, {rounds} round(s)) on {args.dir}: {describe(info)}")
    if server_dsn() is None:
        print(f"(no PostgreSQL figures: set {DSN_VARIABLES[0]} to a server's DSN to measure them)")
    with tempfile.TemporaryDirectory(prefix=".snapstore-bench.", dir=args.dir) as root:
        figures = _measure(benches, Path(root), quick=args.quick, rounds=rounds)
    run = as_json(figures, info, mode)
    # Judged on the figures as saved, so the saved verdicts are the ones a
    # later reading of the file (the chart) arrives at.
    verdicts = targets.evaluate(run["figures"])
    run["targets"] = [verdict.as_json() for verdict in verdicts]
    print()
    print(table(figures))
    print()
    print(targets.table(verdicts))
    if args.quick:
        print("(quick run: small stores and counts; the verdicts are not figures to quote)")
    path = args.json or _RESULTS / f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=2) + "\n")
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
