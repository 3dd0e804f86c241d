"""`kill -9` under load: the database stays sound, and only the last flush interval can be lost."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for

FLUSH_INTERVAL = 0.2  # the store's default: answered requests reach the disk within about this
LOSS_WINDOW = 1.0  # the flush interval plus a generous margin for one slow transaction on a busy machine
ROWS_PER_REQUEST = 3


def kill_9(server: Server) -> None:
    """SIGKILL the server's process group and every worker's: BentoML starts each worker in a session
    of its own, so killing the arbiter's group alone leaves the workers serving (and writing)."""
    workers = psutil.Process(server.process.pid).children(recursive=True)
    os.killpg(server.process.pid, signal.SIGKILL)  # the arbiter first, so that it cannot restart a worker
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
    assert wait_for(lambda: not any(alive(w) for w in workers), timeout=10), f"still running after SIGKILL: {workers}"


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_under_load_loses_at_most_the_last_flush_and_a_restart_keeps_appending(tmp_path: Path) -> None:
    server = start_server("tests.apps.toy:one", tmp_path)
    answered_at: dict[str, float] = {}  # request id -> client-side monotonic time its 200 arrived
    lock = threading.Lock()

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(3000):  # bounded: stops at the count, or when the server goes away
                request_id = f"load-{worker}-{i}"
                try:
                    response = client.post(
                        "/predict", json={"rows": [[i % 50, 1, 2]] * ROWS_PER_REQUEST}, headers={"X-Request-ID": request_id}
                    )
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    with lock:
                        answered_at[request_id] = time.monotonic()

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(answered_at) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed_at = time.monotonic()
    kill_9(server)  # no shutdown hook runs: whatever the writer had not committed is gone
    for t in threads:
        t.join(30)
    assert server.process.wait(30) == -signal.SIGKILL
    server.client.close()

    assert len(answered_at) >= 400
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        logged = dict(conn.execute("SELECT request_id, id FROM requests WHERE status = 'ok'"))
        rows = dict(conn.execute("SELECT request_id, count(*) FROM rows GROUP BY request_id"))
        totals = conn.execute("SELECT requests, rows FROM totals WHERE model = 'toy'").fetchone()
        last_id_before = conn.execute("SELECT max(id) FROM requests").fetchone()[0]
    missing = {rid: round(killed_at - t, 3) for rid, t in answered_at.items() if rid not in logged}
    late = {rid: age for rid, age in missing.items() if age >= LOSS_WINDOW}
    assert late == {}, f"{len(late)} requests answered more than {LOSS_WINDOW} s before the kill are missing: {late}"
    # A flush is one transaction: a request is in the database with all its rows, or not at all,
    # and the running totals agree with the table.
    assert {rid: n for rid, n in rows.items() if n != ROWS_PER_REQUEST} == {}
    assert set(rows) == set(logged)
    assert totals == (len(logged), len(logged) * ROWS_PER_REQUEST)

    restarted = start_server("tests.apps.toy:one", tmp_path, db=server.db)
    try:
        new_ids = [f"after-restart-{i}" for i in range(20)]
        for request_id in new_ids:
            response = restarted.client.post("/predict", json={"rows": [[1, 2, 3]]}, headers={"X-Request-ID": request_id})
            assert response.status_code == 200
    finally:
        assert restarted.stop() == 0

    with sqlite3.connect(server.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        after = dict(conn.execute("SELECT request_id, id FROM requests"))
        totals_after = conn.execute("SELECT requests FROM totals WHERE model = 'toy'").fetchone()
    assert {rid: after.get(rid) for rid in logged} == logged  # the old requests are all still there
    assert all(after[rid] > last_id_before for rid in new_ids)  # the new ones come after them
    assert [after[rid] for rid in new_ids] == sorted(after[rid] for rid in new_ids)
    assert totals_after == (len(logged) + len(new_ids),)
