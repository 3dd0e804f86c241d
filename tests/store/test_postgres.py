"""What the PostgreSQL backend does beyond the contract: a URL completed by libpq's variables, a password never
shown, a schema created once by replicas starting together, retention by one replica at a time, heartbeats,
and a server that goes away and comes back."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np
import psutil
import psycopg
import pytest
import structlog

from guarded_serving.store import Store, StoreOptions, StoreReader, open_reader, open_store
from guarded_serving.store.postgres import retention
from guarded_serving.store.postgres.retention import RETENTION_LOCK
from guarded_serving.store.postgres.schema import SCHEMA_VERSION
from guarded_serving.store.sqlite.codec import iso
from tests.fixtures.postgres import PASSWORD, USER, PostgresServer, sweep_orphans
from tests.fixtures.waiting import wait_for

from .test_contract import T0, newest_that_fit, put_all, record


@contextlib.contextmanager
def reader(url: str) -> Iterator[StoreReader]:
    opened_reader = open_reader(url)
    try:
        yield opened_reader
    finally:
        opened_reader.close()


def opened(url: str, **options: object) -> Store:
    store = open_store(url, StoreOptions(**{"flush_interval": 0.02, **options}))  # type: ignore[arg-type]
    assert store is not None
    return store.open()


def test_libpq_variables_complete_a_url_that_names_only_the_database(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = urlsplit(postgres_url)
    for name, value in {"PGHOST": parts.hostname, "PGPORT": str(parts.port), "PGUSER": USER, "PGPASSWORD": PASSWORD}.items():
        monkeypatch.setenv(name, str(value))

    store = opened(f"postgresql:///{parts.path.lstrip('/')}")
    try:
        put_all(store, record("a"))
    finally:
        store.close()

    with reader(postgres_url) as found:
        assert found.totals("m").requests == 1


def test_the_password_is_in_no_path_error_or_log_event(postgres: PostgresServer) -> None:
    url = postgres.url("no_such_database", password="s3cret-in-url")
    with structlog.testing.capture_logs() as logged:
        store = opened(url)
        try:
            store.put(record("a"))
            assert wait_for(lambda: store.stats().last_error is not None)
            stats = store.stats()
        finally:
            store.close(timeout=1)
    events = [str(event) for event in logged]

    assert stats.path == f"postgresql://{USER}:***@127.0.0.1:{postgres.port}/no_such_database"
    assert "password authentication failed" in str(stats.last_error)
    assert events
    assert not [text for text in [stats.path, str(stats.last_error), *events] if "s3cret-in-url" in text]


def test_a_reader_of_a_database_without_a_store_names_it_without_its_password(postgres_url: str) -> None:
    with pytest.raises(Exception, match="has no requests table") as raised:
        open_reader(postgres_url)

    assert PASSWORD not in str(raised.value)


def test_replicas_starting_together_create_the_tables_once(postgres_url: str) -> None:
    stores: list[Store] = []
    start = threading.Barrier(8)

    def replica() -> None:
        start.wait()
        stores.append(opened(postgres_url))

    threads = [threading.Thread(target=replica) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        for i, store in enumerate(stores):
            assert store.put(record(f"r{i}"))
        assert all(store.flush() for store in stores)
        assert [store.stats().last_error for store in stores] == [None] * 8
    finally:
        for store in stores:
            store.close()

    with reader(postgres_url) as found:
        assert found.totals("m").requests == 8


def test_a_replica_does_not_prune_while_another_one_is(postgres_url: str) -> None:
    writer = opened(postgres_url)
    put_all(writer, *(record(f"r{i}", ts=T0 + i) for i in range(5)))  # 10 rows
    writer.close()
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (RETENTION_LOCK,))  # another replica is pruning
        store = opened(postgres_url, max_rows=4)
        try:
            store.save_model("m", None, "{}", {})  # serves the model: its rows are this store's to prune
            assert store.flush()
            assert store.prune() == 0
            other.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK,))
            assert store.prune() == 3
            assert store.totals("m").requests == 5  # running counts keep every request
            assert [r["request_id"] for r in store.recent_requests("m", 10)] == ["r4", "r3"]
        finally:
            store.close()


def test_a_replica_posts_a_heartbeat_while_it_runs_and_leaves_when_it_closes(postgres_url: str) -> None:
    store = opened(postgres_url)
    try:
        store.save_model("m", "2", "{}", {})
        assert wait_for(lambda: len(store.replicas("m", version="2")) == 1)
        (beat,) = store.replicas("m", version="2")
    finally:
        store.close()

    assert beat.name == store.replica == f"{beat.host}:{beat.pid}"
    assert beat.age < 10
    assert '"packages"' in beat.fingerprint
    assert (beat.pending, beat.dropped, beat.last_error) == (0, 0, None)
    with reader(postgres_url) as found:
        assert found.replicas("m", version="2") == []


def test_rows_wait_while_the_server_is_down_and_are_written_once_it_is_back(own_postgres: PostgresServer) -> None:
    url = own_postgres.database()
    store = opened(url)
    try:
        put_all(store, record("before"))
        own_postgres.stop()
        for i in range(50):
            assert store.put(record(f"during-{i}"))
        assert wait_for(lambda: store.stats().last_error is not None)
        assert store.stats().pending == 100
        own_postgres.start()

        assert store.flush(timeout=30)
        assert store.stats().last_error is None
        assert store.totals("m").requests == 51
        assert len(store.request_log("m", limit=100)) == 51
    finally:
        store.close()


def test_a_postgresql_url_without_the_postgres_extra_says_what_to_install() -> None:
    script = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if the postgres extra were not installed\n"
        "from guarded_serving.errors import ConfigurationError\n"
        "from guarded_serving.store import open_store\n"
        "try:\n"
        "    open_store('postgresql://guard:s3cret@db/logs')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )

    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout

    assert printed.startswith('db: expected the postgres extra installed: pip install "guarded-serving[postgres]"')
    assert "s3cret" not in printed


def test_a_database_that_stalls_the_writer_never_stalls_put(postgres_url: str) -> None:
    store = opened(postgres_url)
    try:
        put_all(store, record("before"))
        with psycopg.connect(postgres_url) as other, other.transaction():
            other.execute("LOCK TABLE requests IN ACCESS EXCLUSIVE MODE")  # the writer's COPY now waits on the server
            assert all(store.put(record(f"during-{i}")) for i in range(200))
            assert wait_for(lambda: store.stats().pending == 400)  # all of them waiting, none written, none dropped
            assert store.stats().dropped == 0
        assert store.flush(timeout=30)
        assert store.totals("m").requests == 201
    finally:
        store.close()


def test_a_schema_2_database_gains_change_numbers_and_keeps_its_labels(postgres_url: str) -> None:
    with opened(postgres_url) as store:
        put_all(store, record("a"))
        store.write_feedback("m", [("a", 0, '"x"'), ("a", 1, '"y"')])
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the database as schema 2 left it
        conn.execute("DROP TRIGGER feedback_changed ON feedback")
        conn.execute("DROP TRIGGER feedback_deleted ON feedback")
        conn.execute("DROP TRIGGER requests_deleted ON requests")
        conn.execute("DROP TABLE changes")
        conn.execute("ALTER TABLE feedback DROP COLUMN changed")
        conn.execute("UPDATE guarded_serving_meta SET value = '2' WHERE key = 'schema_version'")
    with reader(postgres_url) as old:
        assert old.labelled("m", 10).labels == ["x", "y"]  # read as it is, joined on every read

    with opened(postgres_url) as store:
        before = store.labelled("m", 10).labels
        store.write_feedback("m", [("a", 0, '"z"')])
        after = store.labelled("m", 10).labels

    with psycopg.connect(postgres_url) as conn:
        numbered = conn.execute("SELECT row, changed > 0 FROM feedback ORDER BY row").fetchall()
        version = conn.execute("SELECT value FROM guarded_serving_meta WHERE key = 'schema_version'").fetchone()
    assert (before, after) == (["x", "y"], ["z", "y"])
    assert numbered == [(0, True), (1, False)]  # numbers may skip (an upsert's insert fires before its update)
    assert version == (str(SCHEMA_VERSION),)  # brought up to date


def test_a_server_left_by_a_killed_test_run_is_stopped_and_removed_by_the_next(own_postgres: PostgresServer) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that has ended: the killed run
    gone.wait()
    (own_postgres.root / "owner.pid").write_text(str(gone.pid))
    postmaster = int((own_postgres.data / "postmaster.pid").read_text().split()[0])
    assert psutil.pid_exists(postmaster)

    swept = sweep_orphans(own_postgres.bin)

    assert own_postgres.root in swept
    assert not own_postgres.root.exists()
    assert wait_for(lambda: not psutil.pid_exists(postmaster))


def test_a_running_test_s_server_is_left_alone(postgres: PostgresServer) -> None:
    assert postgres.root not in sweep_orphans(postgres.bin)
    assert postgres.sql("SELECT 1") == "1"


# --- max_rows by counting what the last prune kept (retention.py), across replicas ----------------------------------


_NEWEST_FIRST = "SELECT id, greatest(rows, 1) FROM requests ORDER BY id DESC"


def _kept_by_max_rows(url: str, max_rows: int) -> set[int]:
    """What max_rows keeps of the database as it is: the newest requests while their rows (at least one each) fit."""
    with psycopg.connect(url) as conn:
        return newest_that_fit(conn.execute(_NEWEST_FIRST).fetchall(), max_rows)


def _ids(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {i for (i,) in conn.execute("SELECT id FROM requests")}


@pytest.mark.parametrize("late_ids", [0, 7])
def test_max_rows_pruned_by_two_replicas_in_turn_keeps_what_counting_every_request_keeps(
    postgres_url: str, late_ids: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each prune counts what the last one kept (whichever replica made it) and what came since; a request deleted
    or edited by hand makes the next one count every request again, as the periodic count does. After every prune
    the database holds what counting every request would have kept."""
    monkeypatch.setattr(retention, "LATE_IDS", late_ids)
    monkeypatch.setattr(retention, "COUNT_EVERY", 9)
    counts: list[int] = []
    count_all = retention.Retention._count_all
    monkeypatch.setattr(retention.Retention, "_count_all", lambda *a: counts.append(1) or count_all(*a))
    rng = np.random.default_rng(5)
    replicas = [opened(postgres_url, max_rows=60), opened(postgres_url, max_rows=60)]
    try:
        for store in replicas:
            store.save_model("m", None, "{}", {})  # serves the model: its rows are each store's to prune
        for round_ in range(45):
            store = replicas[round_ % 2 if round_ < 30 else 0]
            for k in range(int(rng.integers(1, 12))):
                rows = int(rng.integers(0, 8))
                store.put(record(f"r{round_}-{k}", status="ok" if rows else "rejected", rows=rows))
            assert store.flush()
            if round_ % 7 == 3:  # a request deleted by hand, or its rows edited
                with psycopg.connect(postgres_url, autocommit=True) as other:
                    (victim,) = other.execute("SELECT id FROM requests ORDER BY random() LIMIT 1").fetchone() or (0,)
                    if round_ % 2:
                        other.execute("DELETE FROM requests WHERE id = %s", (victim,))
                    else:
                        other.execute("UPDATE requests SET rows = rows + 3 WHERE id = %s", (victim,))
            expected = _kept_by_max_rows(postgres_url, 60)
            store.prune()
            assert _ids(postgres_url) == expected, f"round {round_}"
    finally:
        for store in replicas:
            store.close()

    # the first prune, one after each of the 7 edits by hand, and the periodic ones (every 9th prune); the writers'
    # own prunes between writes may add to them, never to the rounds' 45
    assert 8 <= len(counts) < 45


