"""PostgreSQL stopped for 10 seconds under load, then started again: two replicas keep answering (no 5xx), their
store check says what is happening, the rows wait in memory, and every answered request is in the database
afterwards. The server is this test's own, so that stopping it disturbs no other test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import psycopg
import pytest

from tests.fixtures.postgres import PostgresServer
from tests.fixtures.servers import Server
from tests.fixtures.waiting import wait_for

from .test_fleet import Fleet, health, replica

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OUTAGE = 10.0  # seconds the database is down


@pytest.fixture
def fleet(own_postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    url = own_postgres.database("faults")
    root = tmp_path_factory.mktemp("faults")
    a = replica("replica-a", url, root)
    try:
        b = replica("replica-b", url, root)
    except BaseException:
        a.stop()
        raise
    yield Fleet(a, b, url)
    for server in (a, b):
        server.stop()


class Load:
    """Clients sending small requests to the replicas until stopped: what was answered, and any status >= 500."""

    def __init__(self, servers: tuple[Server, ...], clients: int = 4) -> None:
        self.answered: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(servers[i % len(servers)].url, i)) for i in range(clients)]

    def _run(self, url: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=30) as client:
            while not self._stop.is_set():
                response = client.post("/predict", json={"rows": rng.normal(size=(2, 3)).tolist()})
                if response.status_code == 200:
                    self.answered.append(response.json()["request_id"])
                else:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_the_database_stopped_for_10_s_under_load_loses_no_answered_request(own_postgres: PostgresServer, fleet: Fleet) -> None:
    with Load((fleet.a, fleet.b)) as load:
        assert wait_for(lambda: len(load.answered) >= 50, timeout=30)
        own_postgres.stop()
        stopped = time.monotonic()
        assert wait_for(lambda: health(fleet.a)["checks"]["store"]["status"] in ("warn", "alert"), timeout=OUTAGE)
        during = health(fleet.b)["checks"]["store"]
        answered_during = len(load.answered)
        time.sleep(max(OUTAGE - (time.monotonic() - stopped), 0.0))  # the outage itself: a fixed 10 s
        answered_before_restart = len(load.answered)
        own_postgres.start()
        assert wait_for(lambda: len(load.answered) >= answered_before_restart + 50, timeout=30)

    assert load.failures == []
    assert answered_before_restart > answered_during  # requests kept being answered while the database was down
    assert during["status"] in ("warn", "alert")
    assert during["summary"].startswith("Writes are failing (OperationalError: connection failed")

    def stored() -> set[str]:
        with psycopg.connect(fleet.url) as conn:
            return {request_id for (request_id,) in conn.execute("SELECT request_id FROM requests")}

    assert wait_for(lambda: set(load.answered) <= stored(), timeout=30, interval=0.5)
    assert wait_for(lambda: health(fleet.a)["checks"]["store"]["status"] == "ok", timeout=30, interval=0.5)
