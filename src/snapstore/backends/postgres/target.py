"""The targets ``postgresql://`` URLs name: a store, or one history of a store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snapstore._errors import InvalidInputError
from snapstore._names import check_history_name
from snapstore._options import check_flag, refuse_backend_options
from snapstore.backends.postgres.connection import Address, Connections
from snapstore.backends.postgres.history import PostgresHistoryBackend
from snapstore.backends.postgres.schema import store_identity
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
        refuse_backend_options("PostgreSQL", extra)
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
        refuse_backend_options("PostgreSQL", extra)
        conns = Connections(self.address, options)
        schema = self.address.schema
        try:
            # Opening a history of a store opens (or creates) the store, as a store handle does.
            conns.call(lambda conn: store_identity(conn, schema, read_only=options.read_only))
        except BaseException:
            conns.close()
            raise
        return PostgresHistoryBackend(conns, self.address.schema, self.name, owns_connections=True)
