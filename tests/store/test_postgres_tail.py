"""``guarded-serving tail --follow`` on a PostgreSQL store shared by replicas: ids are taken before the commit, so a
replica's request can commit after a newer one was shown, below it. The tail must still print it."""

from __future__ import annotations

import time

import psycopg

from guarded_serving.store import RequestRecord, StoreOptions, open_store
from tests.fixtures.tailing import following


def record(request_id: str) -> RequestRecord:
    return RequestRecord(request_id, time.time(), "m", None, "ok", 1, 2.5, inputs=[[1.0]], outputs=[[0.5, 0.5]])


def test_tail_follow_prints_a_request_committed_after_a_newer_one(postgres_url: str) -> None:
    store = open_store(postgres_url, StoreOptions(flush_interval=0.02))
    assert store is not None
    with store.open():
        for name in ("a", "b"):
            assert store.put(record(name))
        assert store.flush()
        with following(postgres_url) as tail:
            assert tail.next_line().startswith("TIME (UTC)")
            assert tail.next_line().split()[2] == "b"
            with psycopg.connect(postgres_url) as late:  # another replica's request: its id taken, not committed yet
                late.execute(
                    "INSERT INTO requests (request_id, ts, model, version, status, rows, outputs)"
                    " VALUES ('late', '2023-11-14T22:13:21.000+00:00', 'm', '', 'ok', 1, '[[0.25, 0.75]]')"
                )
                assert store.put(record("c"))
                assert store.flush()
                assert tail.next_line().split()[2] == "c"  # shown while 'late', with a smaller id, is not committed
            assert tail.next_line().split()[2] == "late"  # committed on leaving the block
            for name in ("d", "e"):  # and nothing shown twice: the next lines are the new requests, in order
                assert store.put(record(name))
                assert store.flush()
                assert tail.next_line().split()[2] == name
            assert tail.interrupt() == 0
