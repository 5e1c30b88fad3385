"""Measured work in a fresh process: its output, as an installed package would run it."""

from __future__ import annotations

import os
import subprocess
import sys

# Linux carries ru_maxrss across fork and exec: a child of this (large) process
# would report our peak. A small middle process starts the measured one.
_LAUNCH = "import subprocess, sys; subprocess.run([sys.executable, *sys.argv[1:]], check=True)"
# With bytecode caching on, as an installed package runs: a child that
# compiled every module from source would time the compiler, not snapstore.
_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def run_child(script: str, *args: str) -> str:
    """The standard output of ``python -c script args`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-c", _LAUNCH, "-c", script, *args],
        check=True,
        capture_output=True,
        text=True,
        env=_ENV,
    ).stdout
