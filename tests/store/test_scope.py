"""One log file, several models and versions: each judges, counts and prunes only its own rows.

A file is shared by every service started in one directory (the default ``./guarded_serving.db``),
and by the versions of a model in a blue/green or canary rollout. Everything keyed by model is keyed
by (model, version): totals, the drift window, labels, warnings, health history, the saved reference,
and retention (``max_rows``, ``max_age``), which never touches another model's or version's rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import ConfigurationError, Monitor, Reference, Status
from guarded_serving.environment import WarningRecord
from guarded_serving.offline import offline_health
from guarded_serving.store import RequestRecord, StoreOptions
from guarded_serving.store.sqlite import SqliteStore

RNG = np.random.default_rng(21)
TRAINING = RNG.normal(size=(1000, 3))
SHIFTED = TRAINING + 5.0  # what version 2 was trained on


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, params))


def record(i: int, model: str = "m", version: str | None = None, ts: float | None = None, rows: int = 2) -> RequestRecord:
    return RequestRecord(
        f"{model}-{version}-{i}",
        time.time() if ts is None else ts,
        model,
        version,
        "ok",
        rows,
        1.0,
        {},
        inputs=[[float(i)]] * rows,
        outputs=[0.0] * rows,
    )


# -- retention -----------------------------------------------------------------------------------


def test_max_rows_of_one_model_never_deletes_another_models_rows(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with Monitor(TRAINING, name="pruned", db=db, max_rows=100) as pruned, Monitor(TRAINING, name="kept", db=db) as kept:
        kept.observe(TRAINING[:500], TRAINING[:500].sum(axis=1))
        for start in range(0, 300, 10):
            pruned.observe(TRAINING[start : start + 10], TRAINING[start : start + 10].sum(axis=1))
        assert kept.flush()
        assert pruned.flush()
        pruned.store.prune()  # type: ignore[union-attr]

    assert query(db, "SELECT model, sum(rows) FROM requests GROUP BY model ORDER BY model") == [("kept", 500), ("pruned", 100)]


def test_max_rows_of_one_version_never_deletes_another_versions_rows(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with SqliteStore(db, StoreOptions(max_rows=10)) as blue, SqliteStore(db) as green:
        for i in range(50):
            blue.put(record(i, version="blue"))
            green.put(record(i, version="green"))
        assert blue.flush()
        assert green.flush()
        blue.prune()

    kept = query(db, "SELECT version, sum(rows) FROM requests GROUP BY version ORDER BY version")
    assert kept == [("blue", 10), ("green", 100)]


def test_max_age_of_one_model_keeps_another_models_old_requests_and_labels(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    old = time.time() - 7200
    with SqliteStore(db, StoreOptions(max_age=3600)) as aged, SqliteStore(db) as other:
        aged.put(record(1, model="aged", ts=old))
        other.put(record(1, model="other", ts=old))
        assert aged.flush()
        assert other.flush()
        other.write_feedback("other", [("other-None-1", 0, "1")])
        with sqlite3.connect(db) as conn:  # a label given two hours ago
            conn.execute("UPDATE feedback SET ts = ?", (time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(old)),))
        aged.prune()

    assert query(db, "SELECT model FROM requests") == [("other",)]
    assert query(db, "SELECT model, request_id FROM feedback") == [("other", "other-None-1")]


def test_labels_of_pruned_requests_are_deleted_with_them(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with SqliteStore(db) as store:  # 30 requests of 2 rows, each labelled
        for i in range(30):
            store.put(record(i))
        assert store.flush()
        store.write_feedback("m", [(f"m-None-{i}", 0, "1") for i in range(30)])
    with SqliteStore(db, StoreOptions(max_rows=20)) as store:  # restarted with a limit: its first write prunes
        store.put(record(30))
        assert store.flush()
        store.prune()

    kept = {rid for (rid,) in query(db, "SELECT request_id FROM requests")}
    labelled = {rid for (rid,) in query(db, "SELECT request_id FROM feedback")}
    assert kept == {f"m-None-{i}" for i in range(21, 31)}
    assert labelled == kept - {"m-None-30"}


def test_warnings_are_bounded_to_the_most_recently_seen(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with SqliteStore(db) as store:
        for i in range(3000):  # a warning whose message changes with every request
            warning = WarningRecord("DeprecationWarning", f"call {i} is deprecated", "model.py:3", 1)
            store.put(RequestRecord(f"r{i}", 1_700_000_000.0 + i, "m", None, "ok", 1, 1.0, {}, warnings=(warning,)))
        assert store.flush()
        store.prune()
        newest = store.warnings("m", limit=5000)

    assert query(db, "SELECT count(*) FROM warnings") == [(1000,)]
    assert {w.message for w in newest} == {f"call {i} is deprecated" for i in range(2000, 3000)}


# -- judging and counting ------------------------------------------------------------------------


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A file where version 1 served 600 rows like its training data, and version 2 (trained on
    other data) has served nothing yet."""
    db = tmp_path / "canary.db"
    with Monitor(TRAINING, name="m", version="1", db=db, window=300) as v1:
        v1.observe(TRAINING[:600], TRAINING[:600].sum(axis=1))
        assert v1.flush()
    return db


