"""The SQLite store: what it writes, how it counts, and how it survives a locked database."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from guarded_serving import Monitor, Reference
from guarded_serving.drift.window import Chunk
from guarded_serving.environment import WarningRecord
from guarded_serving.redaction import redacted_reference
from guarded_serving.store import RequestRecord, Store, StoreOptions, Totals, iso_time, open_reader
from guarded_serving.store.sqlite import SCHEMA_VERSION, SqliteStore
from guarded_serving.store.sqlite.chunks import _IDS
from guarded_serving.store.sqlite.reader import _REQUEST_ROWS, MARKS
from guarded_serving.store.sqlite.retention import Retention
from tests.fixtures.data import gaussian
from tests.store.test_contract import newest_that_fit


def record(request_id: str, status: str = "ok", rows: int = 2, model: str = "m", **extra: object) -> RequestRecord:
    inputs = [[float(i), "x"] for i in range(rows)] if status == "ok" else None
    outputs = [i * 0.5 for i in range(rows)] if status == "ok" else None
    return RequestRecord(
        request_id=request_id,
        ts=1_700_000_000.0,
        model=model,
        version="1",
        status=status,  # type: ignore[arg-type]
        rows=rows,
        latency_ms=1.25,
        stages={"validate": 0.1, "predict": 1.0},
        inputs=inputs,
        outputs=outputs,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "log.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with SqliteStore(db_path, StoreOptions(flush_interval=0.05)) as s:
        yield s


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql))


def test_requests_and_rows_are_written_after_a_flush(store: Store, db_path: Path) -> None:
    store.put(record("r1"))

    assert store.flush()
    assert query(db_path, "SELECT request_id, model, version, status, rows, latency_ms FROM requests") == [
        ("r1", "m", "1", "ok", 2, 1.25)
    ]
    rows = query(db_path, "SELECT request_id, row, inputs, outputs FROM rows ORDER BY row")
    assert [(r, i, json.loads(str(x)), json.loads(str(y))) for r, i, x, y in rows] == [
        ("r1", 0, [0.0, "x"], 0.0),
        ("r1", 1, [1.0, "x"], 0.5),
    ]
    assert json.loads(str(query(db_path, "SELECT stages FROM requests")[0][0])) == {"validate": 0.1, "predict": 1.0}


def test_timings_under_a_name_that_is_not_text_are_stored_as_json_all_the_same(store: Store, db_path: Path) -> None:
    store.put(dataclasses.replace(record("number"), stages={5: 1.0, "predict": 2.0}))  # type: ignore[dict-item]

    assert store.flush()
    assert json.loads(str(query(db_path, "SELECT stages FROM requests")[0][0])) == {"5": 1.0, "predict": 2.0}


def test_the_database_file_is_readable_by_its_owner_only(store: Store, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_the_database_is_in_wal_mode(store: Store, db_path: Path) -> None:
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_totals_count_requests_rows_rejections_and_errors(store: Store) -> None:
    for i in range(3):
        store.put(record(f"ok{i}", rows=4))
    store.put(record("bad", status="rejected", rows=0))
    store.put(record("err", status="error", rows=1))
    store.flush()

    assert store.totals("m", version="1") == Totals(requests=5, rows=12, rejected=1, errors=1)
    assert store.totals("m") == store.totals("other") == Totals()  # another version, another model


def test_two_stores_on_one_file_add_up_like_two_workers(db_path: Path) -> None:
    with (
        SqliteStore(db_path, StoreOptions(flush_interval=0.05)) as first,
        SqliteStore(db_path, StoreOptions(flush_interval=0.05)) as second,
    ):
        for i in range(50):
            first.put(record(f"a{i}"))
            second.put(record(f"b{i}"))
        first.flush()
        second.flush()

        assert first.totals("m", version="1") == second.totals("m", version="1") == Totals(requests=100, rows=200)


def test_warnings_are_upserted_with_counts(store: Store) -> None:
    warning = WarningRecord("DeprecationWarning", "old", "model.py:3", 1)
    store.put(record("w1", warnings=(warning,)))
    store.put(record("w2", warnings=(warning, WarningRecord("FutureWarning", "soon", "model.py:9", 1))))
    store.flush()

    assert store.warnings("m", version="1") == (
        WarningRecord("DeprecationWarning", "old", "model.py:3", 2),
        WarningRecord("FutureWarning", "soon", "model.py:9", 1),
    )


def test_recent_requests_are_newest_first_and_bounded(store: Store) -> None:
    for i in range(10):
        store.put(record(f"r{i}"))
    store.flush()

    assert [r["request_id"] for r in store.recent_requests("m", 3, version="1")] == ["r9", "r8", "r7"]


def test_a_full_buffer_drops_and_counts_instead_of_growing(db_path: Path) -> None:
    store = SqliteStore(db_path, StoreOptions(capacity=10))  # not opened: nothing drains the buffer

    accepted = [store.put(record(f"r{i}", rows=3)) for i in range(5)]

    assert accepted == [True, True, True, False, False]
    assert store.stats().pending == 9
    assert store.stats().dropped == 6


def test_close_writes_what_is_pending(db_path: Path) -> None:
    store = SqliteStore(db_path, StoreOptions(flush_interval=60)).open()  # a long interval: only close() can flush
    for i in range(20):
        store.put(record(f"r{i}"))

    assert store.close(timeout=10)
    assert query(db_path, "SELECT count(*) FROM requests") == [(20,)]
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]


def test_reopening_keeps_appending(db_path: Path) -> None:
    for round_ in range(2):
        with SqliteStore(db_path) as store:
            store.put(record(f"r{round_}"))

    assert query(db_path, "SELECT request_id FROM requests ORDER BY id") == [("r0",), ("r1",)]


def test_a_locked_database_is_reported_then_recovered_without_losing_rows(db_path: Path) -> None:
    with capture_logs() as logs, SqliteStore(db_path, StoreOptions(flush_interval=0.05, busy_timeout=0.1)) as store:
        blocker = sqlite3.connect(db_path, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        store.put(record("while-locked"))
        deadline = time.monotonic() + 10
        while store.stats().last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        failing = store.stats()
        blocker.rollback()
        blocker.close()

        assert store.flush(timeout=10)
        recovered = store.stats()

    assert failing.last_error is not None
    assert "locked" in failing.last_error
    assert failing.pending == 2
    assert recovered.last_error is None
    assert recovered.written == 2
    assert query(db_path, "SELECT request_id FROM requests") == [("while-locked",)]
    assert [e["event"] for e in logs] == ["store_write_failed", "store_recovered"]


def test_a_schema_1_file_keeps_its_rows_when_they_move_into_the_requests(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE requests (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, ts TEXT NOT NULL, model TEXT NOT NULL,
            version TEXT, status TEXT NOT NULL, rows INTEGER NOT NULL, latency_ms FLOAT, stages TEXT, failed_stage TEXT,
            error TEXT, worker INTEGER);
        CREATE TABLE rows (request_id TEXT NOT NULL, row INTEGER NOT NULL, inputs TEXT, outputs TEXT);
        INSERT INTO requests (request_id, ts, model, status, rows) VALUES
            ('a', '2026-01-01T00:00:00.000+00:00', 'm', 'ok', 2),
            ('withheld', '2026-01-01T00:00:01.000+00:00', 'm', 'ok', 1),
            ('bad', '2026-01-01T00:00:02.000+00:00', 'm', 'rejected', 0);
        INSERT INTO rows VALUES ('a', 1, '[3.5,"x"]', '0.25'), ('a', 0, '[1.0,null]', '[0.9,0.1]'), ('withheld', 0, NULL, '1');
        """
    )
    conn.commit()
    conn.close()
    with SqliteStore(path, StoreOptions(flush_interval=0.05)) as store:
        store.put(record("new", rows=1))
        assert store.flush(5)
    assert query(path, "SELECT request_id, row, inputs, outputs FROM rows ORDER BY request_id, row") == [
        ("a", 0, "[1.0,null]", "[0.9,0.1]"),
        ("a", 1, '[3.5,"x"]', "0.25"),
        ("new", 0, '[0.0,"x"]', "0.0"),
        ("withheld", 0, None, "1"),
    ]
    assert query(path, "SELECT type FROM sqlite_master WHERE name = 'rows'") == [("view",)]


