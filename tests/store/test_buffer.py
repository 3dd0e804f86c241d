"""The store's buffer: bounded in bytes as well as rows, fair to a writer that falls behind, and never
an under-count.

Records wait in memory as the text that will be written (the client's JSON, the predictions' JSON)
and the encoded window arrays, so their size is known exactly. While the writer is making progress,
a full buffer makes a request wait for room (back-pressure, said in the store check) instead of
dropping it; when the store is failing, a full buffer drops and counts. Either way every request is
counted in the totals, logged or not.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import Monitor, Status
from guarded_serving.drift.window import Chunk
from guarded_serving.operational import store_check
from guarded_serving.store import DEFAULT_CAPACITY_BYTES, RequestRecord, StoreOptions, StoreStats
from guarded_serving.store.sqlite import SqliteStore
from tests.fixtures.data import gaussian
from tests.fixtures.waiting import wait_for

ROW_TEXT = "[" + ",".join(["0.123456"] * 8) + "]"


def wide_record(i: int, rows: int, text_bytes: int = 0) -> RequestRecord:
    """A request as the guard queues it: the client's rows as JSON text, the outputs, the window chunk."""
    text = "[" + ",".join([ROW_TEXT] * rows) + "]" if not text_bytes else '[["' + "x" * text_bytes + '"]]'
    matrix = np.zeros((rows, 8))
    return RequestRecord(
        f"r{i}",
        1_700_000_000.0,
        "m",
        None,
        "ok",
        rows,
        1.0,
        {"predict": 0.5},
        outputs=[0.5] * rows,
        window=Chunk(matrix, matrix[:, :1].copy()),
        inputs_json=text,
    )


