"""Connections to the PostgreSQL server: a URL as libpq reads it, a pool for reads, and errors without secrets.

The URL is handed to libpq as it is, so everything it leaves out comes from libpq's own ``PG*``
variables (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGPASSFILE``, ``PGSSLMODE``...):
``postgresql://`` alone is a complete URL in a pod whose environment names the server. The password,
wherever it came from, is never part of what is logged or shown: :func:`shown` is the URL without it (``shown_url``),
and :meth:`Server.scrub` removes it from an error message should a driver ever repeat it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import psycopg_pool

from ...envvars import Environment
from ...errors import ConfigurationError, StoreError
from ..urls import shown_url as shown

__all__ = ["CONNECT_TIMEOUT", "READ_WAIT", "Server"]

CONNECT_TIMEOUT = 3  # seconds libpq waits for a server that does not answer (a host that drops packets)
READ_WAIT = 2.0  # seconds a read waits for a pooled connection before it fails (the caller then judges from memory)
# A server that vanishes without closing the connection (a cut network, a frozen host) is noticed within about
# 10 s instead of the operating system's two hours: the writer then retries, its rows waiting in memory.
_LIVENESS = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": 10_000}
_SETTINGS: dict[str, str | int] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "guarded-serving", **_LIVENESS}


class Server:
    """Where the store is: the URL, its password-free form, and how to connect (one writer, a read pool)."""

    def __init__(self, url: str, *, readers: int = 4) -> None:
        try:
            info = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError("db", shown(url), f"a postgresql:// URL libpq can read ({exc})") from None
        self.url = url
        self._conninfo = psycopg.conninfo.make_conninfo(url, **_SETTINGS)  # what the URL leaves out: libpq's PG* variables
        self.path = shown(url)
        self._secrets = [s for s in (info.get("password"), Environment.read().pg_password) if isinstance(s, str) and s]
        self._readers = readers
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[object, ...]]] | None = None

    def scrub(self, message: str) -> str:
        """An error message without the password (libpq does not repeat it; a message is checked anyway)."""
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    def error(self, exc: BaseException, doing: str = "read") -> StoreError:
        return StoreError(f"cannot {doing} the log store at {self.path}: {type(exc).__name__}: {self.scrub(str(exc)).strip()}")

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """A new connection (the writer's own), in autocommit: a transaction is opened where one is needed."""
        return psycopg.connect(self._conninfo, autocommit=True)

    @contextlib.contextmanager
    def reading(self, doing: str = "read") -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A pooled connection; any failure (the server down, a timeout, an SQL error) is a StoreError."""
        try:
            with self.pool().connection(timeout=READ_WAIT) as conn:
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            raise self.error(exc, doing) from exc

    def all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Every row ``sql`` answers, on a pooled connection (see :meth:`reading`)."""
        with self.reading() as conn:
            return conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        """The first row ``sql`` answers, or None."""
        with self.reading() as conn:
            return conn.execute(sql, params).fetchone()

    def pool(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[tuple[object, ...]]]:
        if self._pool is None:
            self._pool = psycopg_pool.ConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self._readers,
                kwargs={"autocommit": True},
                check=psycopg_pool.ConnectionPool.check_connection,  # a connection the server dropped is replaced
                open=False,
                name="guarded-serving-readers",
                reconnect_timeout=365 * 86400.0,  # a server down for long is waited for, never given up on
            )
            self._pool.open(wait=False)
        return self._pool

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=1.0)
