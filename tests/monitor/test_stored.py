"""The recent requests a health check reads from the store: decoded once each, and anew when their row changed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from guarded_serving.monitor.stored import StoredRecent, recent_from_store
from guarded_serving.store import RequestRecord, Store
from guarded_serving.store.sqlite import SqliteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = SqliteStore(tmp_path / "recent.db")
    store.open()
    for i in range(6):
        stages = {"validate": 0.1 * i, "predict": 1.0 + i}
        store.put(
            RequestRecord(
                request_id=f"r{i}",
                ts=1_700_000_000.0 + i,
                model="m",
                version=None,
                status="ok",
                rows=1,
                latency_ms=2.0 + i,
                stages=stages,
            )
        )
    store.flush()
    yield store
    store.close()


def test_a_second_read_gives_what_a_fresh_decoding_gives(store: Store) -> None:
    reader = StoredRecent()
    first = reader.read(store, "m", None, 4)

    again = reader.read(store, "m", None, 4)

    assert again == first == recent_from_store(store, "m", None, 4)
    assert [r.latency_ms for r in again] == [7.0, 6.0, 5.0, 4.0]
    assert all(a is b for a, b in zip(again, first, strict=True))  # reused, not decoded again


def test_a_row_changed_in_place_is_decoded_again(store: Store, tmp_path: Path) -> None:
    reader = StoredRecent()
    reader.read(store, "m", None, 4)
    with sqlite3.connect(tmp_path / "recent.db") as db:
        db.execute(
            "UPDATE requests SET status = 'error', failed_stage = 'predict', stages = '{\"predict\": 9.5}'"
            " WHERE request_id = 'r5'"
        )

    newest = reader.read(store, "m", None, 4)[0]

    assert (newest.status, newest.failed_stage, dict(newest.stages)) == ("error", "predict", {"predict": 9.5})
