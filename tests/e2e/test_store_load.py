"""Concurrent clients sending the largest requests the service accepts by default (1,000 rows): every
answered request is logged and counted, and when the writer cannot keep up the store check says so."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import httpx

from tests.fixtures.data import gaussian
from tests.fixtures.servers import Server

CLIENTS = 4
ROWS = 1000


def load(server: Server, requests_per_client: int) -> dict[str, int]:
    """Each client sends its requests one after another, with its own request ids: id -> status."""
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    body = {"rows": gaussian(ROWS, 3, seed=3).round(4).tolist()}

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(requests_per_client):
                request_id = f"load-{k}-{i}"
                status = http.post("/predict", json=body, headers={"X-Request-ID": request_id}).status_code
                with lock:
                    statuses[request_id] = status

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def logged(server: Server) -> tuple[set[str], tuple[int, int]]:
    with sqlite3.connect(server.db) as conn:
        ids = {rid for (rid,) in conn.execute("SELECT request_id FROM requests WHERE status = 'ok'")}
        totals = conn.execute("SELECT requests, rows FROM totals").fetchone()
    return ids, totals


def check_after(server: Server, requests: int) -> dict[str, Any]:
    health = server.client.get("/health/model").json()
    assert health["totals"]["requests"] == requests, health["totals"]
    assert health["totals"]["rows"] == requests * ROWS
    store: dict[str, Any] = health["checks"]["store"]
    return store


def test_four_clients_sending_1000_row_requests_are_all_logged_and_counted(serve: Callable[..., Server]) -> None:
    server = serve("tests.apps.busy:default")
    statuses = load(server, requests_per_client=30)
    store = check_after(server, len(statuses))
    server.stop()  # SIGTERM: what is pending is written
    ids, totals = logged(server)

    assert set(statuses.values()) == {200}
    assert ids == set(statuses)
    assert totals == (len(statuses), len(statuses) * ROWS)
    assert store["dropped"] == 0
    assert (store["waits"] > 0) == ("waited for the writer" in store["summary"]), store


def test_a_buffer_the_writer_cannot_keep_ahead_of_makes_requests_wait_and_says_so(serve: Callable[..., Server]) -> None:
    server = serve("tests.apps.busy:small_buffer")
    statuses = load(server, requests_per_client=15)
    store = check_after(server, len(statuses))
    server.stop()
    ids, totals = logged(server)

    assert set(statuses.values()) == {200}
    assert ids == set(statuses)  # back-pressure, not loss
    assert totals == (len(statuses), len(statuses) * ROWS)
    assert store["dropped"] == 0
    assert (store["waits"] > 0) == ("waited for the writer" in store["summary"]), store
