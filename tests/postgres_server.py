"""The PostgreSQL server the tests use: the one SNAPSTORE_TEST_POSTGRES_DSN names.

`.ci/run` starts a throwaway cluster and sets the variable (`.ci/postgres`
starts one by hand). Without it the tests that need a server skip, saying
so; under CI (CI=true) they fail instead, as a missing server there is a
broken setup, not a machine without PostgreSQL.
"""

from __future__ import annotations

import itertools
import os

import pytest

DSN_VARIABLE = "SNAPSTORE_TEST_POSTGRES_DSN"
_schemas = itertools.count(1)


def server_dsn() -> str:
    """The test server's DSN; skips (fails under CI=true) the test when there is none."""
    dsn = os.environ.get(DSN_VARIABLE)
    if dsn:
        return dsn
    reason = (
        f"no PostgreSQL server for the tests: set {DSN_VARIABLE} "
        "(`bash .ci/postgres start DIR` starts one and prints it; see the README)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def new_schema(prefix: str = "t") -> str:
    """A schema name no other test of this run (nor of a run in another process) uses."""
    return f"{prefix}_{os.getpid()}_{next(_schemas)}"