def test_a_prune_after_new_requests_walks_only_the_new_ones_whichever_replica_made_the_last(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "LATE_IDS", 0)
    first, second = opened(postgres_url, max_rows=20), opened(postgres_url, max_rows=20)
    try:
        for store in (first, second):
            store.save_model("m", None, "{}", {})
        put_all(first, record("first", rows=15))
        first.prune()  # counts every request kept, once
        monkeypatch.setattr(retention.Retention, "_count_all", lambda *a: pytest.fail("counted every request again"))
        put_all(second, *(record(f"r{i}", rows=3) for i in range(5)))
        second.prune()  # the other replica: it reads what the first one kept
        kept = [r["request_id"] for r in second.recent_requests("m", 10)]
        monkeypatch.undo()
        monkeypatch.setattr(retention, "LATE_IDS", 0)
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("DELETE FROM requests WHERE request_id = 'r4'")
        put_all(first, record("r5", rows=3))
        first.prune()  # deleted by hand: every request counted again
        kept_after = [r["request_id"] for r in first.recent_requests("m", 10)]
    finally:
        first.close()
        second.close()

    assert kept == ["r4", "r3", "r2", "r1", "r0"]  # 15 rows, then "first" and its 15 went
    assert kept_after == ["r5", "r3", "r2", "r1", "r0"]


