"""``ls``, ``show``, ``diff``, ``baseline``, ``export`` and ``info``: what they print and write."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest

from snapstore import NormalizedSnapshot, SnapshotStore
from snapstore.cli.main import main
from workers import WAIT, save_many

if TYPE_CHECKING:
    from pathlib import Path

A = {"model": "gbm", "lr": 0.1}
B = {"model": "gbm", "lr": 0.05}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three runs of config A and one of B through two stages; TRAIN of run-1 re-saved once."""
    root = tmp_path / "store"
    with SnapshotStore(root) as opened:
        for number, config, auc in [(1, A, 0.70), (2, A, 0.80), (3, B, 0.75), (4, A, 0.90)]:
            run = f"run-{number}"
            opened.save_snapshot(NormalizedSnapshot(run, "PREP", metrics={"rows": 100 * number}))
            train = opened.save_snapshot(
                NormalizedSnapshot(
                    run, "TRAIN", metrics={"auc": auc}, config=config, data={"note": f"n{number}"}
                )
            )
            opened.get_or_establish_baseline(train)
        opened.save_snapshot(
            NormalizedSnapshot("run-1", "TRAIN", metrics={"auc": 0.72}, config=A)
        )  # seq 9: a second version
        opened.history("run-1.TRAIN").extend({"step": i, "loss": 1 / (i + 1)} for i in range(5))
    return root


def out_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    return json.loads(out_of(capsys, *argv, "--format", "json"))


# -- ls ---------------------------------------------------------------------------


