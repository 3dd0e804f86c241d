"""Stopping the service loses nothing that was answered."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.fixtures.servers import start_server


def test_sigterm_under_load_keeps_every_answered_request_in_the_database(tmp_path: Path) -> None:
    server = start_server("tests.apps.toy:one", tmp_path)
    answered: list[str] = []
    lock = threading.Lock()

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(1500):  # bounded: stops at the count, or when the server goes away
                request_id = f"load-{worker}-{i}"
                try:
                    response = client.post("/predict", json={"rows": [[i % 50, 1, 2]] * 3}, headers={"X-Request-ID": request_id})
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    with lock:
                        answered.append(request_id)

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(answered) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(server.process.pid, signal.SIGTERM)  # the arbiter, as a container runtime would
    for t in threads:
        t.join(60)
    assert server.process.wait(60) is not None
    server.client.close()

    assert len(answered) >= 300
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        logged = {rid for (rid,) in conn.execute("SELECT request_id FROM requests WHERE status = 'ok'")}
        rows = dict(conn.execute("SELECT request_id, count(*) FROM rows GROUP BY request_id"))
    missing = [rid for rid in answered if rid not in logged]
    assert missing == []
    assert all(rows[rid] == 3 for rid in answered)
