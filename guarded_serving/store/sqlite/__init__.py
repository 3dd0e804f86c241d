"""The SQLite backend: the only code that imports ``sqlite3`` or ``sqlite_utils``, and all of its SQL.

``schema``      tables, indexes, migrations from schema 1 and 2
``connection``  one connection per reading thread, reopened when the file changes
``codec``       times, window chunks and JSON columns as stored, read back tolerant of damaged rows
``reader``      every read query (:class:`SqliteReader`)
``backlog``     what waits for the writer, bounded in rows and bytes, with back-pressure
``batch``       one write: a batch of requests, totals, warnings and window in one transaction
``dbfile``      the database file, created owner-only and watched for deletion or replacement
``writer``      the background writer thread
``retention``   ``max_rows`` / ``max_age``, the warnings' bound, the window's length
``store``       :class:`SqliteStore`, a reader that also writes
"""

from __future__ import annotations

import os

from ...errors import ConfigurationError, StoreError
from .connection import Connections
from .reader import SqliteReader
from .schema import SCHEMA_VERSION, has_table
from .store import SqliteStore

__all__ = ["SCHEMA_VERSION", "SqliteReader", "SqliteStore", "open_reader"]


def open_reader(path: str | os.PathLike[str], *, since: float | None = None) -> SqliteReader:
    """A reader of a file another process writes: never creates or writes it, and reads a file of an older
    schema through temporary views instead of migrating it. Raises ConfigurationError for a missing file
    or one that is not a log store."""
    if not os.path.isfile(path):
        raise ConfigurationError("db", str(path), "the SQLite file a guarded service writes (no such file)")
    reader = SqliteReader(Connections(str(path), busy_timeout=5.0, as_found=True), since=since)
    try:
        with reader.connections.reading() as db:
            found = has_table(db, "requests")
    except StoreError as exc:
        reader.close()
        raise ConfigurationError("db", str(path), f"a guarded-serving log store ({exc.__cause__ or exc})") from None
    if not found:
        reader.close()
        raise ConfigurationError("db", str(path), "a guarded-serving log store (this SQLite file has no requests table)")
    return reader
