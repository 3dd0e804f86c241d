"""The backends the store contract suite runs against: one ``Backend`` per kind of store.

A new backend joins the suite with a function that makes a fresh, empty location for it (and one where
no store can be opened), added to ``BACKENDS``; every test in ``test_contract.py`` then runs on it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from guarded_serving.store import Store, StoreOptions, StoreReader, open_reader, open_store

from ..postgres import PostgresServer


@dataclass(frozen=True)
class Backend:
    """Where a test's stores live: ``url`` a fresh, empty location; ``unreachable`` one that cannot be opened."""

    name: str
    url: str
    unreachable: str

    def store(self, url: str | None = None, **options: Any) -> Store:
        """A store at ``url`` (this backend's), not opened yet; written every 20 ms unless told otherwise."""
        store = open_store(url or self.url, StoreOptions(**{"flush_interval": 0.02, **options}))
        assert store is not None
        return store

    def reader(self, since: float | None = None) -> StoreReader:
        """A reader of what the stores at ``url`` wrote, as another process would open it."""
        return open_reader(self.url, since=since)


def sqlite(tmp_path: Path) -> Backend:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return Backend("sqlite", f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{blocker / 'log.db'}")


def postgresql(tmp_path: Path, server: PostgresServer) -> Backend:
    """A fresh database on the session's PostgreSQL server; a database the role cannot log in to for ``unreachable``."""
    return Backend("postgresql", server.database(), server.url("no_such_database", password="wrong"))


BACKENDS: dict[str, Callable[[Path, PostgresServer], Backend]] = {
    "sqlite": lambda tmp_path, _: sqlite(tmp_path),
    "postgresql": postgresql,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    # The server starts only for the backends that need one (a run of -k sqlite starts none).
    server = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return BACKENDS[request.param](tmp_path, server)  # type: ignore[arg-type]


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    with backend.store() as opened:
        yield opened
