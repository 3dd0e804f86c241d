"""Opening the store: a fault at start-up never stops the writer, older files are migrated, and a
deleted write-ahead log is noticed before its rows are lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from guarded_serving.store import RequestRecord, StoreOptions, open_reader
from guarded_serving.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.fixtures.data import gaussian
from tests.fixtures.servers import ROOT
from tests.fixtures.waiting import wait_for


def record(request_id: str, rows: int = 2, model: str = "m", version: str | None = None) -> RequestRecord:
    inputs, outputs = [[1.0]] * rows, [0] * rows
    return RequestRecord(request_id, 1_700_000_000.0, model, version, "ok", rows, 1.0, {}, inputs=inputs, outputs=outputs)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def test_a_path_under_a_regular_file_keeps_the_store_accepting_reports_it_and_retries(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    db = blocker / "log.db"
    with capture_logs() as logs, SqliteStore(db, StoreOptions(flush_interval=0.02)) as store:  # opening never raises
        assert store.put(record("while-unopenable"))
        assert wait_for(lambda: store.stats().last_error is not None)
        failing = store.stats()
        blocker.unlink()  # the path can be created now: the writer's next attempt opens it
        assert store.flush(10)
        recovered = store.stats()

    assert not failing.opened
    assert "cannot open the log store" in str(failing.last_error)
    assert failing.pending == 2
    assert (recovered.opened, recovered.last_error, recovered.written) == (True, None, 2)
    assert query(db, "SELECT request_id FROM requests") == [("while-unopenable",)]
    assert [e["event"] for e in logs][:1] == ["store_write_failed"]


def test_a_path_that_is_a_directory_is_reported_until_it_is_a_file_again(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    db.mkdir()
    with SqliteStore(db, StoreOptions(flush_interval=0.02)) as store:
        store.put(record("r1"))
        assert wait_for(lambda: "Is a directory" in str(store.stats().last_error))
        db.rmdir()
        assert store.flush(10)

    assert query(db, "SELECT request_id FROM requests") == [("r1",)]


def test_a_locked_database_at_start_up_does_not_hold_up_opening(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    SqliteStore(db).open().close()
    blocker = sqlite3.connect(db, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        store = SqliteStore(db, StoreOptions(busy_timeout=0.2, flush_interval=0.02)).open()  # returns with the lock still held
        store.put(record("while-locked"))
        assert wait_for(lambda: "locked" in str(store.stats().last_error))
    finally:
        blocker.rollback()
        blocker.close()
    assert store.flush(10)
    store.close()

    assert query(db, "SELECT request_id FROM requests") == [("while-locked",)]


# The writer is killed (os._exit: no close, no checkpoint) after the WAL file was deleted under it.
KILLED_AFTER_WAL_DELETION = """
import os, sys
from guarded_serving.store import RequestRecord, StoreOptions, open_reader
from guarded_serving.store.sqlite import SqliteStore
db = sys.argv[1]
store = SqliteStore(db, StoreOptions(flush_interval=0.02)).open()
def put(n, prefix):
    for i in range(n):
        store.put(RequestRecord(f"{prefix}{i}", 1.0, "m", None, "ok", 1, 1.0, {}, inputs=[[1.0]], outputs=[0]))
    assert store.flush(10)
put(10, "before")
os.unlink(db + "-wal")
put(10, "after")
put(5, "later")
stats = store.stats()
print(getattr(stats, "wal_replaced", None), stats.last_error, flush=True)
os._exit(0)
"""


def test_a_deleted_wal_file_is_noticed_and_what_it_held_reaches_the_database_file(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_AFTER_WAL_DELETION), str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    assert done.returncode == 0, done.stderr
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    logged = {rid for (rid,) in query(db, "SELECT request_id FROM requests")}
    assert logged == {f"before{i}" for i in range(10)} | {f"after{i}" for i in range(10)} | {f"later{i}" for i in range(5)}
    assert "store_wal_replaced" in done.stdout
    assert done.stdout.splitlines()[-1].split() == ["1", "None"]  # noticed once, and no write failed


# -- a file written by the previous schema (2) is migrated when opened -----------------------------

SCHEMA_2 = """
CREATE TABLE requests (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, ts TEXT NOT NULL, model TEXT NOT NULL,
    version TEXT, status TEXT NOT NULL, rows INTEGER NOT NULL, latency_ms REAL, stages TEXT, failed_stage TEXT,
    error TEXT, problem_features TEXT, worker INTEGER, inputs TEXT, outputs TEXT);
