"""What `import snapstore` and a short process that saves and reads bring in, and what they leave.

A pipeline stage often runs in a process of its own that opens a store, saves
a snapshot or two, reads one back and exits: every module imported on the way
is paid for by every such process. The checks (verify, repair), their reports,
the memory backend, pyarrow and pandas are imported when they are used, and
the standard library modules below not at all.

Each test runs a fresh interpreter, so that what this one imported hides
nothing, and names only what it added itself (not what the interpreter's
start-up brought).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Imported by verify and repair (and what they return), a memory:// target,
# tables, diffs, exports and checkpoints: never by saving and reading.
DEFERRED = [
    "snapstore._report",
    "snapstore._tables",
    "snapstore._extras",
    "snapstore.diff",
    "snapstore.backends.local.repair",
    "snapstore.backends.memory",
    "snapstore.cli",
    "snapstore.testing",
    "pyarrow",
    # Progress is only told by verify, repair and an index rebuilt in bulk;
    # the command's bars are never the library's.
    "snapstore._progress",
    "rich",
    "pandas",
    "numpy",
    # snapstore plot draws with it; nothing else loads it.
    "matplotlib",
    # The command line's own: only the command imports it.
    "click",
    # Random tokens come from os.urandom, not secrets (which imports hmac).
    "secrets",
    "hmac",
    # No warning is logged on the way: a checkpoint is checked, not loaded.
    "logging",
]
if sys.platform != "win32":
    # The host name comes from os.uname; Windows asks socket, and uses tempfile.
    DEFERRED += ["socket", "tempfile"]

_SCRIPT = """
import json, sys

before = set(sys.modules)
seen = {}

def look(stage):
    seen[stage] = sorted(set(sys.modules) - before)

import snapstore
look("import")
from snapstore import IterationHistory, NormalizedSnapshot, SnapshotStore

root = sys.argv[1]
with SnapshotStore(root + "/store") as store:
    saved = store.save_snapshot(NormalizedSnapshot("run-1", "train", metrics={"auc": 0.8}))
    assert store.get("run-1", "train") == saved
    assert store.get_by_seq(saved.snapshot_seq) == saved
    with store.history("loss") as history:
        history.append({"iteration": 1, "loss": 0.5})
        assert [record.data for record in history] == [{"iteration": 1, "loss": 0.5}]
    look("save and read")  # before close: the checkpoint it writes imports pyarrow
    assert store.verify().ok
    look("verify")
    assert store.to_arrow(where="metrics.auc > 0.5").num_rows == 1
    look("table")
    assert store.diff_previous(saved) is None
    look("diff")
print(json.dumps(seen))
"""


def _imported(tmp_path: Path) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen: dict[str, list[str]] = json.loads(done.stdout)
    return seen


def _deferred_in(modules: list[str]) -> list[str]:
    return [
        name
        for name in modules
        if any(name == deferred or name.startswith(f"{deferred}.") for deferred in DEFERRED)
    ]


def test_import_and_a_short_save_and_read_leave_the_deferred_modules_unimported(
    tmp_path: Path,
) -> None:
    seen = _imported(tmp_path)
    assert _deferred_in(seen["import"]) == []
    assert _deferred_in(seen["save and read"]) == []


def test_verify_imports_the_checks_when_it_runs(tmp_path: Path) -> None:
    # The other side of the deferral, and a check that the names above are
    # the modules' real names (an absent misspelled name would prove nothing).
    imported = set(_imported(tmp_path)["verify"])
    assert {"snapstore._report", "snapstore.backends.local.repair"} <= imported


def test_tables_and_diffs_import_their_modules_when_asked_for(tmp_path: Path) -> None:
    seen = _imported(tmp_path)
    assert {"snapstore._tables", "snapstore._extras", "pyarrow"} <= set(seen["table"])
    assert "snapstore.diff" not in seen["table"]
    assert "snapstore.diff" in seen["diff"]