def test_ls_lists_the_latest_version_of_each_run_and_stage(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = as_json(capsys, "ls", str(store))
    assert isinstance(rows, list)
    assert [(r["snapshot_seq"], r["run_id"], r["stage"]) for r in rows] == [
        (1, "run-1", "PREP"),
        (3, "run-2", "PREP"),
        (4, "run-2", "TRAIN"),
        (5, "run-3", "PREP"),
        (6, "run-3", "TRAIN"),
        (7, "run-4", "PREP"),
        (8, "run-4", "TRAIN"),
        (9, "run-1", "TRAIN"),
    ]
    assert list(rows[0]) == [
        "snapshot_seq",
        "run_id",
        "stage",
        "baseline",
        "metrics.auc",
        "metrics.rows",
    ]
    assert rows[-1]["metrics.auc"] == 0.72
    assert rows[0]["metrics.auc"] is None


def test_ls_all_versions_filters_columns_and_sorts(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = as_json(
        capsys,
        "ls",
        str(store),
        "--all-versions",
        "--stage",
        "TRAIN",
        "--where",
        "metrics.auc >= 0.72",
        "--columns",
        "run_id,config.*,baseline",
        "--sort",
        "metrics.auc",
        "--desc",
    )
    assert rows == [
        {"run_id": "run-4", "config.lr": 0.1, "config.model": "gbm", "baseline": False},
        {"run_id": "run-2", "config.lr": 0.1, "config.model": "gbm", "baseline": False},
        {"run_id": "run-3", "config.lr": 0.05, "config.model": "gbm", "baseline": True},
        {"run_id": "run-1", "config.lr": 0.1, "config.model": "gbm", "baseline": False},
    ]


def test_ls_run_glob_group_and_limit(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SnapshotStore(store, read_only=True) as opened:
        key_b = opened.get("run-3", "TRAIN").comparison_key  # type: ignore[union-attr]
    rows = as_json(capsys, "ls", str(store), "--run", "run-[12]", "--columns", "snapshot_seq")
    assert rows == [
        {"snapshot_seq": 1},
        {"snapshot_seq": 3},
        {"snapshot_seq": 4},
        {"snapshot_seq": 9},
    ]
    rows = as_json(capsys, "ls", str(store), "--group", str(key_b), "--columns", "run_id")
    assert rows == [{"run_id": "run-3"}]
    rows = as_json(capsys, "ls", str(store), "--limit", "2", "--columns", "snapshot_seq")
    assert rows == [{"snapshot_seq": 1}, {"snapshot_seq": 3}]


def test_ls_table_csv_and_markdown_agree(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = out_of(capsys, "ls", str(store), "--columns", "run_id,stage,metrics.auc")
    lines = [line.split() for line in table.splitlines()]
    assert lines[0] == ["run_id", "stage", "metrics.auc"]
    assert lines[1] == ["run-1", "PREP", "-"]
    assert lines[-1] == ["run-1", "TRAIN", "0.72"]
    rows = list(csv.DictReader(io.StringIO(out_of(capsys, "ls", str(store), "--format", "csv"))))
    assert len(rows) == 8
    assert rows[-1]["metrics.auc"] == "0.72"
    assert rows[0]["metrics.auc"] == ""
    markdown = out_of(capsys, "ls", str(store), "--format", "md", "--columns", "run_id")
    assert markdown.splitlines()[:3] == ["| run_id |", "| --- |", "| run-1 |"]


def test_a_terminal_table_is_cut_to_its_limit_and_says_so(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", str(store), "--limit", "3"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4  # the header and three rows
    assert "5 more row(s) not shown: --limit 0 shows all" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--where", "metrics.acu > 1"], "no record has the column 'metrics.acu'"),
        (["--where", "metrics.auc >"], "cannot read the condition"),
        (["--columns", "nope"], "no column 'nope'"),
        (["--sort", "nope"], "cannot sort by 'nope'"),
    ],
)
def test_ls_says_what_is_wrong_with_a_selection(
    store: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["ls", str(store), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snapstore: error: ")
    assert message in err


def test_read_commands_change_nothing_and_refuse_a_missing_store(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
    for argv in (["ls"], ["info"], ["baseline"], ["show", "--seq", "1"], ["diff", "1", "2"]):
        out_of(capsys, argv[0], str(store), *argv[1:])
    assert {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()} == before
    assert main(["ls", str(tmp_path / "missing")]) == 2
    assert "snapstore: error: " in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


# -- show, diff, baseline -----------------------------------------------------------


def test_show_gives_the_snapshot_its_versions_and_its_group(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = as_json(capsys, "show", str(store), "run-1", "TRAIN")
    assert isinstance(shown, dict)
    assert shown["snapshot"]["snapshot_seq"] == 9
    assert shown["versions"] == [2, 9]
    assert shown["baseline"] == 2
    assert shown["is_baseline"] is False
    assert shown["previous_comparable"] == 8
    by_seq = as_json(capsys, "show", str(store), "--seq", "2")
    assert isinstance(by_seq, dict)
    assert by_seq["is_baseline"] is True
    assert by_seq["previous_comparable"] is None
    table = out_of(capsys, "show", str(store), "run-1", "TRAIN")
    assert "config.lr" in table
    assert "seq 2 (run-1)" in table


@pytest.mark.parametrize("argv", [[], ["run-1"], ["run-1", "TRAIN", "--seq", "2"]])
def test_show_needs_run_and_stage_or_a_seq(store: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["show", str(store), *argv])
    assert exited.value.code == 2


def test_show_of_a_missing_snapshot_is_an_error(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(store), "run-9", "TRAIN"]) == 2
    assert "no snapshot of run 'run-9', stage 'TRAIN'" in capsys.readouterr().err
    assert main(["show", str(store), "--seq", "99"]) == 2


def test_diff_of_two_snapshots(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    found = as_json(capsys, "diff", str(store), "run-2:TRAIN", "6")
    assert isinstance(found, dict)
    assert (found["before"]["snapshot_seq"], found["after"]["snapshot_seq"]) == (4, 6)
    (auc,) = found["metrics"]
    assert auc["name"] == "auc"
    assert auc["absolute"] == pytest.approx(-0.05)
    assert auc["relative"] == pytest.approx(-0.0625)
    assert found["config"]["changed"] == [{"name": "lr", "before": 0.1, "after": 0.05}]
    assert found["data"]["changed"] == [{"name": "note", "before": "n2", "after": "n3"}]
    table = out_of(capsys, "diff", str(store), "4", "6")
    assert table.splitlines()[0] == "seq 4 (run-2) -> seq 6 (run-3)"
    assert "config.lr" in table


def test_diff_previous_and_baseline(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    previous = as_json(capsys, "diff", str(store), "run-4:TRAIN", "--previous")
    assert isinstance(previous, dict)
    assert previous["before"]["snapshot_seq"] == 4
    baseline = as_json(capsys, "diff", str(store), "run-4:TRAIN", "--baseline")
    assert isinstance(baseline, dict)
    assert baseline["before"]["snapshot_seq"] == 2
    assert main(["diff", str(store), "run-3:TRAIN", "--previous"]) == 2
    assert "has no previous comparable run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv", [["1"], ["1", "2", "--previous"], ["1", "--previous", "--baseline"]]
)
def test_diff_needs_exactly_one_other_side(store: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["diff", str(store), *argv])
    assert exited.value.code == 2


def test_baseline_lists_and_pins(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pins = as_json(capsys, "baseline", str(store))
    assert isinstance(pins, list)
    assert sorted(pin["snapshot_seq"] for pin in pins) == [2, 6]
    said = out_of(capsys, "baseline", str(store), "--set", "run-4:TRAIN")
    assert said.startswith("pinned seq 8 (run-4) as the baseline of TRAIN / ")
    assert said.rstrip().endswith("(was seq 2 (run-1))")
    with SnapshotStore(store, read_only=True) as opened:
        assert sorted(snap.snapshot_seq or 0 for snap in opened.baselines()) == [6, 8]
    assert as_json(capsys, "baseline", str(store), "--stage", "PREP") == []


# -- export and info -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_export_writes_every_snapshot_typed(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    target = tmp_path / f"runs{suffix}"
    assert main(["export", str(store), "-o", str(target)]) == 0
    assert capsys.readouterr().err == f"{target}: 9 row(s), 11 column(s)\n"
    if suffix == ".parquet":
        table = pq.read_table(target)
        assert table.num_rows == 9
        assert str(table.schema.field("metrics.auc").type) == "double"
        assert str(table.schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    elif suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(target.read_text())))
        assert [row["snapshot_seq"] for row in rows] == [str(seq) for seq in range(1, 10)]
    else:
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert [row["snapshot_seq"] for row in rows] == list(range(1, 10))
        assert rows[1]["config.lr"] == 0.1


def test_export_a_history_and_a_selection(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "steps.jsonl"
    assert main(["export", str(store), "--history", "run-1.TRAIN", "-o", str(target)]) == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["data.step"] for row in rows] == [0, 1, 2, 3, 4]
    history_file = store / "history" / "run-1.TRAIN.jsonl"
    assert main(["export", str(history_file), "-o", str(target), "--where", "data.step > 2"]) == 0
    assert [json.loads(line)["seq"] for line in target.read_text().splitlines()] == [4, 5]
    assert (
        main(
            [
                "export",
                str(store),
                "--stage",
                "TRAIN",
                "--latest-only",
                "-o",
                "-",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["snapshot_seq"] for row in rows] == ["4", "6", "8", "9"]


def test_export_needs_a_known_format(store: Path, tmp_path: Path) -> None:
    for argv in (["-o", str(tmp_path / "runs.xlsx")], ["-o", "-", "--format", "parquet"]):
        with pytest.raises(SystemExit) as exited:
            main(["export", str(store), *argv])
        assert exited.value.code == 2
    assert not (tmp_path / "runs.xlsx").exists()


def test_info_counts_and_describes_the_files(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = as_json(capsys, "info", str(store))
    assert isinstance(facts, dict)
    assert facts["snapshots"] == 9
    assert facts["seq_range"] == [1, 9]
    assert facts["baselines"] == 2
    assert facts["histories"] == {"run-1.TRAIN": 5}
    assert facts["details"]["snapshots.jsonl"].endswith(" bytes")
    assert "index" in facts["details"]
    table = out_of(capsys, "info", str(store))
    assert "1 .. 9" in table
    assert "1 (5 record(s) in all)" in table


def test_ls_reads_a_store_another_process_is_writing(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writer = context.Process(target=save_many, args=(str(store), 7, 1000, start))
    writer.start()
    try:
        start.wait(WAIT)
        seen: list[int] = []
        while writer.is_alive() or not seen:
            rows = as_json(capsys, "ls", str(store), "--all-versions", "--columns", "snapshot_seq")
            assert isinstance(rows, list)
            seqs = [row["snapshot_seq"] for row in rows]
            assert seqs == list(range(1, len(seqs) + 1))  # a prefix of the log, no gap
            seen.append(len(seqs))
    finally:
        writer.join(WAIT)
    assert writer.exitcode == 0
    assert seen == sorted(seen)
    rows = as_json(capsys, "ls", str(store), "--all-versions", "--columns", "snapshot_seq")
    assert isinstance(rows, list)
    assert len(rows) == 9 + 1000


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    root = tmp_path / "two-runs"
    with SnapshotStore(root) as opened:
        for number, auc in enumerate((0.7, 0.8), 1):
            opened.save_snapshot(
                NormalizedSnapshot(f"run-{number}", "TRAINING", metrics={"auc": auc})
            )
        opened.set_baseline(opened.get_by_seq(1))
    return root


@pytest.mark.parametrize("output_format", ["json", "csv", "md"])
def test_baseline_set_prints_the_pin_in_the_format_asked_for(
    two_runs: Path, output_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["baseline", str(two_runs), "--set", "run-2:TRAINING", "--format", output_format]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert not out.startswith("pinned"), out
    if output_format == "json":
        pinned = json.loads(out)
        assert pinned["snapshot_seq"] == 2
        assert (pinned["run_id"], pinned["stage"], pinned["replaced"]) == ("run-2", "TRAINING", 1)
        assert pinned["comparison_key"]
    else:
        assert "replaced" in out
    with SnapshotStore(two_runs, read_only=True) as opened:
        (baseline,) = opened.baselines()
        assert baseline.snapshot_seq == 2


def test_baseline_set_says_what_it_replaced(
    two_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", str(two_runs), "--set", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pinned seq 2 (run-2) as the baseline of TRAINING / ")
    assert out.endswith("(was seq 1 (run-1))\n")
