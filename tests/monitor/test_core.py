"""Monitor: the framework-free core, without BentoML."""

from __future__ import annotations

import json
import re
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils
from structlog.testing import capture_logs

from guarded_serving import ConfigurationError, Monitor, Reference, Status
from guarded_serving.store import RequestRecord
from tests.fixtures.data import gaussian


@pytest.fixture
def gaussian_300x4() -> np.ndarray:
    return gaussian(300, 4, seed=3)


def failed(request_id: str) -> RequestRecord:
    return RequestRecord(request_id, 0.0, "model", None, "error", 1, 2.0, {"predict": 2.0}, "predict", "ValueError: x")


def test_observe_returns_the_request_id_and_counts_rows(gaussian_300x4: np.ndarray) -> None:
    monitor = Monitor(gaussian_300x4)

    request_id = monitor.observe(gaussian_300x4[:5], gaussian_300x4[:5].sum(axis=1), request_id="batch-1")

    assert request_id == "batch-1"
    report = monitor.health()
    assert (report.requests, report.rows, report.rejected, report.errors) == (1, 5, 0, 0)
    assert report.window_rows == 5
    assert report.status is Status.INSUFFICIENT_DATA  # drift is judged from 100 rows on


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(lambda x: x[:3], id="array"),
        pytest.param(lambda x: x[:3].tolist(), id="lists"),
        pytest.param(lambda x: [dict(zip(["f0", "f1", "f2", "f3"], r, strict=True)) for r in x[:3].tolist()], id="dicts"),
    ],
)
def test_observe_accepts_arrays_lists_and_dicts(gaussian_300x4: np.ndarray, rows: object) -> None:
    monitor = Monitor(gaussian_300x4)

    monitor.observe(rows(gaussian_300x4), [0, 1, 0])  # type: ignore[operator]

    assert monitor.totals().rows == 3


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(np.array([[0.5, np.nan, -0.0, 1e300]]), [[0.5, None, -0.0, 1e300]], id="floats-with-a-gap"),
        pytest.param(np.array([[1, -2, 3, 2**40]]), [[1, -2, 3, 2**40]], id="integers"),
        pytest.param(np.array([0.25, 1.0, 2.0, 3.0]), [[0.25, 1.0, 2.0, 3.0]], id="one-row-as-a-vector"),
        pytest.param([[np.float32(0.5), np.int64(2), None, 1.5]], [[0.5, 2, None, 1.5]], id="numpy-scalars-in-lists"),
        pytest.param([(1.5, 2, 3.0, None)], [[1.5, 2, 3.0, None]], id="a-tuple"),
    ],
)
def test_observed_rows_are_stored_as_their_plain_json_values(
    gaussian_300x4: np.ndarray, tmp_path: Path, rows: object, expected: list[list[object]]
) -> None:
    with Monitor(gaussian_300x4, name="batch", db=tmp_path / "m.db") as monitor:
        monitor.observe(rows, [0])
        assert monitor.flush()
        window = monitor.window_data(memory=True).inputs

    (stored,) = [json.loads(r["inputs"]) for r in sqlite_utils.Database(tmp_path / "m.db")["requests"].rows]
    assert stored == expected
    assert [[type(v) for v in row] for row in stored] == [[type(v) for v in row] for row in expected]
    assert np.array_equal(window, np.array(expected, dtype=float), equal_nan=True)  # None: missing


def test_observe_refuses_predictions_that_do_not_match_the_rows(gaussian_300x4: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"predictions: expected one prediction per row \(3\), got '2 predictions'"):
        Monitor(gaussian_300x4).observe(gaussian_300x4[:3], [1, 2])


def test_observe_refuses_rows_of_the_wrong_width(gaussian_300x4: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"rows\[0\]: expected a list of 4 values"):
        Monitor(gaussian_300x4).observe([[1, 2]], [0])


def test_with_a_store_observed_rows_reach_the_database(gaussian_300x4: np.ndarray, tmp_path: Path) -> None:
    with Monitor(gaussian_300x4, name="batch", db=tmp_path / "m.db") as monitor:
        monitor.observe(gaussian_300x4[:4], [1, 0, 1, 0])
        assert monitor.flush()
        report = monitor.health()

    assert (report.requests, report.rows) == (1, 4)
    assert report.check("store").summary == "4 rows written, 0 pending, none dropped."


def test_a_monitor_never_started_starts_on_its_first_rows_and_loses_none(gaussian_300x4: np.ndarray, tmp_path: Path) -> None:
    monitor = Monitor(gaussian_300x4, name="batch", db=tmp_path / "m.db")  # no `with`, no start()
    request_id = monitor.observe(gaussian_300x4[:4], [1, 0, 1, 0])
    labelled = monitor.feedback(request_id, [1, 0, 0, 0])  # refused before: the file did not exist yet
    monitor.close()

    assert labelled.accepted == 4
    with Monitor(gaussian_300x4, name="batch", db=tmp_path / "m.db") as reopened:
        report = reopened.health()
        assert reopened.store is not None
        assert reopened.store.label_totals("batch")[0] == 4
    assert (report.requests, report.rows) == (1, 4)  # before: nothing was ever written


def test_start_runs_once(gaussian_300x4: np.ndarray, tmp_path: Path) -> None:
    monitor = Monitor(gaussian_300x4, name="batch", db=tmp_path / "m.db")
    try:
        assert monitor.start() is monitor.start()
        monitor.observe(gaussian_300x4[:2], [1, 0])
        assert monitor.flush()
        assert monitor.totals().requests == 1
    finally:
        monitor.close()