CREATE TABLE totals (model TEXT PRIMARY KEY, requests INTEGER, rows INTEGER, rejected INTEGER, errors INTEGER,
    labels INTEGER NOT NULL DEFAULT 0, relabels INTEGER NOT NULL DEFAULT 0);
CREATE TABLE window (id INTEGER PRIMARY KEY, model TEXT NOT NULL, rows INTEGER NOT NULL, inputs BLOB NOT NULL,
    outputs BLOB, meta TEXT);
CREATE TABLE warnings (model TEXT, category TEXT, message TEXT, location TEXT, count INTEGER, first_seen TEXT,
    last_seen TEXT, PRIMARY KEY (model, category, message, location));
CREATE INDEX idx_requests_request_id ON requests (request_id);
CREATE INDEX idx_requests_model_id ON requests (model, id);
CREATE INDEX idx_window_model_id ON window (model, id);
CREATE TABLE feedback (model TEXT, request_id TEXT, row INTEGER, label TEXT, ts TEXT, updates INTEGER,
    PRIMARY KEY (model, request_id, row));
CREATE TABLE health_history (model TEXT, slot INTEGER, ts TEXT NOT NULL, status TEXT NOT NULL, snapshot TEXT NOT NULL,
    worker INTEGER, PRIMARY KEY (model, slot));
CREATE INDEX idx_health_history_model_ts ON health_history (model, ts);
CREATE TABLE models (model TEXT PRIMARY KEY, version TEXT, saved_at TEXT NOT NULL, reference TEXT NOT NULL,
    settings TEXT NOT NULL);
CREATE VIEW rows AS SELECT q.request_id AS request_id, j.key AS row, q.inputs -> j.key AS inputs,
    q.outputs -> j.key AS outputs FROM requests q, json_each(q.outputs) j;
PRAGMA user_version=2;

INSERT INTO requests (request_id, ts, model, version, status, rows, inputs, outputs) VALUES
    ('a1', '2026-01-01T00:00:00.000+00:00', 'a', '7', 'ok', 2, '[[1],[2]]', '[0,1]'),
    ('a2', '2026-01-01T00:00:01.000+00:00', 'a', '6', 'ok', 1, '[[3]]', '[1]'),
    ('b1', '2026-01-01T00:00:02.000+00:00', 'b', NULL, 'ok', 1, '[[4]]', '[0]');
INSERT INTO totals VALUES ('a', 2, 3, 0, 0, 2, 1), ('b', 1, 1, 0, 0, 0, 0);
INSERT INTO window (model, rows, inputs, meta) VALUES ('a', 1, x'0000000000000000', '{"width": 1}');
INSERT INTO warnings VALUES ('a', 'FutureWarning', 'soon', 'm.py:1', 4, '2026-01-01T00:00:00.000+00:00',
    '2026-01-01T00:00:01.000+00:00');
INSERT INTO feedback VALUES ('a', 'a1', 0, '1', '2026-01-01T00:01:00.000+00:00', 0),
    ('a', 'a2', 0, '0', '2026-01-01T00:01:00.000+00:00', 1);
INSERT INTO health_history VALUES ('a', 60000, '2026-01-01T00:01:00.000+00:00', 'ok', '{}', 1);
INSERT INTO models VALUES ('a', '7', '2026-01-01T00:00:00.000+00:00', '{}', '{}'),
    ('b', NULL, '2026-01-01T00:00:00.000+00:00', '{}', '{}');