def test_a_saved_model_is_written_with_the_next_flush_even_without_traffic(store: Store, db_path: Path) -> None:
    store.save_model("m", "3", '{"format": "x"}', {"window": 500})

    assert store.flush()
    assert query(db_path, "SELECT model, version, reference, settings FROM models") == [
        ("m", "3", '{"format": "x"}', '{"window": 500}')
    ]
    [saved] = store.saved_models().values()
    assert (saved.name, saved.version, saved.settings) == ("m", "3", {"window": 500})
    assert store.model_names() == ["m"]


def test_a_saved_model_is_written_again_into_a_replaced_file(store: Store, db_path: Path) -> None:
    store.save_model("m", None, "{}", {})
    assert store.flush()

    db_path.unlink()
    store.put(record("after"))

    assert store.flush()
    assert query(db_path, "SELECT model FROM models") == [("m",)]
    assert query(db_path, "SELECT request_id FROM requests") == [("after",)]


def test_a_started_monitor_saves_its_reference_and_settings(db_path: Path) -> None:
    training = gaussian(200, 2, seed=0)
    with Monitor(training, name="m", version="2", db=db_path, window=300, redact=["f1"], feature_names=["f0", "f1"]) as monitor:
        assert monitor.flush()
        [saved] = monitor.store.saved_models().values()  # type: ignore[union-attr]

    # A redacted feature is saved with its name and kind only (tests/test_redaction.py).
    assert Reference.from_json(json.loads(saved.reference)) == redacted_reference(monitor.reference, {"f1"})
    assert saved.version == "2"
    assert saved.settings == monitor.settings()
    assert saved.settings["window"] == 300
    assert saved.settings["redact"] == ["f1"]


