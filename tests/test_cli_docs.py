"""The command line's documentation: examples that run, a current reference, help everywhere.

Examples. Every ```console block of docs/cli.md and docs/tutorial.md is run,
in document order, in one scratch directory per document. The ```python
blocks that come before a document's last console block run too, in the same
directory and in order, so that the tutorial's console blocks look at the
store its Python recorded. In a console block:

- a line ``$ snapstore ARGS`` is a command. ARGS are split as a POSIX shell
  splits them (quotes; a trailing ``# ...`` comment is not an argument) and run
  as ``python -m snapstore ARGS``, with COLUMNS=80 and unbuffered output. Its
  output goes to a pipe, not a terminal: tables are as wide as their cells;
- the lines after a command, up to the next command or the end of the block,
  are what it prints, stdout and stderr together in the order written (as on
  a terminal);
- a line ``...`` stands for any number of lines, none included: a long
  output is cut short with it;
- the command must exit with status 0, or with N when its line ends with the
  comment ``# exit status N``.

The output is compared line by line, exactly, after normalising, in what the
document shows and in what the command printed alike, only what differs from
one run to the next:

- timestamps (``2025-06-01 12:00:00``, ``2025-06-01T12:00:00.602734+00:00``,
  ``2025-06-01 12:00:00.602734Z``) become ``<time>``, so a document writes
  any timestamp it likes in one of these forms;
- byte counts (``3,776 bytes``) become ``<n> bytes``, likewise;
- the scratch directory's absolute path is ``/home/me`` (a document writes a
  store's absolute path as ``/home/me/...``);
- trailing whitespace on each line, and blank lines at the end, are dropped.

Everything else (seqs, metrics, comparison keys, column widths) is
deterministic: the demo's metrics and histories are seeded. Records that
the demo's workers append to one history at the same time get their seqs in
the order the appends commit, which differs from run to run: examples show
those records without their seq (and sorted by their key or data).

Reference. The part of docs/cli.md between its reference markers is
``snapstore.cli.reference.render()``; ``python -m snapstore.cli.reference
docs/cli.md`` rewrites it. Help. Every command has a summary and a
description naming each of its arguments; every option has help; every
command is shown in docs/cli.md's examples.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

import snapstore
from snapstore.cli.main import cli
from snapstore.cli.reference import END, START, main, render, replace_reference

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(snapstore.__file__).resolve().parent.parent
CLI_DOC = "docs/cli.md"
DOCS = [CLI_DOC, "docs/tutorial.md"]
ELISION = "..."
HOME = "/home/me"
PROMPT = "$ "
FENCE = re.compile(r"```(?P<language>\w*)\s*")
EXIT_STATUS = re.compile(r"#\s*exit status (?P<status>\d+)\s*$")
TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
BYTES = re.compile(r"\b\d[\d,]* bytes\b")
# Settings that would make rich treat a pipe as a terminal, or colour it.
TERMINAL_SETTINGS = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE")


@dataclass(frozen=True)
class Example:
    """One command of a console block and what it prints."""

    line: int  # of the command, 1-based, in its document
    command: str
    expected: list[str]

    @property
    def args(self) -> list[str]:
        """The arguments after ``snapstore``."""
        program, *args = shlex.split(self.command, comments=True)
        assert program == "snapstore", f"line {self.line}: examples run snapstore, not {program}"
        return args

    @property
    def status(self) -> int:
        found = EXIT_STATUS.search(self.command)
        return int(found["status"]) if found else 0


@dataclass(frozen=True)
class Block:
    """A fenced block: its language, where it starts, its text, its examples (console)."""

    language: str
    line: int
    text: str
    examples: list[Example] = field(default_factory=list)


def blocks(doc: str) -> list[Block]:
    """The fenced code blocks of ``doc``, in order."""
    found: list[Block] = []
    lines = (ROOT / doc).read_text().splitlines()
    number = 0
    while number < len(lines):
        opening = FENCE.fullmatch(lines[number])
        number += 1
        if opening is None:
            continue
        start = number
        while lines[number] != "```":
            number += 1
        body = lines[start:number]
        number += 1
        language = opening["language"]
        examples = console_examples(doc, start, body) if language == "console" else []
        found.append(Block(language, start + 1, "\n".join(body) + "\n", examples))
    return found


def console_examples(doc: str, start: int, body: list[str]) -> list[Example]:
    examples: list[Example] = []
    for offset, line in enumerate(body):
        if line.startswith(PROMPT):
            examples.append(Example(start + offset + 1, line[len(PROMPT) :], []))
        else:
            assert examples, f"{doc}:{start + offset + 1}: a console block starts with '$ '"
            examples[-1].expected.append(line)
    return examples


def normalise(text: str, scratch: Path | None = None) -> list[str]:
    """``text`` as lines, with what differs from run to run made the same (see above)."""
    if scratch is not None:
        for path in sorted({str(scratch.resolve()), str(scratch)}, key=len, reverse=True):
            text = text.replace(path, HOME)
    text = BYTES.sub("<n> bytes", TIME.sub("<time>", text))
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected``, each line ``...`` in it standing for any lines."""
    pattern = "".join(
        r"(?:.*\n)*?" if line == ELISION else re.escape(line) + "\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(f"{line}\n" for line in actual)) is not None


def run_example(doc: str, example: Example, cwd: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in TERMINAL_SETTINGS}
    # The commands run in the scratch directory: the snapstore under test
    # must come first on the path, whatever PYTHONPATH said relative to here.
    path = [str(PACKAGE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(COLUMNS="80", PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(path))
    result = subprocess.run(
        [sys.executable, "-m", "snapstore", *example.args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    expected = normalise("\n".join(example.expected))
    actual = normalise(result.stdout, cwd)
    where = f"{doc}:{example.line}: $ {example.command}"
    assert result.returncode == example.status, f"{where}\nexit status {result.returncode}:\n" + (
        "\n".join(actual)
    )
    if not matches(expected, actual):
        diff = "\n".join(
            difflib.unified_diff(expected, actual, "documented", "printed", lineterm="")
        )
        pytest.fail(f"{where}\nprints otherwise (after normalising):\n{diff}", pytrace=False)


@pytest.mark.parametrize("doc", DOCS)
def test_console_examples_print_what_the_docs_show(
    doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = blocks(doc)
    console = [number for number, block in enumerate(found) if block.language == "console"]
    assert console, f"{doc} has no console examples"
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for block in found[: console[-1] + 1]:
        if block.language == "python":
            exec(compile("\n" * (block.line - 1) + block.text, doc, "exec"), namespace)
        for example in block.examples:
            run_example(doc, example, tmp_path)


def test_an_elision_stands_for_any_lines_and_nothing_else_is_loose() -> None:
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "d"], ["a", "d"])
    assert matches(["a", "..."], ["a"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["a", "b"], ["a", "b", "c"])
    assert not matches(["a.c"], ["abc"])
    assert normalise(" x  2025-06-01 12:00:00  3,776 bytes  \n\n") == [" x  <time>  <n> bytes"]
    assert normalise("at /tmp/x/s/t\n", Path("/tmp/x")) == [f"at {HOME}/s/t"]


def test_console_blocks_are_parsed_with_their_expected_output_and_status() -> None:
    examples = [e for block in blocks(CLI_DOC) for e in block.examples]
    assert examples[0].args[0] == "demo", "the examples begin by making the demo store"
    assert all(example.expected or example.status == 0 for example in examples)
    failing = [example for example in examples if example.status != 0]
    assert failing, "an example shows an error and its exit status"
    assert all(any("error" in line for line in e.expected) for e in failing if e.status == 2)


def test_every_command_is_in_the_examples() -> None:
    shown = {e.args[0] for block in blocks(CLI_DOC) for e in block.examples if e.args}
    missing = sorted(set(cli.commands) - shown)
    assert not missing, f"{CLI_DOC} has no example of: {', '.join(missing)}"


def test_the_reference_is_the_commands_help() -> None:
    document = (ROOT / CLI_DOC).read_text()
    assert replace_reference(document, render()) == document, (
        f"the reference in {CLI_DOC} is not the commands' help: "
        f"run python -m snapstore.cli.reference {CLI_DOC}"
    )


def test_the_reference_has_every_command_at_80_columns_whatever_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    wide = render()
    monkeypatch.setenv("COLUMNS", "40")
    assert render() == wide
    for name in cli.commands:
        assert f"### snapstore {name}\n\n```text\nUsage: snapstore {name} [OPTIONS]" in wide
    inside = [line for line in wide.splitlines() if not line.startswith("#")]
    assert max(map(len, inside)) <= 80


def test_the_reference_script_rewrites_between_the_markers_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "cli.md"
    doc.write_text(f"# Intro\n\n{START}\nold\n{END}\n\nmore\n")
    assert main([str(doc)]) == 0
    assert doc.read_text() == f"# Intro\n\n{START}\n\n{render()}\n{END}\n\nmore\n"
    assert main([str(doc)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{doc}: reference rewritten",
        f"{doc}: up to date",
    ]
    assert main(["-"]) == 0
    assert capsys.readouterr().out == render()
    doc.write_text(f"{END}\n{START}\n")
    assert main([str(doc)]) == 2
    assert "needs one line" in capsys.readouterr().err
    assert main([str(tmp_path / "absent.md")]) == 2
    assert "No such file or directory" in capsys.readouterr().err


def commands() -> list[click.Command]:
    return [cli, *cli.commands.values()]


@pytest.mark.parametrize("command", commands(), ids=lambda command: command.name)
def test_every_command_and_option_has_help(command: click.Command) -> None:
    assert (command.help or "").strip(), f"{command.name} has no description"
    if command is not cli:
        assert (command.short_help or "").strip(), f"{command.name} has no summary"
    with click.Context(command, info_name=command.name) as context:
        params = command.get_params(context)
    for param in params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{command.name} {param.opts[0]} has no help"
        elif isinstance(param, click.Argument):
            # "[NAME]..." for an optional argument that takes several: NAME.
            name = param.human_readable_name.strip("[].")
            assert re.search(rf"\b{re.escape(name)}\b", command.help or ""), (
                f"{command.name}'s description does not say what {name} is"
            )


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: ``### The run table: ls`` -> ``the-run-table-ls``."""
    return re.sub(r"[^\w\- ]", "", heading.lstrip("#").strip().lower()).replace(" ", "-")


def test_the_links_within_the_command_line_docs_lead_to_headings() -> None:
    text = (ROOT / CLI_DOC).read_text()
    headings = {anchor(line) for line in text.splitlines() if line.startswith("#")}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links
    assert not links - headings, f"{CLI_DOC} links to no heading: {sorted(links - headings)}"


def test_the_readme_and_the_tutorial_link_the_command_line_docs() -> None:
    assert "](docs/cli.md)" in (ROOT / "README.md").read_text()
    assert "](cli.md)" in (ROOT / "docs/tutorial.md").read_text()
