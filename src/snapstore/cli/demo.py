"""``snapstore demo``: a small ML pipeline recorded in a store, then checked.

Several runs go through TARGET_RANKING -> FEATURE_SELECTION -> TRAINING. For each
stage, worker processes append their iterations to one history at the same
time; the stage's result is saved as a snapshot; each TRAINING snapshot is
compared with the previous comparable run and with its baseline. At the end the
store is opened afresh and every invariant is checked against the logs.

The demo adds only to a store of its own. Each snapshot it saves carries the
data field ``snapstore_demo`` (which nothing else writes), and each history it
writes is named ``run-NNN.STAGE``. A directory that is already a store is used
only if every snapshot in it carries that field and every history in it has
such a name (an empty store qualifies); any other store is refused before
anything is written. Snapshots the demo saved before it marked them are
recognised by their exact shape (a run-NNN run, one of the demo's stages and
configs, the metrics auc and iterations, no data).
"""

from __future__ import annotations

import multiprocessing
import random
import re
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from snapstore._errors import InvalidInputError
from snapstore._log.record import decode_line
from snapstore._options import DEFAULT_LOCK_TIMEOUT
from snapstore.backends.local.layout import HISTORY_DIR, MARKER, SNAPSHOT_LOG
from snapstore.cli.options import EXIT_DAMAGE, EXIT_OK, lock_timeout_option
from snapstore.history import IterationHistory
from snapstore.snapshot import NormalizedSnapshot
from snapstore.store import SnapshotStore

if TYPE_CHECKING:
    from collections.abc import Callable

STAGES = ("TARGET_RANKING", "FEATURE_SELECTION", "TRAINING")
CONFIGS = ({"model": "gbm", "lr": 0.1, "depth": 6}, {"model": "gbm", "lr": 0.05, "depth": 8})
WORKERS = 3
ITERATIONS = 12
# The data field each demo snapshot carries: how the demo knows a store of its own.
DEMO_FIELD = "snapstore_demo"
_DEMO_RUN = re.compile(r"run-\d{3,}")
_DEMO_HISTORY = re.compile(rf"run-\d{{3,}}\.(?:{'|'.join(STAGES)})\.jsonl")
DEFAULT_DEMO_DIR = "snapstore-demo"


@click.command(short_help="Record a simulated ML pipeline in a store, then check every invariant.")
@click.argument("directory", default=DEFAULT_DEMO_DIR, type=click.Path(path_type=Path))
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Pipeline runs to record.",
)
@lock_timeout_option
def demo(*, directory: Path, runs: int, lock_timeout: float) -> int:
    """Record a simulated ML pipeline in DIRECTORY, compare runs, and check the store.

    Several runs go through three stages with parallel workers. DIRECTORY
    (default ./snapstore-demo) may be new, empty, or a store the demo wrote:
    each snapshot the demo saves carries the data field 'snapstore_demo', and
    each history it writes is named run-NNN.STAGE. A store holding any other
    snapshot or history is refused, and nothing is written to it (exit
    status 2). Exit status 1 if a check fails. Ends with commands to try on
    the store.
    """
    passed = run_demo(directory, runs, click.echo, lock_timeout=lock_timeout)
    if passed:
        click.echo("")
        click.echo(next_commands(directory))
    return EXIT_OK if passed else EXIT_DAMAGE


def next_commands(root: Path) -> str:
    """What to try next on the store the demo made: one command per line, with what it shows."""
    store = _quoted(root)
    tries = [
        (f"snapstore ls {store}", "the run table: each run's latest snapshot of each stage"),
        (f"snapstore show {store} run-001 TRAINING", "one snapshot in full, with its versions"),
        (f"snapstore diff {store} {_compared(root)}", "against its previous comparable run"),
        (f"snapstore baseline {store}", "the pinned baselines"),
        (f"snapstore history {store} run-001.TRAINING --tail 5", "a history's last records"),
        (f"snapstore plot {store} --metric auc -o auc.png", "a metric over the runs, to a PNG"),
        (f"snapstore export {store} -o runs.csv", "every snapshot, to CSV (or .parquet, .jsonl)"),
        (f"snapstore info {store}", "counts, sizes and the index"),
    ]
    width = max(len(command) for command, _what in tries)
    lines = [f"  {command:<{width}}  # {what}" for command, what in tries]
    return "\n".join(["Try next:", *lines])