def test_the_recent_requests_marks_are_read_from_an_index_alone(store: Store, db_path: Path) -> None:
    """A wide request's row is a page of its own: reading the marks from the table read every recent row's page."""
    store.put(record("r0"))
    store.flush()

    with sqlite3.connect(db_path) as db:
        plan = db.execute("EXPLAIN QUERY PLAN " + MARKS.format(since=""), ["m", "1", 0, 10]).fetchall()

    assert "USING COVERING INDEX idx_requests_recent" in str(plan)
    assert [mark[1:] for mark in store.recent_request_marks("m", 10, version="1")] == [("ok", 1.25, None)]


@pytest.mark.parametrize("ids", [1, 50, 500])
def test_requests_are_looked_up_by_id_on_the_request_id_index(store: Store, db_path: Path, ids: int) -> None:
    """Labels arriving late look their requests up: on the model's indexes the plan walked every stored request."""
    for i in range(3):
        store.put(record(f"r{i}"))
    store.flush()
    asked = [f"r{i}" for i in range(ids)]

    with sqlite3.connect(db_path) as db:
        query = _REQUEST_ROWS.format(marks=",".join("?" * ids))
        plan = str(db.execute("EXPLAIN QUERY PLAN " + query, [*asked, "m", "1"]).fetchall())

    assert "USING INDEX idx_requests_request_id (request_id=?)" in plan
    assert "idx_requests_recent" not in plan
    assert "idx_requests_model_id" not in plan
    assert store.request_rows("m", asked, version="1") == {f"r{i}": 2 for i in range(min(ids, 3))}


def test_request_edits_move_when_a_request_is_changed_or_deleted_by_any_writer(store: Store, db_path: Path) -> None:
    store.put(record("r0"))
    store.put(record("r1"))
    store.flush()
    counts = [store.request_edits()]
    for statement in (
        "UPDATE requests SET latency_ms = 9.0 WHERE request_id = 'r0'",
        "UPDATE requests SET stages = '{}' WHERE request_id = 'r1'",
        "DELETE FROM requests WHERE request_id = 'r0'",
    ):
        with sqlite3.connect(db_path) as db:
            db.execute(statement)
        counts.append(store.request_edits())

    assert counts[0] is not None
    assert len(set(counts)) == 4