def test_big_rows_are_bounded_by_bytes_not_by_their_count(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db")  # the defaults; not opened, so nothing drains the buffer

    accepted = sum(store.put(wide_record(i, 1, text_bytes=200_000)) for i in range(2000))
    stats = store.stats()

    assert accepted * 200_000 <= DEFAULT_CAPACITY_BYTES
    assert accepted >= 0.9 * DEFAULT_CAPACITY_BYTES / 200_000
    assert stats.pending_bytes <= stats.capacity_bytes == DEFAULT_CAPACITY_BYTES
    assert stats.dropped == 2000 - accepted


def test_rows_held_as_python_values_are_counted_by_their_written_size(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db", StoreOptions(capacity_bytes=1_000_000))
    big = "y" * 100_000  # a categorical value of 100 KB, as the guard parses it

    records = [RequestRecord(f"r{i}", 1.0, "m", None, "ok", 1, 1.0, {}, inputs=[[big]], outputs=[1]) for i in range(20)]

    accepted = [store.put(r) for r in records]

    assert accepted == [True] * 9 + [False] * 11
    assert store.stats().pending_bytes <= 1_000_000


def test_a_record_bigger_than_the_whole_buffer_is_dropped_and_counted(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db", StoreOptions(capacity_bytes=10_000))

    assert not store.put(wide_record(1, 1, text_bytes=20_000))
    assert store.stats().dropped == 1


def test_the_buffer_is_empty_in_bytes_once_written(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "log.db") as store:
        for i in range(200):
            store.put(wide_record(i, 64))
        assert store.flush()
        stats = store.stats()

    assert (stats.pending, stats.pending_bytes, stats.written) == (0, 0, 200 * 64)


def test_a_writer_that_falls_behind_makes_producers_wait_instead_of_dropping(tmp_path: Path) -> None:
    """Four producers queue 1,000-row requests far faster than any disk takes them: a buffer of two
    requests fills at once. Every request is written, none dropped, and the waits are counted."""
    store = SqliteStore(tmp_path / "log.db", StoreOptions(capacity=2000)).open()
    results: list[bool] = []

    def produce(k: int) -> None:
        results.extend(store.put(wide_record(k * 1000 + i, 1000)) for i in range(40))

    producers = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    assert store.flush(30)
    stats = store.stats()
    totals = store.totals("m")
    store.close()

    assert results == [True] * 160
    assert stats.dropped == 0
    assert stats.waits > 0
    assert (totals.requests, totals.rows) == (160, 160_000)
    check = store_check(stats)
    assert check.status is Status.WARN
    assert "waited for the writer" in check.summary


def test_dropped_requests_are_still_counted_in_the_totals(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db", StoreOptions(capacity=10))  # not opened yet: nothing drains the buffer
    records = [RequestRecord(f"r{i}", 1.0, "m", None, "ok", 2, 1.0, {}, outputs=[0, 1]) for i in range(7)]
    records.append(RequestRecord("bad", 1.0, "m", None, "rejected", 0, 1.0, {}))

    accepted = [store.put(r) for r in records]
    store.open()
    assert store.flush()
    totals = store.totals("m")
    stats = store.stats()
    store.close()

    assert accepted == [True] * 5 + [False] * 3
    assert (totals.requests, totals.rows, totals.rejected) == (8, 14, 1)
    assert (totals.dropped_requests, totals.dropped_rows) == (3, 4)
    assert stats.dropped == 5  # rows, as before: 2 + 2 + 1 for the rejected request


def test_a_failing_store_drops_at_once_instead_of_making_requests_wait(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "log.db"
    SqliteStore(db).open().close()
    blocker = sqlite3.connect(db, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with SqliteStore(db, StoreOptions(capacity=4, busy_timeout=0.05, flush_interval=0.02)) as store:
            store.put(RequestRecord("first", 1.0, "m", None, "ok", 2, 1.0, {}, outputs=[0, 1]))
            assert wait_for(lambda: store.stats().last_error is not None)
            accepted = [store.put(RequestRecord(f"r{i}", 1.0, "m", None, "ok", 2, 1.0, {}, outputs=[0, 1])) for i in range(3)]
            stats = store.stats()
            blocker.rollback()
            assert store.flush(10)
            totals = store.totals("m")
    finally:
        blocker.close()

    assert accepted == [True, False, False]
    assert stats.waits == 0
    assert stats.dropped == 4
    assert (totals.requests, totals.rows, totals.dropped_requests) == (4, 8, 2)


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        pytest.param({"waits": 12, "waited_s": 1.5, "last_wait_at": "now"}, Status.WARN, "12 requests waited", id="waited"),
        pytest.param({"pending_bytes": 40 << 20}, Status.WARN, "MB of", id="bytes-half-full"),
        pytest.param(
            {"opened": False, "last_error": "OperationalError: unable to open"},
            Status.ALERT,
            "could not be opened",
            id="not-opened",
        ),
        pytest.param({"wal_replaced": 1, "last_wal_replaced_at": "now"}, Status.WARN, "write-ahead log", id="wal-deleted"),
    ],
)
def test_the_store_check_says_what_the_writer_went_through(fields: dict[str, object], status: Status, words: str) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    given: dict[str, Any] = {
        "path": "log.db",
        "pending": 0,
        "written": 10,
        "dropped": 0,
        "capacity": 100_000,
        "last_error": None,
        "last_error_at": None,
        "last_flush_at": None,
        "flush_interval": 0.2,
        "capacity_bytes": 64 << 20,
    }
    given.update({k: now if v == "now" else v for k, v in fields.items()})
    stats = StoreStats(**given)

    check = store_check(stats)

    assert check.status is status
    assert words in check.summary


def test_monitor_and_guard_take_the_byte_capacity(tmp_path: Path) -> None:
    from guarded_serving import ConfigurationError

    with Monitor(np.zeros((200, 2)) + np.arange(200)[:, None], db=tmp_path / "log.db", store_capacity_bytes=5_000_000) as monitor:
        assert monitor.store.stats().capacity_bytes == 5_000_000  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match="store_capacity_bytes: expected a positive integer"):
        Monitor(np.zeros((200, 2)), store_capacity_bytes=0)


def test_the_offline_report_warns_that_answered_rows_were_dropped_from_the_log(tmp_path: Path) -> None:
    from guarded_serving.offline import offline_health

    db = tmp_path / "log.db"
    training = gaussian(500, 2, seed=6)
    with Monitor(training, db=db, store_capacity=10) as monitor:
        for i in range(5):
            monitor.observe(training[i * 2 : i * 2 + 2], [0.0, 1.0])
        monitor.observe(training[:12], [0.0] * 12)  # more rows than the buffer ever holds: dropped at once
        assert monitor.flush()

    offline = offline_health(db)
    check = offline.report.check("store")

    assert (offline.report.requests, offline.report.rows) == (6, 22)
    assert check.status is Status.WARN
    assert "12 rows of answered requests were dropped from the log" in check.summary