def _compared(root: Path) -> str:
    """A diff worth a look: the newest training run against its previous comparable run.

    With one config run once each (``--runs 1`` or 2) no run has one; then
    the newest against its baseline.
    """
    with SnapshotStore(root, read_only=True) as store:
        trainings = list(store.snapshots(stage="TRAINING"))
        for snap in reversed(trainings):
            if store.find_previous_comparable(snap) is not None:
                return f"{snap.run_id}:TRAINING --previous"
    return f"{trainings[-1].run_id}:TRAINING --baseline"


def _quoted(path: Path) -> str:
    import shlex  # noqa: PLC0415 - only the demo's last lines need it

    return shlex.quote(str(path))


@dataclass(frozen=True, slots=True)
class TrainingRow:
    run_id: str
    config: int
    auc: float
    previous: NormalizedSnapshot | None
    baseline: NormalizedSnapshot


def _work(history_path: str, worker: int, run_seed: int, lock_timeout: float) -> int:
    """One worker process: append its iterations (keyed, so a retry never duplicates)."""
    rng = random.Random(run_seed * 100 + worker)
    with IterationHistory(history_path, lock_timeout=lock_timeout) as history:
        for i in range(ITERATIONS):
            history.append(
                {
                    "worker": worker,
                    "iteration": i,
                    "loss": round(1 / (i + 1) + rng.random() / 10, 4),
                },
                key=f"w{worker}-i{i}",
            )
    return ITERATIONS