"""


def test_a_schema_2_file_is_keyed_by_model_and_version_when_opened(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA_2)
    with SqliteStore(db, StoreOptions(flush_interval=0.02)) as store:
        store.put(record("a3", model="a", version="7"))
        assert store.flush()
        totals = store.totals("a", version="7")
        label_totals = store.label_totals("a", version="7")
        unversioned = store.totals("b")
        saved = store.saved_model("a", "7")

    assert query(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert (totals.requests, totals.rows, label_totals) == (3, 5, (2, 1))  # what the old file counted, kept
    assert (unversioned.requests, unversioned.rows) == (1, 1)
    assert saved is not None
    assert saved.version == "7"
    assert query(db, "SELECT model, version FROM models ORDER BY model") == [("a", "7"), ("b", "")]
    assert query(db, "SELECT model, version FROM window") == [("a", "7")]
    assert query(db, "SELECT version, count FROM warnings") == [("7", 4)]
    # a label joins the version that served its request, not the last one saved
    assert query(db, "SELECT request_id, version FROM feedback ORDER BY request_id") == [("a1", "7"), ("a2", "6")]
    assert query(db, "SELECT model, version, slot FROM health_history") == [("a", "7", 60000)]
    assert query(db, "SELECT request_id, row FROM rows ORDER BY request_id, row") == [
        ("a1", 0),
        ("a1", 1),
        ("a2", 0),
        ("a3", 0),
        ("a3", 1),
        ("b1", 0),
    ]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_two_stores_opening_a_schema_2_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    import threading

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SCHEMA_2)
    stores = [SqliteStore(db) for _ in range(4)]
    openers = [threading.Thread(target=s.open) for s in stores]
    for t in openers:
        t.start()
    for t in openers:
        t.join()
    for s in stores:
        assert wait_for(lambda s=s: s.stats().opened)
        s.close()

    assert query(db, "SELECT model, version, requests FROM totals ORDER BY model") == [("a", "7", 2), ("b", "", 1)]


def as_schema_2(db: Path) -> None:
    """Rewrite a current file the way the previous schema kept it: keyed by model alone."""
    keep = {
        "totals": "model TEXT PRIMARY KEY, requests INTEGER, rows INTEGER, rejected INTEGER, errors INTEGER,"
        " labels INTEGER NOT NULL DEFAULT 0, relabels INTEGER NOT NULL DEFAULT 0",
        "window": "id INTEGER PRIMARY KEY, model TEXT NOT NULL, rows INTEGER NOT NULL, inputs BLOB NOT NULL, outputs BLOB,"
        " meta TEXT",
        "warnings": "model TEXT, category TEXT, message TEXT, location TEXT, count INTEGER, first_seen TEXT, last_seen TEXT,"
        " PRIMARY KEY (model, category, message, location)",
        "feedback": "model TEXT, request_id TEXT, row INTEGER, label TEXT, ts TEXT, updates INTEGER,"
        " PRIMARY KEY (model, request_id, row)",
        "health_history": "model TEXT, slot INTEGER, ts TEXT NOT NULL, status TEXT NOT NULL, snapshot TEXT NOT NULL,"
        " worker INTEGER, PRIMARY KEY (model, slot)",
        "models": "model TEXT PRIMARY KEY, version TEXT, saved_at TEXT NOT NULL, reference TEXT NOT NULL, settings TEXT NOT NULL",
    }
    with sqlite3.connect(db) as conn:
        for name, columns in keep.items():
            names = [c.split()[0] for c in columns.split(", PRIMARY KEY")[0].split(", ")]
            listed = ", ".join("nullif(version, '')" if n == "version" else n for n in names)
            conn.execute(f"CREATE TABLE old_{name} ({columns})")
            conn.execute(f"INSERT INTO old_{name} SELECT {listed} FROM {name}")
            conn.execute(f"DROP TABLE {name}")
            conn.execute(f"ALTER TABLE old_{name} RENAME TO {name}")
        conn.execute("PRAGMA user_version=2")
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_the_offline_report_reads_a_schema_2_file_as_it_is(tmp_path: Path) -> None:
    import hashlib

    import numpy as np

    from guarded_serving import Monitor
    from guarded_serving.offline import offline_health

    db = tmp_path / "old.db"
    training = gaussian(1000, 3, seed=4)
    with Monitor(training, name="m", version="7", db=db, window=300) as monitor:
        monitor.observe(training[:300] + np.array([0, 0, 3]), training[:300].sum(axis=1))
        assert monitor.flush()
        live = monitor.health()
    as_schema_2(db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    offline = offline_health(db)

    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    assert query(db, "PRAGMA user_version") == [(2,)]
    assert offline.report.model_version == "7"
    assert (offline.report.requests, offline.report.rows, offline.report.window_rows) == (1, 300, 300)
    assert offline.report.check("data_drift").summary == live.check("data_drift").summary


# -- a file written by schema 3 (before baselines were kept) gains the table when opened ---------------


def as_schema_3(db: Path) -> None:
    """Rewrite a current file the way schema 3 kept it: no baselines table."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE baselines")
        conn.execute("PRAGMA user_version=3")


def test_a_schema_3_file_reads_as_having_no_baselines_and_keeps_them_once_opened(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with SqliteStore(db, StoreOptions(flush_interval=0.02)) as store:
        store.put(record("a"))
        assert store.flush()
    as_schema_3(db)
    reader = open_reader(db)
    try:
        before = reader.baseline("m", None, "digest", "outputs")
    finally:
        reader.close()

    with SqliteStore(db, StoreOptions(flush_interval=0.02)) as store:
        store.save_baseline("m", None, "digest", "outputs", 2000, "{}")
        after = store.baseline("m", None, "digest", "outputs")
        totals = store.totals("m")

    assert before is None
    assert after is not None
    assert after.rows == 2000
    assert (totals.requests, totals.rows) == (1, 2)
    assert query(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