def reopened_as_older(db_path: Path, version: int, statements: list[str], logged: RequestRecord) -> SqliteStore:
    """A store opened on a file holding ``logged`` as schema ``version`` left it (``statements`` undo what came
    after), so that opening it migrates it."""
    first = SqliteStore(db_path)
    first.open()
    first.put(logged)
    first.close()
    with sqlite3.connect(db_path) as db:
        for statement in statements:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
    again = SqliteStore(db_path)
    again.open()
    return again


def indexes_of(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_schema_5_file_gets_the_covering_index_when_opened(db_path: Path) -> None:
    older = ["DROP INDEX idx_requests_recent", "CREATE INDEX idx_requests_model_version_id ON requests (model, version, id)"]
    again = reopened_as_older(db_path, 5, older, record("r0"))
    try:
        with sqlite3.connect(db_path) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        assert "idx_requests_recent" in indexes_of(db_path)
        assert "idx_requests_model_version_id" not in indexes_of(db_path)
        assert version == SCHEMA_VERSION
        assert [r["request_id"] for r in again.recent_requests("m", 10, version="1")] == ["r0"]
    finally:
        again.close()


def test_a_schema_7_file_gets_the_request_edits_counter_when_opened(db_path: Path) -> None:
    older = ["DROP TRIGGER requests_edited", "DROP TRIGGER requests_removed", "DELETE FROM changes WHERE name = 'request'"]
    again = reopened_as_older(db_path, 7, older, record("r0"))
    try:
        before = again.request_edits()
        with sqlite3.connect(db_path) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute("UPDATE requests SET status = 'error' WHERE request_id = 'r0'")
        assert (version, before) == (SCHEMA_VERSION, 0)
        assert again.request_edits() == 1
    finally:
        again.close()


def test_a_file_without_the_counters_read_as_it_is_has_no_request_edits(db_path: Path) -> None:
    with SqliteStore(db_path) as first:
        first.put(record("r0"))
        first.flush()
    with sqlite3.connect(db_path) as db:  # as schema 4 left it, read without being opened for writing
        for trigger in ("feedback_inserted", "feedback_updated", "feedback_deleted", "requests_deleted"):
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DROP TRIGGER requests_edited")
        db.execute("DROP TRIGGER requests_removed")
        db.execute("DROP TABLE changes")
        db.execute("PRAGMA user_version = 4")

    reader = open_reader(f"sqlite:///{db_path}")

    assert reader.request_edits() is None
    assert [mark[1] for mark in reader.recent_request_marks("m", 10, version="1")] == ["ok"]


def test_a_schema_6_file_gets_the_window_index_that_covers_the_window_read(db_path: Path) -> None:
    older = ["DROP INDEX idx_window_chunks", "CREATE INDEX idx_window_model_version_id ON window (model, version, id)"]
    again = reopened_as_older(db_path, 6, older, record("r0", window=Chunk(np.zeros((2, 1)), None, {}, {})))
    try:
        with sqlite3.connect(db_path) as db:
            plan = db.execute("EXPLAIN QUERY PLAN " + _IDS, ["m", "1"]).fetchall()
        assert "idx_window_model_version_id" not in indexes_of(db_path)
        assert "USING COVERING INDEX idx_window_chunks" in str(plan)  # no chunk's 64 kB page read to list the window
        assert [c.rows for c in again.window_chunks("m", version="1")] == [2]
    finally:
        again.close()


def _kept_by_max_rows(db_path: Path, max_rows: int) -> set[int]:
    """What max_rows keeps of the file as it is: the newest requests while their rows (at least one each) fit."""
    with sqlite3.connect(db_path) as db:
        return _kept_by_max_rows_of(db, max_rows)


def _kept_by_max_rows_of(db: sqlite3.Connection, max_rows: int) -> set[int]:
    return newest_that_fit(db.execute("SELECT id, max(rows, 1) FROM requests ORDER BY id DESC").fetchall(), max_rows)


def test_max_rows_pruned_again_and_again_keeps_what_counting_every_request_keeps(db_path: Path) -> None:
    """Each prune counts what the last one left and what came since; requests another writer edits or deletes
    make it count them all again. After every prune the file holds what counting them all would have kept."""
    rng = np.random.default_rng(5)
    with SqliteStore(db_path, StoreOptions(flush_interval=0.05, max_rows=60)) as store:
        for round_ in range(60):
            for k in range(int(rng.integers(1, 12))):
                rows = int(rng.integers(0, 8))
                store.put(record(f"r{round_}-{k}", status="ok" if rows else "rejected", rows=rows))
            assert store.flush()
            if round_ % 7 == 3:  # another writer deletes a kept request, or edits one's rows
                with sqlite3.connect(db_path) as other:
                    (victim,) = other.execute("SELECT id FROM requests ORDER BY random() LIMIT 1").fetchone()
                    if round_ % 2:
                        other.execute("DELETE FROM requests WHERE id = ?", (victim,))
                    else:
                        other.execute("UPDATE requests SET rows = rows + 3 WHERE id = ?", (victim,))
            expected = _kept_by_max_rows(db_path, 60)
            store.prune()
            with sqlite3.connect(db_path) as db:
                assert {i for (i,) in db.execute("SELECT id FROM requests")} == expected, f"round {round_}"


def test_a_prune_after_new_requests_only_walks_the_new_ones(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SqliteStore(db_path, StoreOptions(flush_interval=0.05, max_rows=20)) as store:
        store.put(record("first", rows=15))
        assert store.flush()
        store.prune()  # counts every request kept, once
        monkeypatch.setattr(Retention, "_oldest_kept", lambda *a: pytest.fail("walked every request again"))
        for i in range(5):
            store.put(record(f"r{i}", rows=3))
        assert store.flush()
        store.prune()
        kept = [r["request_id"] for r in store.recent_requests("m", 10, version="1")]
        monkeypatch.undo()
        with sqlite3.connect(db_path) as other:
            other.execute("DELETE FROM requests WHERE request_id = 'r4'")
        store.put(record("r5", rows=3))
        assert store.flush()
        store.prune()  # another writer deleted one: every request counted again
        kept_after = [r["request_id"] for r in store.recent_requests("m", 10, version="1")]

    assert kept == ["r4", "r3", "r2", "r1", "r0"]  # 15 rows, then "first" and its 15 went
    assert kept_after == ["r5", "r3", "r2", "r1", "r0"]


def test_max_age_and_max_rows_pruned_together_keep_what_counting_every_request_keeps(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests max_age deletes in the same prune are counted out of what the last prune left: every request is
    counted once, by the first prune."""
    walks: list[int] = []
    walk = Retention._oldest_kept

    def counted(*args: Any) -> Any:
        walks.append(1)
        return walk(*args)

    monkeypatch.setattr(Retention, "_oldest_kept", counted)
    rng = np.random.default_rng(6)
    now = time.time()
    with SqliteStore(db_path, StoreOptions(flush_interval=0.05, max_rows=40, max_age=3600)) as store:
        for round_ in range(40):
            for k in range(int(rng.integers(1, 10))):
                old = rng.random() < 0.3  # logged with an old time: a late batch, a clock put right
                rows = int(rng.integers(1, 6))
                store.put(dataclasses.replace(record(f"r{round_}-{k}", rows=rows), ts=now - 7200 if old else now))
            assert store.flush()
            with sqlite3.connect(db_path) as db:
                db.execute("DELETE FROM requests WHERE ts < ?", (iso_time(now - 3600),))  # what max_age deletes
                expected = _kept_by_max_rows_of(db, 40)
                db.rollback()
            store.prune()
            with sqlite3.connect(db_path) as db:
                assert {i for (i,) in db.execute("SELECT id FROM requests")} == expected, f"round {round_}"

    assert len(walks) == 1
