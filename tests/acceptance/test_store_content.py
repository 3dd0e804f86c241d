"""No content of the log store makes a health answer fail.

Labels that join predictions without stored outputs (sampled out, a reused request id), and rows that
were corrupted by hand, by another program or by a half-written disk (wrong types, NULLs, truncated JSON
and blobs), in every table: `/health/model` (JSON and HTML), the history, `guarded-serving report` and
`tail` still answer, judging what can be read.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.cli import main
from guarded_serving.concept import ConceptDetails
from guarded_serving.dashboard import render_dashboard
from guarded_serving.health import HealthReport, Status
from guarded_serving.offline import offline_health
from tests.fixtures.data import gaussian, logistic_probabilities
from tests.fixtures.waiting import wait_for


@pytest.fixture
def gaussian_400x3() -> np.ndarray:
    return gaussian(400, 3, seed=8)


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def concept(report: HealthReport) -> ConceptDetails:
    details = report.check("concept_drift").details
    assert isinstance(details, ConceptDetails)
    return details


# -- labels joining predictions without stored outputs (defect 1) ----------------------------------------------------


def test_a_label_for_a_sampled_out_request_leaves_health_answering(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    with Monitor(logistic_reference_500, db=db, sample_rate=0.1) as monitor:
        ids = [monitor.observe(gaussian_400x3[i : i + 1], logistic_probabilities(gaussian_400x3[i : i + 1])) for i in range(60)]
        monitor.flush()
        unlogged = {rid for (rid,) in query(db, "SELECT request_id FROM requests WHERE outputs IS NULL")}
        logged = [rid for rid in ids if rid not in unlogged]
        sampled_out = next(rid for rid in ids if rid in unlogged)

        accepted = monitor.feedback(sampled_out, [1])
        monitor.feedback(logged[0], [1])
        report = monitor.health()

    assert accepted.accepted == 1
    assert (concept(report).labels_received, concept(report).labelled_rows) == (2, 1)  # the sampled-out label is not judged
    assert report.check("store").status is Status.OK


def test_the_periodic_evaluator_keeps_its_history_after_a_label_for_an_unlogged_prediction(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    with Monitor(logistic_reference_500, db=db, window=200, sample_rate=0.1, history_interval=0.2) as monitor:
        ids = [monitor.observe(gaussian_400x3[i : i + 1], logistic_probabilities(gaussian_400x3[i : i + 1])) for i in range(60)]
        monitor.flush()
        unlogged = {rid for (rid,) in query(db, "SELECT request_id FROM requests WHERE outputs IS NULL")}
        monitor.feedback(next(rid for rid in ids if rid in unlogged), [1])
        slots = len(monitor.history())

        assert wait_for(lambda: len(monitor.history()) >= slots + 3)  # a snapshot every 0.2 s, by itself


def test_a_reused_request_id_joins_its_labels_to_the_newest_request_only(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path
) -> None:
    with Monitor(logistic_reference_500, db=tmp_path / "log.db") as monitor:
        monitor.observe(gaussian_400x3[:1], logistic_probabilities(gaussian_400x3[:1]), request_id="client-id")
        monitor.observe(gaussian_400x3[1:4], logistic_probabilities(gaussian_400x3[1:4]), request_id="client-id")
        monitor.flush()

        monitor.feedback_items([("client-id", 2, 1)])
        report = monitor.health()

    assert concept(report).labelled_rows == 1
    assert report.check("store").status is Status.OK


def test_a_label_for_a_reused_request_id_of_equal_rows_is_counted_once(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path
) -> None:
    with Monitor(logistic_reference_500, db=tmp_path / "log.db") as monitor:
        monitor.observe(gaussian_400x3[:3], logistic_probabilities(gaussian_400x3[:3]), request_id="client-id")
        monitor.observe(gaussian_400x3[3:6], logistic_probabilities(gaussian_400x3[3:6]), request_id="client-id")
        monitor.flush()

        monitor.feedback("client-id", [0, 1, 0])
        details = concept(monitor.health())

    assert (details.labels_received, details.labelled_rows) == (3, 3)


def test_feedback_checks_rows_against_the_newest_request_with_that_id(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    with Monitor(logistic_reference_500, db=db) as monitor:
        monitor.observe(gaussian_400x3[:3], logistic_probabilities(gaussian_400x3[:3]), request_id="client-id")
        monitor.observe(gaussian_400x3[3:4], logistic_probabilities(gaussian_400x3[3:4]), request_id="client-id")
        monitor.flush()
    with Monitor(logistic_reference_500, db=db) as fresh:  # another worker: it knows the requests from the store only
        assert fresh.feedback("client-id", [1]).accepted == 1


# -- corrupted content, table by table (the property) -----------------------------------------------------------------


def build_store(reference: Reference, rows: np.ndarray, db: Path) -> list[str]:
    """A store as a service leaves it: requests, labels, a window, warnings, a saved model and a history."""
    with Monitor(reference, name="m", db=db, window=200) as monitor:
        ids = []
        for start in range(0, 400, 20):  # one window chunk per request
            ids.append(monitor.observe(rows[start : start + 20], logistic_probabilities(rows[start : start + 20])))
            monitor.flush()
        for rid, start in zip(ids, range(0, 400, 20), strict=True):
            monitor.feedback(rid, (logistic_probabilities(rows[start : start + 20])[:, 1] > 0.5).astype(int).tolist())
        monitor.health()
        monitor.flush()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO warnings VALUES ('m', '', 'DeprecationWarning', 'old call', 'model.py:3', 2,"
            " '2026-01-01T00:00:00.000+00:00', '2026-01-01T00:00:00.000+00:00')"
        )
    return ids


WINDOW_COPY = "INSERT INTO window (model, version, rows, inputs, outputs, meta) SELECT model, version, "

# A feedback row put in by hand (the columns named: a schema adds columns)
LABEL_ROW = "INSERT INTO feedback (model, version, request_id, row, label, ts, updates) VALUES "

# Each corruption is SQL run on a store built by build_store; {rid} is the first request id, {last} the last one.
CORRUPTIONS: dict[str, list[str]] = {
    "requests-odd-row": [
        "INSERT INTO requests (request_id, ts, model, status, rows, latency_ms, stages, failed_stage, error, problem_features,"
        " worker, inputs, outputs) VALUES ('odd', 'not a time', 'm', 'weird', 'many', 'slow', '{\"validate\": \"x\"',"
        " 42, X'00ff', '[1,', 'w', '[[1', '{\"a\": 1}')"
    ],
    "requests-null-columns": [
        "UPDATE requests SET latency_ms = NULL, stages = NULL, failed_stage = NULL, problem_features = NULL, worker = NULL"
        " WHERE request_id = '{last}'"
    ],
    "requests-wrong-json-shapes": [
        "UPDATE requests SET stages = '[1, 2]', problem_features = '5', outputs = '7' WHERE request_id = '{last}'",
        "UPDATE requests SET stages = '{\"predict\": [1]}', problem_features = '{\"a\": 1}', outputs = '{\"x\": 1}'"
        " WHERE request_id = '{rid}'",
    ],
    "requests-truncated-outputs": ["UPDATE requests SET outputs = substr(outputs, 1, 7), ts = 12345 WHERE request_id = '{last}'"],
    "requests-blob-outputs": ["UPDATE requests SET outputs = X'5b312c32', inputs = X'00' WHERE request_id = '{last}'"],
    "requests-negative-and-huge-rows": [
        "UPDATE requests SET rows = -5 WHERE request_id = '{rid}'",
        "UPDATE requests SET rows = 1e30, latency_ms = 'NaN' WHERE request_id = '{last}'",
    ],
    "feedback-odd-rows": [
        LABEL_ROW + "('m', '', '{last}', 'abc', '[1', 'yesterday', 'x')",
        LABEL_ROW + "('m', '', '{last}', NULL, NULL, NULL, NULL)",
        LABEL_ROW + "('m', '', '{last}', 99, '1', '2026-01-01T00:00:00+00:00', 0)",
        LABEL_ROW + "('m', '', '{rid}', -1, '{\"a\": 2}', 17, 0)",
        "UPDATE feedback SET label = '\"seven\"' WHERE request_id = '{rid}' AND row = 3",
        "UPDATE feedback SET label = 'null', ts = X'00' WHERE request_id = '{rid}' AND row = 4",
    ],
    "totals-wrong-types": [
        "UPDATE totals SET requests = 'many', rows = NULL, rejected = X'01', errors = 2.5, labels = 'x', relabels = X'02'"
    ],
    "totals-odd-model": ["INSERT INTO totals (model, version, requests, rows, rejected, errors) VALUES (7, X'00', 1, 1, 0, 0)"],
    "window-truncated-blobs": [
        "UPDATE window SET inputs = substr(inputs, 1, 13) WHERE id = (SELECT max(id) FROM window)",
        "UPDATE window SET outputs = X'0102' WHERE id = (SELECT min(id) FROM window)",
    ],
    "window-odd-meta": [
        WINDOW_COPY + "rows, inputs, outputs, '{' FROM window LIMIT 1",
        WINDOW_COPY + "'x', inputs, outputs, meta FROM window LIMIT 1",
        WINDOW_COPY + 'rows, \'text\', NULL, \'{"width": "3", "unseen": [1], "type_errors": {"a": "b"}}\' FROM window LIMIT 1',
        WINDOW_COPY + "-4, inputs, outputs, 'null' FROM window LIMIT 1",
        WINDOW_COPY + "0, X'', NULL, '{\"width\": 0}' FROM window LIMIT 1",
    ],
    "window-non-finite-values": [
        "INSERT INTO window (model, version, rows, inputs, outputs, meta) VALUES ('m', '', 1,"
        " X'000000000000F07F000000000000F0FF000000000000F87F', X'000000000000F07F000000000000F87F',"
        ' \'{"width": 3, "output_width": 2, "unseen": {"0": {"x": -3}}, "type_errors": {"9": 4}}\')'
    ],
    "warnings-odd-rows": [
        "INSERT INTO warnings VALUES ('m', '', NULL, NULL, 7, 'many', NULL, X'00')",
        "INSERT INTO warnings VALUES ('m', '', 'FutureWarning', X'ff00', NULL, NULL, 'x', 'y')",
    ],
    "history-odd-snapshots": [
        "INSERT INTO health_history VALUES ('m', '', 1, '2026-01-01T00:00:00.000+00:00', 'ok', '{\"ts\": ', 1)",
        "INSERT INTO health_history VALUES ('m', '', 2, '2026-01-01T00:01:00.000+00:00', 'bogus', '{}', 1)",
        "INSERT INTO health_history VALUES ('m', '', 3, '2026-01-01T00:02:00.000+00:00', 'ok',"
        ' \'{"ts": "yesterday", "status": "bogus", "checks": [1], "totals": {"rows": "x"}, "stages": [2]}\', 1)',
        "INSERT INTO health_history VALUES ('m', '', 4, '2026-01-01T00:03:00.000+00:00', 'ok',"
        ' \'{"ts": 1767225780, "status": "warn", "checks": {"x": {"status": "nope"}, "y": 3},'
        ' "window_rows": "many", "stages": {"predict": {"count": "x", "p50_ms": "y"}}}\', 1)',
        "INSERT INTO health_history VALUES ('m', '', 5, X'00', 7, '[1, 2]', NULL)",
        "INSERT INTO health_history VALUES ('m', '', 6, '2026-01-01T00:05:00.000+00:00', 'ok', X'7b2274', NULL)",
    ],
    "models-odd-settings": ['UPDATE models SET settings = \'{"window": "big", "methods": [1], "redact": 5, "thresholds": 3\''],
    "models-settings-of-wrong-types": [
        'UPDATE models SET settings = \'{"window": -3, "recent_requests": "x", "methods": {"a": "nope"},'
        ' "redact": ["zzz", 4], "report_values": "yes", "thresholds": {"bogus": 1}}\''
    ],
}


def corrupt(db: Path, statements: list[str], ids: list[str]) -> None:
    with sqlite3.connect(db) as conn:
        for sql in statements:
            conn.execute(sql.replace("{rid}", ids[0]).replace("{last}", ids[-1]))


def ask_everything(reference: Reference, db: Path, capsys: pytest.CaptureFixture[str]) -> HealthReport:
    """Every health answer a service and its command line give over this file; returns the live report."""
    offline = offline_health(db)  # first: a live monitor saves its model's settings again
    json.dumps(offline.to_json(), allow_nan=False)
    for options in ([], ["--json"], ["--since", "1d"]):
        assert main(["report", "--db", str(db), *options]) == 0, capsys.readouterr()
    assert main(["report", "--db", str(db), "--html", str(db.parent / "report.html")]) == 0
    assert main(["tail", "--db", str(db), "-n", "50"]) == 0
    assert main(["tail", "--db", str(db), "-n", "50", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    with Monitor(reference, name="m", db=db, window=200) as monitor:
        report = monitor.health()
        json.dumps(report.to_json(detail=True), allow_nan=False)
        history = monitor.history()
        json.dumps([s.to_json() for s in history], allow_nan=False)
        assert "<html" in render_dashboard(report, monitor.histograms(), history)
    return report


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_no_corrupted_table_makes_a_health_answer_fail(
    corruption: str,
    logistic_reference_500: Reference,
    gaussian_400x3: np.ndarray,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "log.db"
    ids = build_store(logistic_reference_500, gaussian_400x3, db)
    corrupt(db, CORRUPTIONS[corruption], ids)

    report = ask_everything(logistic_reference_500, db, capsys)

    store = report.check("store")
    assert store.status is Status.OK, store.summary  # the readable rows were judged: no fallback to memory
    assert report.check("data_drift").status is not Status.INSUFFICIENT_DATA  # the intact window chunks still count


def test_every_corruption_at_once_leaves_every_health_answer_working(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "log.db"
    ids = build_store(logistic_reference_500, gaussian_400x3, db)
    corrupt(db, [sql for statements in CORRUPTIONS.values() for sql in statements], ids)

    report = ask_everything(logistic_reference_500, db, capsys)

    details = concept(report)
    assert (details.labelled_rows, details.current is not None) == (200, True)  # labels on intact rows are still judged


def test_a_judgement_the_store_content_still_fails_falls_back_to_this_workers_own_traffic(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Monitor(logistic_reference_500, name="m", db=tmp_path / "log.db", window=200) as monitor:
        monitor.observe(gaussian_400x3[:150], logistic_probabilities(gaussian_400x3[:150]))
        monitor.flush()
        assert monitor.store is not None

        def unusable(model: str, **_: Any) -> Any:
            raise RuntimeError("content no reader foresaw")

        monkeypatch.setattr(monitor.store, "totals", unusable)
        report = monitor.health()

    store = report.check("store")
    assert (store.status, report.requests, report.window_rows) == (Status.ALERT, 1, 150)
    assert store.summary.startswith("The log store's content could not be judged (RuntimeError)")


def test_an_unreadable_saved_reference_is_a_clean_report_error(
    logistic_reference_500: Reference, gaussian_400x3: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "log.db"
    build_store(logistic_reference_500, gaussian_400x3, db)
    query(db, "UPDATE models SET reference = substr(reference, 1, 100)")
    reference_file = tmp_path / "reference.json"
    logistic_reference_500.save(reference_file)

    code = main(["report", "--db", str(db)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--reference: expected a reference file for model 'm': the saved reference of model 'm'" in err
    assert "Traceback" not in err
    assert main(["report", "--db", str(db), "--reference", str(reference_file)]) == 0


# -- over HTTP ---------------------------------------------------------------------------------------------------------
