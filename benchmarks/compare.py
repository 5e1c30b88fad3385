"""Compare saved runs as a Markdown table:  python -m benchmarks.compare RUN.json [RUN.json ...]

Each run (a JSON file written by ``python -m benchmarks``) becomes two columns:
its rate and its ratio to the physical limit measured in the same run. The
first run's machine is described above the table. Used for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _cell(figure: dict[str, Any] | None) -> list[str]:
    if figure is None:
        return ["", ""]
    ratio = figure["limit_ratio"]
    ref = figure["ref_ratio"]
    return [
        f"{figure['ops_per_s']:,.0f}",
        ("" if ratio is None else f"{ratio:.2f}x")
        + ("" if ref is None else f" ({ref:.2f}x {figure['ref']})"),
    ]


def markdown(runs: list[tuple[str, dict[str, Any]]]) -> str:
    machine = runs[0][1]["machine"]
    lines = [
        (
            f"Machine: {machine['nproc']} CPUs, {machine['memory_gib']} GiB RAM, "
            f"{machine['file_system']}, Python {machine['python']}, "
            f"SQLite {machine['sqlite']}, {machine['platform']}."
        ),
        "",
    ]
    header = ["figure", "what"]
    for label, _ in runs:
        header += [f"{label} ops/s", f"{label} x limit"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    names = list(runs[-1][1]["figures"])
    for name in names:
        description = runs[-1][1]["figures"][name]["description"]
        row = [f"`{name}`", description]
        for _, run in runs:
            row += _cell(run["figures"].get(name))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="JSON files; label=PATH to name one")
    args = parser.parse_args(argv)
    runs = []
    for spec in args.runs:
        label, _, path = str(spec).rpartition("=")
        run = json.loads(Path(path).read_text())
        runs.append((label or run["mode"], run))
    print(markdown(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