def test_errors_turn_the_pipeline_check_to_alert_and_log_the_transition(gaussian_300x4: np.ndarray) -> None:
    monitor = Monitor(gaussian_300x4, window=100)
    monitor.observe(gaussian_300x4[:100], [0] * 100)
    assert monitor.health().status is Status.OK

    for i in range(3):
        monitor.record(failed(f"e{i}"))
    with capture_logs() as logs:
        report = monitor.health()

    assert report.status is Status.ALERT
    assert report.check("pipeline").summary == "3 of the last 4 requests failed (75.0%), in stage 'predict'."
    assert report.check("data_drift").status is Status.OK
    assert [e["event"] for e in logs] == ["status_changed"]
    assert logs[0]["previous"] == "ok"
    assert logs[0]["status"] == "alert"


def test_health_does_not_change_what_it_reports(gaussian_300x4: np.ndarray) -> None:
    monitor = Monitor(gaussian_300x4)
    monitor.observe(gaussian_300x4[:2], [0, 1])

    first = monitor.health().to_json()
    second = monitor.health().to_json()

    first.pop("generated_at")
    second.pop("generated_at")
    assert first == second


def test_state_stays_bounded_over_many_requests(gaussian_300x4: np.ndarray) -> None:
    monitor = Monitor(gaussian_300x4, recent_requests=500)
    record = RequestRecord("r", 0.0, "model", None, "ok", 1, 1.0, {"validate": 0.1, "predict": 0.5})
    for _ in range(5_000):
        monitor.record(record)
    # The first record started the monitor, and with it the calibrations in the background: wait for them,
    # so that their (one-off, bounded) thresholds are not counted as growth of the per-request state.
    monitor.calibration()
    monitor.joint_baseline()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(100_000):
        monitor.record(record)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    assert monitor.totals().requests == 105_000
    assert monitor.health().check("pipeline").details.requests == 500
    assert grown < 64 * 1024


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"window": 0}, "window: expected a positive integer, got 0", id="window"),
        pytest.param({"name": ""}, "name: expected a non-empty string", id="name"),
        pytest.param({"version": 3}, "version: expected a non-empty string or None, got 3", id="version"),
        pytest.param({"flush_interval": -1}, "flush_interval: expected a positive number of seconds", id="flush"),
        pytest.param(
            {"db": 5},
            "db: expected a SQLite file path or a sqlite:///path URL, or a postgresql:// URL, or None (or ':memory:')"
            " for no store, or a Store, got 5",
            id="db",
        ),
        pytest.param(
            {"db": " "},
            "db: expected a SQLite file path or a sqlite:///path URL, or a postgresql:// URL, or None (or ':memory:')"
            " for no store",
            id="blank-db",
        ),
    ],
)
def test_bad_configuration_names_the_argument(gaussian_300x4: np.ndarray, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Monitor(gaussian_300x4, **kwargs)  # type: ignore[arg-type]


def test_health_listeners_get_every_report_and_cannot_fail_it() -> None:
    rng = np.random.default_rng(5)
    monitor = Monitor(rng.normal(size=(300, 3)), name="listened")
    seen: list[str] = []
    monitor.subscribe(lambda report: seen.append(report.status.value))

    def broken(report: object) -> None:
        raise RuntimeError("exporter down")

    monitor.subscribe(broken)
    first = monitor.health()
    second = monitor.health()
    assert seen == [first.status.value, second.status.value]


@pytest.mark.parametrize("db", [None, ":memory:", Path(":memory:")], ids=["none", "memory", "memory-path"])
def test_every_spelling_of_no_store_keeps_everything_in_memory(
    gaussian_300x4: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: object
) -> None:
    monkeypatch.chdir(tmp_path)
    with Monitor(gaussian_300x4, db=db) as monitor:  # type: ignore[arg-type]
        monitor.observe(gaussian_300x4[:5], gaussian_300x4[:5].sum(axis=1))
        store = monitor.health().check("store")

    assert monitor.store is None
    assert store.status is Status.OK
    assert list(tmp_path.iterdir()) == []


def test_a_health_check_of_a_short_window_does_not_wait_for_the_calibration() -> None:
    """Right after start the thresholds and the joint check's null spread are still being computed (~2 s at
    64 features); a window holding fewer rows than drift is judged from does not need them, so a health check
    then answers without waiting, and says what it says once they are there."""
    reference = gaussian(2000, 6, seed=5)
    monitor = Monitor(Reference.from_data(reference, predictions=(reference[:, 0] > 0).astype(int)), window=500)
    evaluator = monitor._evaluator
    answered: list[dict[str, object]] = []
    # as while the start-up threads (started by the first rows) compute the thresholds and the joint null spread
    with evaluator._calibration_lock, evaluator._joint_lock:
        monitor.observe(reference[:20], (reference[:20, 0] > 0).astype(int))
        asking = threading.Thread(target=lambda: answered.append(monitor.health().to_json()), daemon=True)
        asking.start()
        asking.join(timeout=60)
        waited = asking.is_alive()
    asking.join()
    assert not waited, "the health check waited for the calibration"
    assert evaluator._calibrations is None  # answered without them
    assert evaluator._joint is None
    monitor.calibration()
    monitor.joint_baseline()
    again = monitor.health().to_json()
    checks = answered[0]["checks"]
    assert isinstance(checks, dict)
    assert checks["joint_drift"]["pairs"] == 15  # 6 features related in pairs
    for name in ("data_drift", "prediction_drift", "joint_drift"):
        assert checks[name]["status"] == "insufficient_data"
        assert checks[name] == again["checks"][name]  # type: ignore[index]
    monitor.observe(reference[20:520], (reference[20:520, 0] > 0).astype(int))  # a full window is judged with the real thresholds
    assert monitor.health().check("data_drift").status is Status.OK
