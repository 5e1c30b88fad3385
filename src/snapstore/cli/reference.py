"""The command line's reference, rendered as Markdown from the commands' own help.

``render()`` gives the help of ``snapstore`` and then of each of its commands,
in the order the group lists them, each under a ``### snapstore COMMAND``
heading and in a ``text`` block, exactly as ``snapstore COMMAND --help``
prints it on an 80-column terminal. The width is fixed, whatever the terminal
or ``COLUMNS`` says, so the rendering is the same everywhere; a command added
to the group is rendered with the others, with nothing to change here.

Run as a script, it keeps docs/cli.md in step with the commands::

    python -m snapstore.cli.reference [FILE]    # rewrite FILE (default: docs/cli.md)
    python -m snapstore.cli.reference -         # print the reference, change nothing

It replaces what lies between the lines ``<!-- reference: start -->`` and
``<!-- reference: end -->`` of FILE, and leaves the rest of FILE as it is.
Exit status 0 when FILE was rewritten or was already up to date, 2 when it
cannot be (no such file, or not exactly one pair of markers, in that order).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import click

from snapstore.cli.main import cli
from snapstore.cli.options import EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from collections.abc import Iterator

WIDTH = 80
START = "<!-- reference: start -->"
END = "<!-- reference: end -->"
DEFAULT_FILE = Path("docs/cli.md")
PROG = "snapstore"


def render(group: click.Group = cli) -> str:
    """The reference of ``group`` and each of its commands, as Markdown (ends with a newline)."""
    sections = list(_helps(group))
    links = ", ".join(
        f"[`{title.removeprefix(PROG).strip() or PROG}`](#{title.replace(' ', '-')})"
        for title, _help in sections
    )
    parts = [textwrap.fill(f"Commands: {links}.", WIDTH, break_on_hyphens=False) + "\n"]
    parts.extend(f"### {title}\n\n```text\n{text}\n```\n" for title, text in sections)
    return "\n".join(parts)


def _helps(group: click.Group) -> Iterator[tuple[str, str]]:
    """(``snapstore COMMAND``, its help text) for the group, then each visible command."""
    # Given a terminal width, click's formatter measures no terminal: COLUMNS
    # and the real terminal have no say. The context settings (the -h alias)
    # are the ones a real invocation uses.
    fixed = {"terminal_width": WIDTH, "max_content_width": WIDTH}
    with click.Context(group, info_name=PROG, **{**group.context_settings, **fixed}) as root:
        yield PROG, _plain(group.get_help(root))
        for name in group.list_commands(root):
            command = group.get_command(root, name)
            if command is None or command.hidden:
                continue
            settings = {**command.context_settings, **fixed}
            with click.Context(command, parent=root, info_name=name, **settings) as context:
                yield f"{PROG} {name}", _plain(command.get_help(context))


def _plain(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines())


def replace_reference(document: str, reference: str) -> str:
    """``document`` with what lies between its two marker lines replaced by ``reference``.

    Raises ValueError, saying which, unless the document has exactly one
    start marker followed by exactly one end marker.
    """
    counts = {marker: document.count(marker) for marker in (START, END)}
    if counts != {START: 1, END: 1} or document.index(START) > document.index(END):
        found = ", ".join(f"{count} x {marker}" for marker, count in counts.items())
        raise ValueError(f"needs one line {START} and, after it, one line {END}; found {found}")
    head, rest = document.split(START, 1)
    _old, tail = rest.split(END, 1)
    return f"{head}{START}\n\n{reference}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the reference in a file (or print it, for ``-``); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m snapstore.cli.reference",
        description="Rewrite the command line's reference in FILE, between its markers.",
    )
    parser.add_argument(
        "file",
        nargs="?",
        default=str(DEFAULT_FILE),
        metavar="FILE",
        help=f"the Markdown file to rewrite (default: {DEFAULT_FILE}); '-': print the reference",
    )
    target = parser.parse_args(argv).file
    reference = render()
    if target == "-":
        sys.stdout.write(reference)
        return EXIT_OK
    path = Path(target)
    try:
        document = path.read_text(encoding="utf-8")
        updated = replace_reference(document, reference)
        if updated != document:
            path.write_text(updated, encoding="utf-8")
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)  # noqa: T201
        return EXIT_ERROR
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)  # noqa: T201
        return EXIT_ERROR
    print(f"{path}: {'reference rewritten' if updated != document else 'up to date'}")  # noqa: T201
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
