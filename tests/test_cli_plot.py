"""``snapstore plot``: each kind of chart drawn to a real image, what it holds, and its errors."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import matplotlib.image
import numpy as np
import pytest

from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore
from snapstore._log.lock import WriterLock
from snapstore._log.seam import FileSystem
from snapstore.cli import plot as plot_module
from snapstore.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path

    from snapstore.cli.chart import Chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUNS = ("run-001", "run-002", "run-003", "run-004")
STAGES = ("TRAINING", "EVAL")
# The baselines' star is filled with matplotlib's "gold": (255, 215, 0).
GOLD = np.array([1.0, 215 / 255, 0.0])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Four runs through two stages; run-002's TRAINING pinned; a history per run."""
    root = tmp_path / "store"
    with SnapshotStore(root) as opened:
        for number, run_id in enumerate(RUNS, start=1):
            for stage in STAGES:
                saved = opened.save_snapshot(
                    NormalizedSnapshot(
                        run_id,
                        stage,
                        metrics={"auc": 0.7 + number / 100 + (stage == "EVAL") / 50},
                        config={"model": "gbm"},
                    )
                )
                if run_id == "run-002" and stage == "TRAINING":
                    opened.set_baseline(saved)
            history = opened.history(f"{run_id}.TRAINING")
            # Two workers, each counting its iterations from 0: the iterations repeat.
            for worker in (0, 1):
                history.extend(
                    [
                        {"iteration": i, "worker": worker, "loss": 1 / (i + 1) + number / 10}
                        for i in range(5)
                    ]
                )
    return root


def image_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height in pixels, as its IHDR chunk (the first) says."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def pixels(path: Path) -> np.ndarray:
    """The image's RGB pixels, each channel in [0, 1]."""
    image = matplotlib.image.imread(path)
    return np.asarray(image)[..., :3]


def check_drawn(path: Path, width: int, height: int) -> None:
    """``path`` is a PNG of ``width`` x ``height`` pixels with something drawn on it."""
    assert image_size(path) == (width, height)
    rgb = pixels(path)
    assert rgb.shape == (height, width, 3)
    assert float(rgb.std()) > 0.01  # not blank
    colours = {tuple(pixel) for pixel in (rgb * 255).round().astype(int).reshape(-1, 3)}
    assert len(colours) > 20  # lines, text and their anti-aliasing, not a flat fill


def has_gold(path: Path) -> bool:
    return bool((np.abs(pixels(path) - GOLD).max(axis=-1) < 0.02).any())


