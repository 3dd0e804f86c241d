"""What every test gets: the markers, applied by directory, and the rule that only end-to-end tests start servers.

- tests under ``tests/e2e/`` are marked ``e2e``; so is every test that uses a PostgreSQL server (the
  ``postgres`` or ``own_postgres`` fixture, or the store contract suite's ``postgresql`` backend), so that
  tests/store/ holds every backend's tests;
- tests under ``tests/acceptance/`` are marked ``acceptance``;
- a test that is not marked ``e2e`` and starts a server (``bentoml serve``, PostgreSQL, Prometheus, Chromium, or
  a socket listening on the network) fails, so that ``python -m tests --fast`` (``-m "not e2e and not acceptance"``)
  never waits for one.

Shared helpers live in tests/fixtures/ and are imported from there; this file only holds fixtures and hooks.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.postgres import PostgresServer
from tests.fixtures.servers import Server, server_command, start_server

if TYPE_CHECKING:
    from guarded_serving import Reference

os.environ["BENTOML_DO_NOT_TRACK"] = "True"
# One BLAS thread per process, set before numpy loads: OpenBLAS's spinning threads on a loaded two-core machine
# turned a 0.5 s LogisticRegression fit (the digits fixture) into 20 s (measured at load 6). The tests' own
# arrays are small; the servers started by e2e tests inherit the setting.
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
TESTS = Path(__file__).resolve().parent
SERVER_FIXTURES = {"postgres", "own_postgres"}  # a test that uses one is end to end wherever it lives
MARKED_DIRECTORIES = {
    "e2e": "starts a real server (bentoml serve, PostgreSQL, Prometheus, Chromium): tests/e2e/ and the postgres fixture",
    "acceptance": "a statistical acceptance suite on seeded worlds (tests/acceptance/): slow, no server",
}


def pytest_configure(config: pytest.Config) -> None:
    for marker, meaning in MARKED_DIRECTORIES.items():
        config.addinivalue_line("markers", f"{marker}: {meaning}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if parts[0] in MARKED_DIRECTORIES:
            item.add_marker(parts[0])
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())) and item.get_closest_marker("e2e") is None:
            item.add_marker("e2e")


@pytest.fixture(autouse=True)
def servers_only_in_e2e(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test that starts a server without being an end-to-end test (see the module docstring)."""
    if request.node.get_closest_marker("e2e") is not None:
        return

    def refuse(what: str) -> None:
        pytest.fail(f"{request.node.nodeid} starts {what} but is not marked e2e: move it to tests/e2e/", pytrace=False)

    popen_init = subprocess.Popen.__init__
    listen = socket.socket.listen

    def guarded_popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        what = server_command(args)
        if what is not None:
            refuse(what)
        popen_init(self, args, *rest, **kwargs)

    def guarded_listen(self: socket.socket, *args: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse(f"a server listening on {self.getsockname()}")
        listen(self, *args)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded_popen_init)
    monkeypatch.setattr(socket.socket, "listen", guarded_listen)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `bentoml serve TARGET` on a free 127.0.0.1 port with a fresh SQLite file; stopped afterwards."""
    servers: list[Server] = []

    def start(target: str, **kwargs: object) -> Server:
        server = start_server(target, tmp_path, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (Debian's, as the postgres user when run as root), on a
    temporary directory and a free loopback port; stopped and removed at the end."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, to stop and start again; removed afterwards."""
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's server: its postgresql:// URL, password included."""
    return postgres.database()


@pytest.fixture(scope="session")
def logistic_reference_500() -> Reference:
    """The logistic world's reference (tests/fixtures/data.py) of 500 rows, seed 7, features a, b, c: labels as
    noisy as the model says, not its argmax. Shared by the feedback and store-content tests; frozen, so one for all."""
    from tests.fixtures.data import logistic_reference  # here, not at the top: numpy must load after the BLAS setting

    return logistic_reference(500, seed=7, feature_names=["a", "b", "c"])
