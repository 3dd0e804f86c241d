"""Load from separate client processes, at the highest rate the service sustains: nothing answered is lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.fixtures.servers import start_server

SECONDS = 6.0
THREADS_PER_PROCESS = 16


def drive(url: str, shard: int, seconds: float, answered: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One client process: THREADS_PER_PROCESS connections sending until ``seconds`` pass (bounded)."""
    deadline = time.monotonic() + seconds
    ids: list[str] = []
    lock = threading.Lock()

    def connection(k: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(100_000):
                if time.monotonic() >= deadline:
                    return
                request_id = f"load-{shard}-{k}-{i}"
                try:
                    response = client.post(
                        "/predict", json={"rows": [[i % 50, k, 1.0]] * 4}, headers={"X-Request-ID": request_id}
                    )
                except httpx.TransportError:
                    continue
                if response.status_code == 200:
                    with lock:
                        ids.append(request_id)

    threads = [threading.Thread(target=connection, args=(k,)) for k in range(THREADS_PER_PROCESS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    answered.put(ids)


def test_overload_from_other_processes_loses_no_answered_request(tmp_path: Path) -> None:
    server = start_server("tests.apps.toy:one", tmp_path)
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    clients = [multiprocessing.Process(target=drive, args=(server.url, p, SECONDS, queue)) for p in range(2)]
    for c in clients:
        c.start()
    answered = [rid for _ in clients for rid in queue.get(timeout=SECONDS + 120)]
    for c in clients:
        c.join(30)
    os.kill(server.process.pid, signal.SIGTERM)
    server.process.wait(60)
    server.client.close()

    assert len(answered) >= 300, f"only {len(answered)} requests answered in {SECONDS} s"
    with sqlite3.connect(server.db) as conn:
        logged = {rid for (rid,) in conn.execute("SELECT request_id FROM requests WHERE status = 'ok'")}
        rows = conn.execute("SELECT count(*) FROM rows").fetchone()[0]
    assert [rid for rid in answered if rid not in logged] == []
    assert rows == 4 * len(logged)
