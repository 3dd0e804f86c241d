"""``guarded-serving tail --follow`` on a PostgreSQL store shared by replicas: ids are taken before the commit, so a
replica's request can commit after a newer one was shown, below it. The tail must still print it."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time

import psycopg

from guarded_serving.store import RequestRecord, StoreOptions, open_store
from tests.test_cli import BIN, as_in_a_terminal


def record(request_id: str) -> RequestRecord:
    return RequestRecord(request_id, time.time(), "m", None, "ok", 1, 2.5, inputs=[[1.0]], outputs=[[0.5, 0.5]])


def test_tail_follow_prints_a_request_committed_after_a_newer_one(postgres_url: str) -> None:
    store = open_store(postgres_url, StoreOptions(flush_interval=0.02))
    assert store is not None
    with store.open():
        for name in ("a", "b"):
            assert store.put(record(name))
        assert store.flush()
        tail = subprocess.Popen(
            [str(BIN / "guarded-serving"), "tail", "--db", postgres_url, "-n", "1", "--follow", "--interval", "0.05"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=as_in_a_terminal,
        )
        printed: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [printed.put(line) for line in tail.stdout or ()], daemon=True).start()

        def next_request() -> str:
            return printed.get(timeout=20).split()[2]  # bounded: a tail that prints nothing fails the test, never hangs

        try:
            assert printed.get(timeout=20).startswith("TIME (UTC)")
            assert next_request() == "b"
            with psycopg.connect(postgres_url) as late:  # another replica's request: its id taken, not committed yet
                late.execute(
                    "INSERT INTO requests (request_id, ts, model, version, status, rows, outputs)"
                    " VALUES ('late', '2023-11-14T22:13:21.000+00:00', 'm', '', 'ok', 1, '[[0.25, 0.75]]')"
                )
                assert store.put(record("c"))
                assert store.flush()
                assert next_request() == "c"  # shown while 'late', with a smaller id, is not committed
            assert next_request() == "late"  # committed on leaving the block
            for name in ("d", "e"):  # and nothing shown twice: the next lines are the new requests, in order
                assert store.put(record(name))
                assert store.flush()
                assert next_request() == name
            tail.send_signal(signal.SIGINT)
            assert tail.wait(10) == 0
        finally:
            if tail.poll() is None:
                tail.kill()
                tail.wait(10)
