"""Connections to the database file: one per reading thread, reopened when the file changes under them.

Readers never block the writer (WAL). A connection never creates the file (``mode=rw``): only the
writer does, with owner-only permissions. When the writer starts a new file (the old one was deleted
or replaced) or a new write-ahead log, every thread's connection is reopened before its next read, so
that none keeps reading the old one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from urllib.parse import quote

import sqlite_utils

from ...errors import StoreError
from .schema import schema_2_views

__all__ = ["Connections", "connect"]


def connect(path: str, busy_timeout: float, *, as_found: bool = False) -> sqlite_utils.Database:
    """A connection to an existing file. ``as_found``: read an older schema through temporary views,
    without migrating it (a reader of another process's file)."""
    uri = f"file:{quote(os.path.abspath(path))}?mode=rw"  # never create it: that is the writer's job
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    db = sqlite_utils.Database(conn)
    if as_found:
        schema_2_views(db)
    return db


class Connections:
    """A connection per thread that reads (or writes synchronously) outside the writer thread."""

    def __init__(self, path: str, busy_timeout: float, *, as_found: bool = False) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.as_found = as_found
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0  # bumped when every thread must reconnect
        self._open: list[sqlite_utils.Database] = []  # every thread's connection, closed by close()

    @property
    def generation(self) -> int:
        """Bumped whenever every thread must reconnect (a new file, a new write-ahead log)."""
        return self._generation

    def connect(self) -> sqlite_utils.Database:
        """A new connection of this store's kind, owned by the caller."""
        return connect(self.path, self.busy_timeout, as_found=self.as_found)

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite_utils.Database]:
        """This thread's connection; a failure is a StoreError, and this thread's next read reconnects."""
        db = None
        try:
            db = self._current()
            yield db
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                self._forget(db)
            raise StoreError(f"cannot read the log store at {self.path!r}: {exc}") from exc

    def reconnect(self) -> None:
        """Have every thread's connection reopen before its next read (a new file, a new write-ahead log)."""
        with self._lock:
            self._generation += 1

    def close(self) -> None:
        """Close every thread's connection (the last one to close folds the write-ahead log into the file)."""
        with self._lock:
            found, self._open = self._open, []
            self._generation += 1
        for db in found:
            with contextlib.suppress(sqlite3.Error):
                db.conn.close()

    def _current(self) -> sqlite_utils.Database:
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "generation", None) != self._generation:
            self._forget(db)
            db = None
        if db is None:
            generation = self._generation
            db = self.connect()
            self._local.db, self._local.generation = db, generation
            with self._lock:
                self._open.append(db)
        return db

    def _forget(self, db: sqlite_utils.Database) -> None:
        self._local.db = None
        with self._lock:
            if db in self._open:
                self._open.remove(db)
        with contextlib.suppress(sqlite3.Error):
            db.conn.close()