def plotted(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Chart:
    """The chart ``snapstore plot ARGV`` would draw (nothing is drawn)."""
    charts: list[Chart] = []
    monkeypatch.setattr(plot_module, "draw", lambda chart, *_a, **_k: charts.append(chart))
    assert main(["plot", *argv]) == 0
    (chart,) = charts
    return chart


# -- a metric over runs ------------------------------------------------------------


def test_a_metric_over_runs_is_drawn_with_its_baseline_marked(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "auc.png"
    assert main(["plot", str(store), "--metric", "auc", "-o", str(output)]) == 0
    check_drawn(output, 800, 450)  # the default: 8 x 4.5 inches at 100 dpi
    assert has_gold(output)
    assert capsys.readouterr().err == f"{output}: 8 point(s), 2 series\n"


def test_the_runs_chart_has_a_line_per_stage_over_seq_runs_named_and_baselines_marked(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [str(store), "--metric", "metrics.auc", "-o", str(tmp_path / "auc.png")]
    chart = plotted(argv, monkeypatch)
    assert [series.label for series in chart.series] == ["TRAINING", "EVAL"]
    training, evaluation = chart.series
    assert training.x == [1, 3, 5, 7]
    assert evaluation.x == [2, 4, 6, 8]
    assert training.y == pytest.approx([0.71, 0.72, 0.73, 0.74])
    assert chart.marked is not None
    assert (chart.marked.label, chart.marked.x) == ("baseline", [3])
    assert chart.ticks == [(1, "run-001"), (3, "run-002"), (5, "run-003"), (7, "run-004")]
    assert chart.y_label == "metrics.auc"
    # auc and metrics.auc name the same column.
    short = plotted([str(store), "--metric", "auc", "-o", str(tmp_path / "a.png")], monkeypatch)
    assert short == chart


def test_stage_run_and_where_choose_the_snapshots(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = str(tmp_path / "auc.png")
    chart = plotted([str(store), "-m", "auc", "--stage", "EVAL", "-o", output], monkeypatch)
    assert [series.label for series in chart.series] == ["EVAL"]
    assert chart.marked is None  # no EVAL snapshot is pinned
    chosen = ["--run", "run-00[34]", "--where", "metrics.auc > 0.735"]
    chart = plotted([str(store), "-m", "auc", *chosen, "-o", output], monkeypatch)
    # The stages in the order they first appear among the snapshots chosen.
    assert [(series.label, series.x) for series in chart.series] == [
        ("EVAL", [6, 8]),
        ("TRAINING", [7]),
    ]


def test_one_stage_is_drawn_at_the_size_asked(store: Path, tmp_path: Path) -> None:
    output = tmp_path / "eval.png"
    argv = ["--stage", "EVAL", "--width", "5", "--height", "3", "--dpi", "80", "--title", "EVAL"]
    assert main(["plot", str(store), "--metric", "auc", *argv, "-o", str(output)]) == 0
    check_drawn(output, 400, 240)
    assert not has_gold(output)  # no baseline among them


@pytest.mark.parametrize(("suffix", "start"), [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_the_extension_chooses_the_image_format(
    store: Path, tmp_path: Path, suffix: str, start: bytes
) -> None:
    output = tmp_path / f"auc{suffix}"
    assert main(["plot", str(store), "--metric", "auc", "-o", str(output)]) == 0
    assert output.read_bytes().startswith(start)


# -- histories ---------------------------------------------------------------------


def test_one_history_file_is_drawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "train.jsonl"
    with IterationHistory(source) as history:
        history.extend([{"iteration": i, "loss": 1 / (i + 1)} for i in range(20)])
    output = tmp_path / "loss.png"
    assert main(["plot", str(source), "--metric", "loss", "-o", str(output)]) == 0
    check_drawn(output, 800, 450)
    assert capsys.readouterr().err == f"{output}: 20 point(s), 1 series\n"
    chart = plotted([str(source), "--metric", "data.loss", "-o", str(output)], monkeypatch)
    (series,) = chart.series
    assert (series.label, series.x, series.joined) == ("train", list(range(1, 21)), True)
    assert (chart.x_label, chart.y_label) == ("seq", "data.loss")


def test_several_histories_of_a_store_are_overlaid(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "loss.png"
    names = ["run-003.TRAINING", "run-001.TRAINING"]
    assert main(["plot", str(store), *names, "--metric", "loss", "-o", str(output)]) == 0
    check_drawn(output, 800, 450)
    assert capsys.readouterr().err == f"{output}: 20 point(s), 2 series\n"
    chart = plotted([str(store), *names, "--metric", "loss", "-o", str(output)], monkeypatch)
    assert [series.label for series in chart.series] == names  # in the order named
    # A glob adds the histories it matches, each once, after those named.
    glob = ["--histories", "run-*.TRAINING"]
    chart = plotted(
        [str(store), "run-003.TRAINING", *glob, "-m", "loss", "-o", str(output)], monkeypatch
    )
    assert [series.label for series in chart.series] == [
        "run-003.TRAINING",
        "run-001.TRAINING",
        "run-002.TRAINING",
        "run-004.TRAINING",
    ]


def test_x_chooses_the_field_across_and_repeated_x_is_not_joined(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "loss.png"
    argv = [str(store), "run-001.TRAINING", "-m", "loss", "--x", "iteration", "-o", str(output)]
    assert main(["plot", *argv]) == 0
    check_drawn(output, 800, 450)
    chart = plotted(argv, monkeypatch)
    (series,) = chart.series
    assert series.x == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # in x order
    assert not series.joined  # two workers' iteration 0 are not a sequence
    assert chart.x_label == "data.iteration"
    where = ["--where", "data.worker == 1"]
    (series,) = plotted([*argv, *where], monkeypatch).series
    assert (series.x, series.joined) == ([0, 1, 2, 3, 4], True)


def test_plot_reads_a_store_whose_writer_lock_is_held(store: Path, tmp_path: Path) -> None:
    before = {path: path.read_bytes() for path in store.rglob("*") if path.is_file()}
    lock = WriterLock(store / ".lock", FileSystem(), timeout=1.0)
    with lock:  # a writer at work: a reader neither waits for it nor writes
        assert main(["plot", str(store), "-m", "auc", "-o", str(tmp_path / "a.png")]) == 0
    lock.close()
    assert {path: path.read_bytes() for path in store.rglob("*") if path.is_file()} == before


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--metric", "accuracy"],
            (
                "has no metric 'accuracy'; its numeric metrics are metrics.auc, metrics.nan, "
                "metrics.score"
            ),
        ),
        (["--metric", "note"], "metrics.note holds text (or numbers mixed with other values"),
        (["--metric", "config.model"], "config.model holds text"),
        (["--metric", "gap"], "no snapshot has a number as metrics.gap: nothing to plot"),
        (["--metric", "nan"], "no snapshot has a number as metrics.nan: nothing to plot"),
        (
            ["--metric", "score", "--stage", "EVAL"],
            (
                "that --stage, --run, --group and --where chose has a metric 'score'; its "
                "numeric metrics are metrics.auc"
            ),
        ),
        (["--metric", "auc", "--where", "metrics.auc > 2"], "no snapshot of "),
        (["nope", "--metric", "loss"], "has no history 'nope'; its histories are steps"),
        (["--histories", "x*", "--metric", "loss"], "matches 'x*'; there are steps"),
        (["steps", "--metric", "lr"], "history steps has no field 'lr'; its numeric fields are"),
    ],
)
def test_what_cannot_be_plotted_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    root = tmp_path / "store"
    with SnapshotStore(root) as opened:
        opened.save_snapshot(
            NormalizedSnapshot("run-1", "TRAINING", metrics={"auc": 0.5}, config={"model": "gbm"})
        )
        opened.save_snapshot(
            NormalizedSnapshot(
                "run-2",
                "TRAINING",
                metrics={"auc": 0.6, "note": "n/a", "gap": None, "nan": math.nan},
            )
        )
        opened.save_snapshot(
            NormalizedSnapshot("run-3", "TRAINING", metrics={"note": 0.1, "score": 3})
        )
        opened.save_snapshot(NormalizedSnapshot("run-1", "EVAL", metrics={"auc": 0.5}))
        opened.history("steps").append({"step": 1, "loss": 0.5})
    output = tmp_path / "out.png"
    assert main(["plot", str(root), *argv, "-o", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snapstore: error: ")
    assert err.count("\n") == 1
    assert message in err
    assert not output.exists()


def test_an_empty_store_has_nothing_to_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    SnapshotStore(tmp_path / "store").close()
    argv = ["plot", str(tmp_path / "store"), "-m", "auc", "-o", str(tmp_path / "a.png")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"snapstore: error: {tmp_path / 'store'} has no snapshots: nothing to plot\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-m", "auc", "-o", "auc.jpg"], "cannot tell the image format of auc.jpg"),
        (["-m", "auc", "--x", "iteration", "-o", "a.png"], "--x is for a history's plot"),
        (["steps", "-m", "loss", "--stage", "EVAL", "-o", "a.png"], "--stage, --run, --group"),
        (["-m", "auc", "--width", "nan", "-o", "a.png"], "finite numbers of inches"),
        (["-o", "a.png"], "Missing option '--metric'"),
    ],
)
def test_arguments_that_do_not_fit_are_usage_errors(
    store: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plot", str(store), *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# -- matplotlib: optional, and loaded only to draw ---------------------------------

_WITHOUT_MATPLOTLIB = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocked())
from snapstore.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_matplotlib_the_error_names_the_extra(store: Path, tmp_path: Path) -> None:
    output = tmp_path / "auc.png"
    argv = ["plot", str(store), "-m", "auc", "-o", str(output)]
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MATPLOTLIB, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "snapstore plot needs matplotlib" in done.stderr
    assert "pip install 'snapstore[plot]'" in done.stderr
    assert not output.exists()


def test_the_command_line_does_not_import_matplotlib() -> None:
    script = textwrap.dedent(
        """
        import sys
        import snapstore.cli.main
        print(sorted(name for name in sys.modules if name.split(".")[0] == "matplotlib"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == "[]\n"
