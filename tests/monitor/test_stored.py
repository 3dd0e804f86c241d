"""The recent requests a health check reads from the store: decoded once each, and anew when their row changed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def put(store: Store, i: int, status: str = "ok") -> None:
    store.put(
        RequestRecord(
            request_id=f"n{i}", ts=1_700_001_000.0 + i, model="m", version=None, status=status, rows=1, latency_ms=float(i)
        )
    )
    store.flush()


def test_reads_after_new_requests_reuse_the_older_ones_and_give_what_a_fresh_decoding_gives(store: Store, tmp_path: Path) -> None:
    reader = StoredRecent()
    first = reader.read(store, "m", None, 5)
    for i, status in enumerate(["ok", "rejected", "unknown", "ok", "error"]):  # "unknown": a status it leaves out
        put(store, i, status)
        if i == 3:  # an older one changed in place between two new ones
            with sqlite3.connect(tmp_path / "recent.db") as db:
                db.execute("UPDATE requests SET latency_ms = 99.0 WHERE request_id = 'n1'")
        assert reader.read(store, "m", None, 5) == recent_from_store(store, "m", None, 5), i
    put(store, 5)
    again = reader.read(store, "m", None, 5)
    assert [r.latency_ms for r in again] == [5.0, 4.0, 3.0, 99.0]  # n2 left out: a status it does not know
    assert again[1] is reader.read(store, "m", None, 5)[1]  # reused, not decoded again
    assert first[0] not in again


class Counted:
    """A store's ``recent_request_marks``, counting the marks each call reads."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: list[int] = []
        marks = store.recent_request_marks

        def counted(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
            found = marks(*args, **kwargs)
            self.read.append(len(found))
            return found

        monkeypatch.setattr(store, "recent_request_marks", counted)


def test_while_no_request_is_changed_or_deleted_only_the_new_ones_marks_are_read(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = StoredRecent()
    reader.read(store, "m", None, 4)
    counted = Counted(store, monkeypatch)

    for i in range(3):
        put(store, i)
        assert reader.read(store, "m", None, 4) == recent_from_store(store, "m", None, 4), i
    unchanged = reader.read(store, "m", None, 4)
    with sqlite3.connect(tmp_path / "recent.db") as db:  # a recent one deleted by hand: read whole again
        db.execute("DELETE FROM requests WHERE request_id = 'n1'")
    after_deletion = reader.read(store, "m", None, 4)

    assert counted.read == [1, 4, 1, 4, 1, 4, 0, 4]  # 4: recent_from_store reading all, and the read after the deletion
    assert [r.latency_ms for r in unchanged] == [2.0, 1.0, 0.0, 7.0]
    assert [r.latency_ms for r in after_deletion] == [2.0, 0.0, 7.0, 6.0]
    assert reader.read(store, "m", None, 5) == recent_from_store(store, "m", None, 5)  # more asked: read whole