def run_demo(
    root: Path,
    runs: int,
    echo: Callable[[str], None],
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> bool:
    """Record ``runs`` pipeline runs in ``root``; return whether every check passed.

    Raises InvalidInputError, having written nothing, if ``root`` is a store
    the demo did not write.
    """
    problem = foreign_store_problem(root)
    if problem is not None:
        raise InvalidInputError(
            f"{root} is a snapstore store the demo did not write ({problem}); "
            "the demo adds only to a store of its own: pick another directory"
        )
    rows: list[TrainingRow] = []
    context = multiprocessing.get_context("spawn")
    with (
        SnapshotStore(root, lock_timeout=lock_timeout) as store,
        ProcessPoolExecutor(WORKERS, mp_context=context) as pool,
    ):
        first = len(store) // len(STAGES) + 1
        for number in range(first, first + runs):
            run_id = f"run-{number:03d}"
            config_no = number % len(CONFIGS)
            rng = random.Random(number)
            for stage in STAGES:
                history = store.history(f"{run_id}.{stage}")
                jobs = [
                    pool.submit(_work, str(history.path), worker, number, lock_timeout)
                    for worker in range(WORKERS)
                ]
                appended = sum(job.result() for job in jobs)
                metrics = {"auc": round(0.70 + rng.random() / 10, 4), "iterations": appended}
                snap = store.save_snapshot(
                    NormalizedSnapshot(
                        run_id,
                        stage,
                        metrics=metrics,
                        config=CONFIGS[config_no],
                        data={DEMO_FIELD: True},
                    )
                )
                if stage == "TRAINING":
                    rows.append(
                        TrainingRow(
                            run_id,
                            config_no,
                            metrics["auc"],
                            store.find_previous_comparable(snap),
                            store.get_or_establish_baseline(snap),
                        )
                    )
            echo(
                f"{run_id}: {len(STAGES)} stages, {WORKERS} workers x {ITERATIONS} iterations each"
            )
    echo("")
    echo(_table(rows))
    echo("")
    problems = check_store(root, lock_timeout=lock_timeout)
    for problem in problems:
        echo(f"FAILED: {problem}")
    if not problems:
        echo(f"reopened {root}: every invariant holds")
    return not problems


def _table(rows: list[TrainingRow]) -> str:
    header = (
        f"{'run':<9} {'config':<7} {'auc':>7}  {'vs previous comparable':<24} {'vs baseline':<22}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        previous = "-" if row.previous is None else _delta(row.auc, row.previous)
        lines.append(
            f"{row.run_id:<9} {'AB'[row.config]:<7} {row.auc:>7.4f}  "
            f"{previous:<24} {_delta(row.auc, row.baseline):<22}"
        )
    return "\n".join(lines)


def _delta(auc: float, other: NormalizedSnapshot) -> str:
    return f"{auc - float(other.metrics['auc']):+.4f} ({other.run_id})"


def foreign_store_problem(root: Path) -> str | None:
    """Why ``root`` is a store the demo did not write; None if it is not a store or the demo's.

    The files are read, not opened as a store: opening one may change it (a
    torn tail is moved to quarantine, temp files of crashed writers removed).
    """
    if not (root / MARKER).exists():
        return None  # a new or empty directory (SnapshotStore refuses one of other files)
    try:
        data = (root / SNAPSHOT_LOG).read_bytes()
    except FileNotFoundError:
        data = b""
    # An unterminated last line is an append a crash cut short, not a snapshot.
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        record = decode_line(line)
        if record is None:
            return f"line {number} of {SNAPSHOT_LOG} is not a valid record"
        snapshot = record["data"]
        if not _is_demo_snapshot(snapshot):
            return (
                f"snapshot_seq {record['seq']} ({snapshot.get('run_id')!r}, "
                f"{snapshot.get('stage')!r}) lacks the data field {DEMO_FIELD!r}"
            )
    for history in sorted((root / HISTORY_DIR).glob("*.jsonl")):
        if not _DEMO_HISTORY.fullmatch(history.name):
            return f"history {history.stem!r} is not one of the demo's"
    return None


def _is_demo_snapshot(snapshot: dict[str, Any]) -> bool:
    fields = snapshot.get("data")
    if isinstance(fields, dict) and fields.get(DEMO_FIELD) is True:
        return True
    # One the demo saved before it marked them: known by its exact shape.
    return (
        fields == {}
        and _DEMO_RUN.fullmatch(str(snapshot.get("run_id"))) is not None
        and snapshot.get("stage") in STAGES
        and snapshot.get("config") in CONFIGS
        and isinstance(snapshot.get("metrics"), dict)
        and set(snapshot["metrics"]) == {"auc", "iterations"}
    )


def check_store(root: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[str]:
    """Reopen ``root`` and check the invariants against a from-scratch replay."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        # A copy without its derived files must give identical answers.
        bare = Path(scratch) / "store"
        shutil.copytree(
            root, bare, ignore=shutil.ignore_patterns("index.parquet", "snapshot_index.json")
        )
        with (
            SnapshotStore(root, lock_timeout=lock_timeout) as store,
            SnapshotStore(bare) as replayed,
        ):
            snaps = list(store.snapshots())
            seqs = [snap.snapshot_seq for snap in snaps]
            if seqs != list(range(1, len(snaps) + 1)):
                problems.append(f"snapshot seqs are not 1..{len(snaps)}")
            latest: dict[tuple[str, str], NormalizedSnapshot] = {}
            for snap in snaps:
                latest[snap.run_id, snap.stage] = snap
                previous = [
                    s
                    for s in snaps
                    if s.stage == snap.stage
                    and s.comparison_key == snap.comparison_key
                    and s.run_id != snap.run_id
                    and (s.snapshot_seq or 0) < (snap.snapshot_seq or 0)
                ]
                expected = previous[-1] if previous else None
                problems.extend(
                    f"previous comparable of seq {snap.snapshot_seq} is wrong"
                    for answer in (store, replayed)
                    if answer.find_previous_comparable(snap) != expected
                )
                if replayed.baseline(snap.stage, snap.comparison_key or "") != store.baseline(
                    snap.stage, snap.comparison_key or ""
                ):
                    problems.append(f"baseline of {snap.stage} differs after a replay")
            for (run_id, stage), snap in latest.items():
                if store.get(run_id, stage) != snap or replayed.get(run_id, stage) != snap:
                    problems.append(f"latest {run_id}:{stage} is not seq {snap.snapshot_seq}")
                history = store.history(f"{run_id}.{stage}")
                records = list(history)
                if [r.seq for r in records] != list(range(1, len(records) + 1)):
                    problems.append(f"history {run_id}.{stage} seqs have a gap or duplicate")
                if len({r.key for r in records}) != len(records):
                    problems.append(f"history {run_id}.{stage} holds a key twice")
    return problems