def test_a_version_judges_only_its_own_traffic(canary: Path) -> None:
    with Monitor(SHIFTED, name="m", version="2", db=canary, window=300) as v2:
        report = v2.health()
        totals = v2.totals()

    assert report.status is Status.INSUFFICIENT_DATA  # version 1's rows are not version 2's window
    assert report.window_rows == 0
    assert (totals.requests, totals.rows) == (0, 0)


def test_two_versions_keep_their_own_totals_window_and_history(canary: Path) -> None:
    with Monitor(SHIFTED, name="m", version="2", db=canary, window=300, history_interval=3600) as v2:
        v2.observe(SHIFTED[:400], SHIFTED[:400].sum(axis=1))
        assert v2.flush()
        report = v2.health()
        history = v2.history()
    with Monitor(TRAINING, name="m", version="1", db=canary, window=300, history_interval=3600) as v1:
        again = v1.health()

    assert report.check("data_drift").status is Status.OK
    assert (report.requests, report.rows, report.window_rows) == (1, 400, 300)
    assert (again.requests, again.rows) == (1, 600)
    assert [s.rows for s in history] == [400]
    assert query(canary, "SELECT model, version, requests, rows FROM totals ORDER BY version") == [
        ("m", "1", 1, 600),
        ("m", "2", 1, 400),
    ]


def test_labels_join_only_their_own_versions_predictions(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with SqliteStore(db) as store:
        store.put(record(1, version="1"))
        store.put(record(1, version="2"))
        assert store.flush()
        store.write_feedback("m", [("m-1-1", 0, "0")], version="1")

        assert store.request_rows("m", ["m-1-1", "m-2-1"], version="1") == {"m-1-1": 2}
        assert len(store.labelled("m", 10, version="1").labels) == 1
        assert store.labelled("m", 10, version="2").labels == []
        assert store.label_totals("m", version="2") == (0, 0)


def test_the_offline_report_judges_the_version_asked_for_with_its_own_reference(canary: Path) -> None:
    with Monitor(SHIFTED, name="m", version="2", db=canary, window=300) as v2:  # saved last
        v2.observe(SHIFTED[:300], SHIFTED[:300].sum(axis=1))
        assert v2.flush()

    v1 = offline_health(canary, model="m", version="1")
    v2_report = offline_health(canary, model="m", version="2")

    assert (v1.report.model_version, v1.report.rows, v1.report.check("data_drift").status) == ("1", 600, Status.OK)
    assert (v2_report.report.model_version, v2_report.report.rows) == ("2", 300)
    assert v2_report.report.check("data_drift").status is Status.OK


def test_the_offline_report_asks_which_version_when_the_file_holds_several(canary: Path) -> None:
    with Monitor(SHIFTED, name="m", version="2", db=canary):
        pass

    with pytest.raises(ConfigurationError) as raised:
        offline_health(canary, model="m")

    assert raised.value.argument == "version"
    assert "'1'" in str(raised.value)
    assert "'2'" in str(raised.value)


def test_an_unversioned_model_is_judged_as_before(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with Monitor(TRAINING, name="plain", db=db, window=300) as monitor:
        monitor.observe(TRAINING[:300], TRAINING[:300].sum(axis=1))
        assert monitor.flush()

    offline = offline_health(db)

    assert (offline.report.model_version, offline.report.rows) == (None, 300)
    assert query(db, "SELECT model, version FROM requests") == [("plain", None)]
    assert Reference.from_json(json.loads(query(db, "SELECT reference FROM models")[0][0])) == monitor.reference


def test_an_empty_version_is_refused_because_it_would_be_the_unversioned_model() -> None:
    with pytest.raises(ConfigurationError, match="version: expected a non-empty string or None"):
        Monitor(TRAINING, version="")
