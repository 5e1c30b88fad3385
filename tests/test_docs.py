"""The documentation's examples run, and every command is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from snapstore.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks(doc: str) -> list[str]:
    return CODE_BLOCK.findall((ROOT / doc).read_text())


@pytest.mark.parametrize("doc", ["README.md", "docs/tutorial.md"])
def test_examples_run_in_order(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # The migration example reads an older layout: give it one.
    legacy = tmp_path / "old" / "results"
    legacy.mkdir(parents=True)
    (legacy / "snapshot_index.json").write_text(
        json.dumps(
            {
                "run-1:TRAINING": {
                    "run_id": "run-1",
                    "stage": "TRAINING",
                    "timestamp": "2025-11-18T18:30:18Z",
                }
            }
        )
    )
    namespace: dict[str, object] = {"__name__": "docs_example"}
    blocks = python_blocks(doc)
    assert blocks
    for block in blocks:
        exec(compile(block, doc, "exec"), namespace)


def test_every_command_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = cli.commands
    assert commands
    for name in commands:
        assert f"`snapstore {name}" in readme, f"snapstore {name} is missing from the README"
