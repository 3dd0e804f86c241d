"""Health history: snapshots per slot, in memory or in the store, deduplicated across workers, bounded."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from guarded_serving import CheckResult, ConfigurationError, HealthReport, Monitor, Status
from guarded_serving.history import History, Snapshot
from guarded_serving.operational import PipelineDetails
from guarded_serving.stages import StageSummary
from guarded_serving.store import StoreOptions
from guarded_serving.store.sqlite import SqliteStore
from tests.fixtures.data import gaussian
from tests.fixtures.waiting import wait_for

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def report(status: Status = Status.OK, generated_at: str = "2026-01-01T00:00:00.000+00:00", requests: int = 10) -> HealthReport:
    stages = {
        "predict": StageSummary("predict", 10, 0, 1.5, 2.5, 3.5),
        "validate": StageSummary("validate", 10, 0, 0.2, 0.3, 0.4),
    }
    pipeline = PipelineDetails(10, 0.0, 0.0, 1.8, 4.0, None, stages)
    return HealthReport(
        status=status,
        model_name="m",
        model_version=None,
        generated_at=generated_at,
        window_rows=100,
        window_capacity=1000,
        requests=requests,
        rows=20 * requests,
        rejected=1,
        errors=0,
        checks=(
            CheckResult("data_drift", status, f"drift is {status.value}."),
            CheckResult("pipeline", Status.OK, "10 recent requests.", pipeline),
        ),
    )


def stored(db: Path, sql: str = "SELECT model, slot, status FROM health_history ORDER BY slot") -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


# -- Snapshot -------------------------------------------------------------------------------------


def test_a_snapshot_keeps_statuses_summaries_counts_and_stage_latencies() -> None:
    snapshot = Snapshot.of(report(Status.WARN))

    assert snapshot.ts == T0  # the report's generated_at
    assert snapshot.status is Status.WARN
    assert [(c.name, c.status, c.summary) for c in snapshot.checks] == [
        ("data_drift", Status.WARN, "drift is warn."),
        ("pipeline", Status.OK, "10 recent requests."),
    ]
    assert [(s.name, s.count, s.p50_ms, s.p95_ms, s.p99_ms) for s in snapshot.stages] == [
        ("predict", 10, 1.5, 2.5, 3.5),
        ("validate", 10, 0.2, 0.3, 0.4),
    ]
    assert (snapshot.window_rows, snapshot.requests, snapshot.rows, snapshot.rejected, snapshot.errors) == (100, 10, 200, 1, 0)


def test_a_snapshot_survives_its_json() -> None:
    snapshot = Snapshot.of(report(Status.ALERT), ts=T0 + 0.25)
    document = snapshot.to_json()

    assert document["ts"] == "2026-01-01T00:00:00.250+00:00"
    assert document["checks"]["data_drift"] == {"status": "alert", "summary": "drift is alert."}
    assert document["stages"]["predict"] == {"count": 10, "p50_ms": 1.5, "p95_ms": 2.5, "p99_ms": 3.5}
    assert Snapshot.from_json(json.loads(json.dumps(document))) == snapshot


def test_a_snapshot_without_detail_is_its_time_and_status() -> None:
    assert Snapshot.of(report(Status.WARN)).to_json(detail=False) == {"ts": "2026-01-01T00:00:00.000+00:00", "status": "warn"}


# -- History in memory ----------------------------------------------------------------------------


def test_one_snapshot_per_slot_the_first_wins() -> None:
    history = History("m", interval=60)

    kept = [
        history.record(report(Status.OK), ts=T0 + 1),
        history.record(report(Status.ALERT), ts=T0 + 59),  # same slot: ignored
        history.record(report(Status.WARN), ts=T0 + 60),
        history.record(report(Status.ALERT), ts=T0 + 200),
    ]

    assert kept == [True, False, True, True]
    assert [(s.ts, s.status) for s in history.read()] == [(T0 + 1, Status.OK), (T0 + 60, Status.WARN), (T0 + 200, Status.ALERT)]


def test_memory_history_is_bounded_and_reads_newest_since_oldest_first() -> None:
    history = History("m", interval=1, memory_keep=5)
    for k in range(12):
        history.record(report(requests=k), ts=T0 + k)

    assert [s.requests for s in history.read()] == [7, 8, 9, 10, 11]
    assert [s.requests for s in history.read(limit=2)] == [10, 11]
    assert [s.requests for s in history.read(since=T0 + 9)] == [9, 10, 11]
    assert history.read(since=T0 + 100) == []


# -- History in the store -------------------------------------------------------------------------


def test_store_history_is_read_back_as_written(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "h.db") as store:
        history = History("m", interval=10, store=store)
        history.record(report(Status.OK), ts=T0)
        history.record(report(Status.ALERT), ts=T0 + 10)

        fresh = History("m", interval=10, store=store)  # another process: nothing in its memory
        assert [(s.ts, s.status) for s in fresh.read()] == [(T0, Status.OK), (T0 + 10, Status.ALERT)]
        assert [s.ts for s in fresh.read(since=T0 + 5)] == [T0 + 10]
        assert fresh.read(limit=1)[0].checks[0].summary == "drift is alert."

    assert stored(tmp_path / "h.db") == [("m", int(T0 * 1000), "ok"), ("m", int((T0 + 10) * 1000), "alert")]


def test_two_monitors_sharing_one_store_write_one_snapshot_per_slot(tmp_path: Path) -> None:
    training = gaussian(300, 2, seed=0)
    db = tmp_path / "shared.db"
    first = Monitor(training, name="shared", db=db, history_interval=0.2).start()
    second = Monitor(training, name="shared", db=db, history_interval=0.2).start()
    try:

        def judged_five_slots() -> bool:  # both workers judge health as fast as they can
            first.health()
            second.health()
            return len(stored(db)) >= 5

        assert wait_for(judged_five_slots, timeout=60, interval=0)  # five 0.2 s slots, however loaded the machine
        slots = [slot for _, slot, _ in stored(db)]
        assert len(slots) == len(set(slots))
        assert [s.ts for s in first.history(limit=100)] == [s.ts for s in second.history(limit=100)]
        assert len(first.history(limit=100)) == len(slots)
    finally:
        first.close()
        second.close()


def test_store_history_keeps_the_newest_snapshots_per_model(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "h.db") as store:
        history = History("m", interval=1, store=store, keep=4)
        other = History("other", interval=1, store=store, keep=4)
        for k in range(10):
            history.record(report(requests=k), ts=T0 + k)
        other.record(report(), ts=T0)

        assert [s.requests for s in History("m", 1, store).read()] == [6, 7, 8, 9]
        assert len(History("other", 1, store).read()) == 1  # another model's history is its own

    assert len(stored(tmp_path / "h.db", "SELECT 1 FROM health_history WHERE model = 'm'")) == 4


def test_store_history_honours_max_age(tmp_path: Path) -> None:
    now = time.time()
    with SqliteStore(tmp_path / "h.db", StoreOptions(max_age=3600)) as store:
        history = History("m", interval=60, store=store)
        history.record(report(requests=1), ts=now - 7200)  # older than max_age: gone at the next write
        history.record(report(requests=2), ts=now - 60)
        history.record(report(requests=3), ts=now)

        assert [s.requests for s in History("m", 60, store).read()] == [2, 3]


def test_a_locked_store_holds_a_health_report_back_for_a_second_at_most(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "h.db") as store:
        history = History("m", interval=1, store=store)
        locker = sqlite3.connect(tmp_path / "h.db")
        locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            started = time.monotonic()
            with capture_logs() as logs:
                history.record(report(), ts=T0)
            assert time.monotonic() - started < 3
            assert [e["event"] for e in logs] == ["history_write_failed"]
        finally:
            locker.rollback()
            locker.close()
        assert history.record(report(), ts=T0 + 1)  # and the next slot is written again

        assert [s.ts for s in history.read()] == [T0 + 1]


def test_an_unreadable_store_falls_back_to_this_process_history(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "never-opened" / "h.db")  # not opened: the file does not exist
    history = History("m", interval=1, store=store)

    with capture_logs() as logs:
        assert history.record(report(Status.WARN), ts=T0)
        history.record(report(Status.OK), ts=T0 + 1)

    assert [s.status for s in history.read()] == [Status.WARN, Status.OK]
    assert [e["event"] for e in logs] == ["history_write_failed"]  # once per failure streak


# -- Monitor --------------------------------------------------------------------------------------


@pytest.fixture
def gaussian_300x3() -> np.ndarray:
    return gaussian(300, 3, seed=1)


def test_a_started_monitor_records_history_without_anyone_asking(gaussian_300x3: np.ndarray) -> None:
    before = set(threading.enumerate())
    monitor = Monitor(gaussian_300x3, name="periodic", history_interval=0.1).start()
    (evaluator,) = [t for t in set(threading.enumerate()) - before if t.name == "guarded-serving-health"]
    try:
        assert wait_for(lambda: len(monitor.history()) >= 3, timeout=10)
        snapshots = monitor.history()
        assert all(b.ts - a.ts >= 0.05 for a, b in itertools.pairwise(snapshots))
        assert [c.name for c in snapshots[-1].checks][:2] == ["data_drift", "prediction_drift"]
    finally:
        monitor.close()
    assert not evaluator.is_alive()


def test_a_monitor_nobody_closed_or_holds_stops_evaluating(gaussian_300x3: np.ndarray) -> None:
    before = set(threading.enumerate())
    Monitor(gaussian_300x3, history_interval=0.05).start()
    (evaluator,) = [t for t in set(threading.enumerate()) - before if t.name == "guarded-serving-health"]

    assert wait_for(lambda: not evaluator.is_alive(), timeout=10)


def test_the_periodic_evaluation_logs_a_status_change(gaussian_300x3: np.ndarray) -> None:
    monitor = Monitor(gaussian_300x3, name="transitions", history_interval=0.1)
    with capture_logs() as logs:
        monitor.start()
        try:
            assert wait_for(lambda: len(monitor.history()) >= 1, timeout=10)  # insufficient data, judged once
            monitor.observe(gaussian_300x3[:200] + 5, gaussian_300x3[:200].sum(axis=1))
            assert wait_for(lambda: any(e["event"] == "status_changed" for e in logs), timeout=10)
            # the change is logged as it is judged, and its snapshot is stored just after: wait for it too
            assert wait_for(lambda: monitor.history()[-1].status is Status.ALERT, timeout=10)
        finally:
            monitor.close()
    change = next(e for e in logs if e["event"] == "status_changed")
    assert (change["previous"], change["status"]) == ("insufficient_data", "alert")


def test_an_unstarted_monitor_records_the_reports_it_is_asked_for(gaussian_300x3: np.ndarray) -> None:
    monitor = Monitor(gaussian_300x3, history_interval=0.05)

    monitor.health()
    first_slot = int(time.time() / 0.05)
    # well into a later slot: a report stamped in the first millisecond of one (its time kept to the millisecond)
    # may fall in the slot before by the division's rounding, as the first report's did when this waited less
    later = (first_slot + 1) * 0.05 + 0.01
    assert wait_for(lambda: time.time() >= later, timeout=1.0, interval=0.005)
    monitor.health()

    assert len(monitor.history()) == 2


@pytest.mark.parametrize("value", [0, -1, "60", True, float("nan")], ids=repr)
def test_history_interval_must_be_a_positive_number(gaussian_300x3: np.ndarray, value: object) -> None:
    with pytest.raises(ConfigurationError, match="history_interval: expected a positive number of seconds"):
        Monitor(gaussian_300x3, history_interval=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"limit": 0}, "limit: expected a positive integer, got 0", id="limit"),
        pytest.param({"since": "yesterday"}, "since: expected epoch seconds or None", id="since"),
        pytest.param({"since": float("inf")}, "since: expected epoch seconds or None", id="since-inf"),
    ],
)
def test_history_arguments_are_checked(gaussian_300x3: np.ndarray, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Monitor(gaussian_300x3).history(**kwargs)  # type: ignore[arg-type]
