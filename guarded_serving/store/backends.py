"""Choosing a backend from what the user wrote: ``db=``, ``GUARDED_SERVING_DB`` or ``--db``.

``None`` or ``":memory:"``  no store: everything stays in the process's memory
``"path/to/file.db"``       a SQLite file (created when missing)
``"sqlite:///file.db"``     the same, as a URL: three slashes and a relative path, four for an
                            absolute one (``sqlite:////var/lib/app/log.db``)
``"postgresql://..."``      a PostgreSQL database every replica shares (``postgres://`` too): libpq's URL,
                            completed by its ``PG*`` variables; needs the ``postgres`` extra

Any other ``scheme://`` is refused with a ConfigurationError that names it and what is supported.
"""

from __future__ import annotations

import os
import re
from types import ModuleType

from ..errors import ConfigurationError
from .contract import Store, StoreReader
from .options import StoreOptions
from .sqlite import SqliteStore
from .sqlite import open_reader as open_sqlite_reader
from .urls import shown_url

__all__ = ["MEMORY", "SUPPORTED", "check_db", "open_reader", "open_store"]

MEMORY = ":memory:"  # db=":memory:" keeps no log store
FILES = "a SQLite file path or a sqlite:///path URL"
STORES = f"{FILES}, or a postgresql:// URL"
SUPPORTED = f"{STORES}, or None (or {MEMORY!r}) for no store"
POSTGRES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)


def open_store(db: str | os.PathLike[str] | None, options: StoreOptions | None = None) -> Store | None:
    """The store ``db`` names, not opened yet (``open()`` starts its writer); None for no store."""
    if _is_postgres(db):
        store: Store = _postgres().PostgresStore(str(db), options)
        return store
    path = _sqlite_path(db)
    return SqliteStore(path, options) if path is not None else None


def check_db(db: str | os.PathLike[str] | None) -> None:
    """Refuse, at start, a ``db`` no backend opens (``mysql://...``), before any worker tries to."""
    if not _is_postgres(db):
        _sqlite_path(db)


def open_reader(db: str | os.PathLike[str], *, since: float | None = None) -> StoreReader:
    """A reader of the store ``db`` names, as another process wrote it, limited to requests logged since
    ``since`` (epoch seconds) when given. Raises ConfigurationError when there is no such store."""
    if _is_postgres(db):
        reader: StoreReader = _postgres().open_reader(str(db), since=since)
        return reader
    path = _sqlite_path(db)
    if path is None:
        raise ConfigurationError("db", db, f"a log store to read: {STORES}")
    return open_sqlite_reader(path, since=since)


def _is_postgres(db: str | os.PathLike[str] | None) -> bool:
    found = _SCHEME.match(db) if isinstance(db, str) else None
    return found is not None and found.group(1).lower() in POSTGRES


def _postgres() -> ModuleType:
    """The PostgreSQL backend, imported only when a URL names it (psycopg is an optional dependency)."""
    try:
        from . import postgres
    except ImportError as exc:
        raise ConfigurationError(
            "db", "a postgresql:// URL", f'the postgres extra installed: pip install "guarded-serving[postgres]" ({exc})'
        ) from None
    return postgres


def _sqlite_path(db: str | os.PathLike[str] | None) -> str | os.PathLike[str] | None:
    """The SQLite file ``db`` names; None for no store."""
    if db is None or (isinstance(db, str) and db == MEMORY):
        return None
    if not isinstance(db, str):
        return db  # a path object
    found = _SCHEME.match(db)
    if found is None:
        return db
    scheme, rest = found.group(1).lower(), found.group(2)
    if scheme != "sqlite":
        raise ConfigurationError("db", shown_url(db), f"{SUPPORTED} (scheme {scheme!r} is not supported)")
    if not rest.startswith("/") or rest == "/":
        raise ConfigurationError("db", db, f"{SUPPORTED}: sqlite:/// then the file's path")
    path = rest[1:]
    return None if path == MEMORY else path