def test_max_age_and_max_rows_pruned_together_keep_what_counting_every_request_keeps(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests max_age deletes in the same prune are counted out of what the last prune kept, and their labels'
    deletion is this prune's own: every request is counted once, by the first prune."""
    monkeypatch.setattr(retention, "LATE_IDS", 0)
    counts: list[int] = []
    count_all = retention.Retention._count_all
    monkeypatch.setattr(retention.Retention, "_count_all", lambda *a: counts.append(1) or count_all(*a))
    rng = np.random.default_rng(6)
    now = time.time()
    store = opened(postgres_url, max_rows=40, max_age=3600)
    try:
        store.save_model("m", None, "{}", {})
        for round_ in range(30):
            for k in range(int(rng.integers(1, 10))):
                old = rng.random() < 0.3  # logged with an old time: a late batch, a clock put right
                store.put(record(f"r{round_}-{k}", rows=int(rng.integers(1, 6)), ts=now - 7200 if old else now))
            assert store.flush()
            store.write_feedback("m", [(f"r{round_}-0", 0, "1")])  # labels max_age deletes with their requests
            with psycopg.connect(postgres_url) as conn:
                if round_ % 3 == 1:  # and a label older than max_age of a request it keeps
                    conn.execute("UPDATE feedback SET ts = %s WHERE request_id = %s", (iso(now - 7200), f"r{round_}-0"))
                    conn.commit()
                conn.execute("DELETE FROM requests WHERE ts < %s", (iso(now - 3600),))  # what max_age deletes
                expected = newest_that_fit(conn.execute(_NEWEST_FIRST).fetchall(), 40)
                conn.rollback()
            store.prune()
            assert _ids(postgres_url) == expected, f"round {round_}"
    finally:
        store.close()

    assert len(counts) == 1
