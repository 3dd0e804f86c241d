"""The PostgreSQL backend: a store every replica of a fleet shares (the only code that imports ``psycopg``).

Install it with ``pip install "guarded-serving[postgres]"`` and point every replica at one database:
``GUARDED_SERVING_DB=postgresql://user@host:5432/db`` (libpq's ``PG*`` variables fill in what the URL
leaves out; the password is never logged or shown).

``connection``  the URL as libpq reads it, the read pool, errors without the password
``schema``      the tables (the SQLite backend's, plus ``replicas``), created once under an advisory lock
``reader``      every read query (:class:`PostgresReader`)
``batch``       one write: a batch of requests (COPY), totals, warnings and window in one transaction
``writer``      the background writer thread, and this replica's heartbeat
``retention``   ``max_rows`` / ``max_age``, fleet-wide, one replica at a time (an advisory lock)
``store``       :class:`PostgresStore`, a reader that also writes
"""

from __future__ import annotations

from ...errors import ConfigurationError, StoreError
from .connection import Server
from .reader import PostgresReader
from .schema import SCHEMA_VERSION, has_table
from .store import PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresReader", "PostgresStore", "open_reader"]


def open_reader(url: str, *, since: float | None = None) -> PostgresReader:
    """A reader of a database the replicas write: never creates or writes anything. Raises ConfigurationError
    for a server that cannot be reached or a database that holds no log store."""
    reader = PostgresReader(Server(url, readers=2), since=since)
    try:
        with reader.server.reading() as conn:
            found = has_table(conn, "requests")
    except StoreError as exc:
        reader.close()
        raise ConfigurationError("db", reader.path, f"a reachable guarded-serving log store ({exc})") from None
    if not found:
        reader.close()
        raise ConfigurationError("db", reader.path, "a guarded-serving log store (this database has no requests table)")
    return reader
