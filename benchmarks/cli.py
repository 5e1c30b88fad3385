"""The command line on a big store: ``snapstore ls`` and ``snapstore export``, each a whole process.

The store holds 1,000,000 snapshots (the ``versions`` shape: 50,000 runs
through three stages, so ``ls`` lists 150,000 latest versions). Each figure
is one process, interpreter and imports included, timed from the parent
(the median over several), with its peak resident memory; what the command
prints goes to /dev/null, so the terminal is not timed. The baseline is
the same log turned into a parquet file by Arrow's own JSON reader, in C++,
with none of snapstore's checks (checksums, seq order) or column typing: as
fast as those bytes become a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks._child import PRINT_PEAK_RSS, timed_process, timed_processes
from benchmarks._stores import built_store
from benchmarks.registry import Context, Measurement, benchmark

if TYPE_CHECKING:
    from benchmarks.registry import BenchmarkFunction

_GROUP = "Command line"
_SIZE = (1_000_000, 2_000)  # snapshots: (full run, quick run)
_PROCESSES = (3, 1)
_BASELINE = "cli.arrow_json_to_parquet.1m"

_COMMAND = f"""
import os, sys
from snapstore.cli.main import main
with open(os.devnull, "w") as nowhere:
    sys.stdout = nowhere
    status = main(sys.argv[1:])
    sys.stdout = sys.__stdout__
assert status == 0, status
{PRINT_PEAK_RSS}
"""
_ARROW = f"""
import sys
import pyarrow.json, pyarrow.parquet
log, out = sys.argv[1:]
pyarrow.parquet.write_table(pyarrow.json.read_json(log), out)
{PRINT_PEAK_RSS}
"""

# name -> (the command's arguments after the store, what it does)
_COMMANDS = {
    "ls.table": ([], "the run table for a terminal: 150,000 latest versions chosen, 100 shown"),
    "ls.csv": (["--format", "csv"], "every latest version (150,000 rows) as CSV"),
    "export.parquet": (["-o", "{out}.parquet"], "every snapshot (1,000,000 rows) to parquet"),
    "export.csv": (["-o", "{out}.csv"], "every snapshot (1,000,000 rows) to CSV"),
}


def _command(name: str, arguments: list[str]) -> BenchmarkFunction:
    def run(ctx: Context) -> Measurement:
        store = built_store(ctx, ctx.count(*_SIZE), "versions")
        out = str(ctx.scratch / "export")
        command = name.split(".", maxsplit=1)[0]
        filled = [argument.format(out=out) for argument in arguments]
        return timed_processes(
            ctx, lambda _k: timed_process(_COMMAND, command, str(store), *filled), _PROCESSES
        )

    return run


for _name, (_arguments, _what) in _COMMANDS.items():
    benchmark(
        f"cli.{_name}.1m",
        group=_GROUP,
        durable=False,
        description=f"snapstore {_name.split('.')[0]} on 1,000,000 snapshots (2,000 with "
        f"--quick), a whole process: {_what}",
        ref=_BASELINE if _name.startswith("export") else None,
    )(_command(_name, _arguments))


@benchmark(
    _BASELINE,
    group=_GROUP,
    durable=False,
    description="baseline: the same snapshots.jsonl read by pyarrow.json and written to "
    "parquet in a fresh process (no checks, no typing rule)",
)
def arrow_json_to_parquet(ctx: Context) -> Measurement:
    store = built_store(ctx, ctx.count(*_SIZE), "versions")
    out = str(ctx.scratch / "arrow.parquet")
    return timed_processes(
        ctx,
        lambda _k: timed_process(_ARROW, str(store / "snapshots.jsonl"), out),
        _PROCESSES,
    )
