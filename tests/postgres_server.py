"""The PostgreSQL servers the tests use: the one SNAPSTORE_TEST_POSTGRES_DSN names, or their own.

`.ci/run` starts a throwaway cluster and sets the variable (`.ci/postgres`
starts one by hand). Without it the tests that need a server skip, saying
so; under CI (CI=true) they fail instead, as a missing server there is a
broken setup, not a machine without PostgreSQL.

The fault tests crash their server: they start a private cluster with
`.ci/postgres` (``private_cluster``), which takes root and the PostgreSQL
binaries; without them they skip, or fail under CI.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

DSN_VARIABLE = "SNAPSTORE_TEST_POSTGRES_DSN"
_SCRIPT = Path(__file__).parents[1] / ".ci" / "postgres"
_BINARIES = Path("/usr/lib/postgresql")
_schemas = itertools.count(1)


def server_dsn() -> str:
    """The test server's DSN; skips (fails under CI=true) the test when there is none."""
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        unavailable(
            f"no PostgreSQL server for the tests: set {DSN_VARIABLE} "
            "(`bash .ci/postgres start DIR` starts one and prints it; see the README)"
        )
    return dsn


def unavailable(reason: str) -> NoReturn:
    """Skip the test for want of a server; fail it under CI, where one must be."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def new_schema(prefix: str = "t") -> str:
    """A schema name no other test of this run (nor of a run in another process) uses."""
    return f"{prefix}_{os.getpid()}_{next(_schemas)}"


@dataclass(frozen=True)
class PrivateCluster:
    """A cluster of the tests' own (see ``private_cluster``), to crash and start again."""

    directory: Path
    env: dict[str, str]
    dsn: str

    def restart(self) -> None:
        """Stop the server in immediate mode (a crash, to its data) and start it again."""
        _script("restart", self.directory, self.env)

    def kill(self) -> None:
        """SIGKILL the postmaster, then start the server again once its processes are gone."""
        _script("kill", self.directory, self.env)


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A new cluster in a temporary directory, on a free port; stopped and deleted after.

    `.ci/postgres` starts it as the postgres user, which takes root and the
    PostgreSQL binaries: without them the test skips (fails under CI).
    """
    if os.geteuid() != 0:
        unavailable("a private PostgreSQL cluster is started as root (initdb runs via runuser)")
    if not any(_BINARIES.glob("*/bin/pg_ctl")):
        unavailable(f"no PostgreSQL binaries in {_BINARIES} to start a private cluster")
    env = {**os.environ, "SNAPSTORE_TEST_POSTGRES_PORT": str(_free_port())}
    # Not under pytest's tmp_path: only root may enter that, and the server
    # runs as the postgres user.
    with tempfile.TemporaryDirectory(prefix="snapstore-pg-") as temp:
        directory = Path(temp)
        try:
            yield PrivateCluster(directory, env, _script("start", directory, env).strip())
        finally:
            _script("stop", directory, env)


def _script(command: str, directory: Path, env: dict[str, str]) -> str:
    """What ``.ci/postgres COMMAND DIRECTORY`` prints; fails the test if it fails."""
    done = subprocess.run(
        ["bash", str(_SCRIPT), command, str(directory)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f".ci/postgres {command} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def _free_port() -> int:
    # One nothing listens on now: the kernel's pick for a bind to port 0.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
