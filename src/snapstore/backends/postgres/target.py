"""The targets ``postgresql://`` URLs name: a store, or one history of a store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snapstore._errors import InvalidInputError
from snapstore._names import check_history_name
from snapstore._options import check_flag
from snapstore.backends.postgres.connection import Address, Connections
from snapstore.backends.postgres.history import PostgresHistoryBackend
from snapstore.backends.postgres.schema import read_identity
from snapstore.backends.postgres.store import PostgresSnapshotBackend

if TYPE_CHECKING:
    from snapstore._options import Options


class PostgresStoreTarget:
    """The store a ``postgresql://`` URL names."""

    def __init__(self, url: str) -> None:
        self.address = Address(url)
        if self.address.history is not None:
            raise InvalidInputError(
                f"{self.address.location}: ?history= names a history; "
                "open it with IterationHistory, or this store without it"
            )

    def open_store(
        self, options: Options, *, read_cache: object = True, **extra: Any
    ) -> PostgresSnapshotBackend:
        """A handle; ``read_cache=False``: every read asks the server (see ``cache``)."""
        _refuse_extra(extra)
        return PostgresSnapshotBackend(
            self.address, options, read_cache=check_flag("read_cache", read_cache)
        )


class PostgresHistoryTarget:
    """The history of a store that a ``postgresql://...&history=NAME`` URL names."""

    def __init__(self, url: str) -> None:
        self.address = Address(url)
        if self.address.history is None:
            raise InvalidInputError(f"{self.address.location}: name the history with &history=NAME")
        self.name = check_history_name(self.address.history)

    def open_history(self, options: Options, **extra: Any) -> PostgresHistoryBackend:
        _refuse_extra(extra)
        conns = Connections(self.address, options)
        try:
            schema = self.address.schema
            if options.read_only:
                conns.call(lambda conn: read_identity(conn, schema))
            else:
                # Creating the store is the store handle's work: open one, briefly.
                PostgresSnapshotBackend(self.address, options, read_cache=False).close()
        except BaseException:
            conns.close()
            raise
        return PostgresHistoryBackend(conns, self.address.schema, self.name, owns_connections=True)


def _refuse_extra(extra: dict[str, Any]) -> None:
    if extra:
        raise InvalidInputError(
            f"the PostgreSQL backend takes no option {', '.join(sorted(extra))} "
            "(options of the local directory backend)"
        )
