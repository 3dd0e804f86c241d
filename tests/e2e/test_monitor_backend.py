"""The bentoml.monitor backend: a service that logs with bentoml.monitor gets the guard's checks from configuration."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import Reference
from guarded_serving.errors import ConfigurationError
from guarded_serving.feed import MonitorFeed, Roles
from tests.fixtures.data import gaussian
from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for

FEATURES = ["a", "b", "c"]
TRAINING = gaussian(600, 3, seed=0)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reference = Reference.from_data(TRAINING, y=TRAINING.sum(axis=1), predictions=TRAINING.sum(axis=1), feature_names=FEATURES)
    return reference.save(tmp_path_factory.mktemp("reference") / "reference.json")


def columns(*specs: tuple[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"name": name, "role": role, "type": "numerical"} for name, role in specs}


# -- the core: roles and the feed -------------------------------------------------------------


def test_roles_put_feature_columns_in_the_references_order(reference_file: Path) -> None:
    schema = columns(("prediction", "prediction"), ("c", "feature"), ("a", "feature"), ("zip", "feature"), ("y", "target"))

    roles = Roles.of(schema, Reference.load(reference_file))

    assert roles == Roles(features=("a", None, "c"), predictions=("prediction",), target="y", ignored=("zip",))


def test_roles_refuse_feature_columns_the_reference_does_not_know(reference_file: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"bentoml.monitor feature columns: expected columns named as the reference's"):
        Roles.of(columns(("x", "feature")), Reference.load(reference_file))


@pytest.fixture
def feed(reference_file: Path) -> Iterator[MonitorFeed]:
    fed = MonitorFeed(reference_file, name="fed", db=":memory:", window=100)
    yield fed
    fed.close()


def test_a_feed_records_rows_outputs_and_labels_off_the_request_path(feed: MonitorFeed) -> None:
    feed.schema(columns(("a", "feature"), ("b", "feature"), ("c", "feature"), ("p", "prediction"), ("y", "target")))
    rows = gaussian(120, 3, seed=1)
    for i in range(0, 120, 4):
        part = rows[i : i + 4]
        data: dict[str, Any] = {"a": part[:, 0], "b": part[:, 1], "c": part[:, 2], "p": part.sum(axis=1), "y": part.sum(axis=1)}
        assert feed.put(data, f"req-{i}")

    assert feed.drain(10)
    monitor = feed.start()
    assert (monitor.totals().requests, monitor.totals().rows) == (30, 120)
    concept = monitor.health().check("concept_drift").details
    assert concept.labels_received == 120
    assert monitor.health().check("data_drift").status.value == "ok"


def test_a_record_that_does_not_fit_is_logged_and_the_feed_goes_on(feed: MonitorFeed) -> None:
    feed.schema(columns(("a", "feature"), ("b", "feature"), ("p", "prediction")))
    feed.put({"a": [1.0, 2.0], "b": [1.0], "p": [1.0, 2.0]}, "uneven")
    feed.put({"a": [1.0], "b": [1.0], "p": [2.0]}, "fine")

    assert feed.drain(10)
    assert feed.start().totals().requests == 1  # "c" is missing in "fine": recorded, with the feature missing


def test_a_full_feed_drops_and_counts(reference_file: Path) -> None:
    fed = MonitorFeed(reference_file, name="full", db=":memory:", capacity=1)
    fed.schema(columns(("a", "feature")))
    with fed._cond:  # the feed's thread cannot take a record while this holds its lock
        fed._pending.append(({"a": [1.0]}, None))
        assert not fed.put({"a": [1.0]}, "dropped")
    assert fed.dropped == 1
    fed.close()


def test_bentoml_monitor_in_process_feeds_one_row_per_record_of_scalars(reference_file: Path) -> None:
    import bentoml

    from guarded_serving.bentoml_monitor import GuardedMonitor, feed_for

    options = {"reference": str(reference_file), "db": ":memory:", "log_path": "monitoring"}  # BentoML's default: ignored
    for i in range(5):
        with bentoml.monitor("in-process", monitor_class=GuardedMonitor, monitor_options=options) as mon:
            for name, value in zip(FEATURES, TRAINING[i], strict=True):
                mon.log(float(value), name, "feature", "numerical")
            mon.log(float(TRAINING[i].sum()), "prediction", "prediction", "numerical")

    feed = feed_for("in-process")
    assert feed.drain(10)
    assert (feed.start().totals().requests, feed.start().totals().rows) == (5, 5)
    feed.close()


# -- end to end: bentoml serve of a service that logs with bentoml.monitor --------------------------


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory, reference_file: Path) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("monitored")
    server = start_server("tests.apps.monitored:Scorer", folder, env={"MONITORED_REFERENCE": str(reference_file)})
    yield server
    server.stop()


def score(server: Server, rows: np.ndarray, labels: list[float] | None = None) -> tuple[list[float], str]:
    payload: dict[str, Any] = {"rows": rows.tolist()}
    if labels is not None:
        payload["labels"] = labels
    answer = server.client.post("/score", json=payload)
    assert answer.status_code == 200, answer.text
    return answer.json(), answer.headers["x-bentoml-request-id"]


def test_served_health_judges_the_monitored_traffic_and_flags_drift(monitored: Server) -> None:
    rng = np.random.default_rng(7)
    assert monitored.client.get("/health/model").json()["status"] == "insufficient_data"

    for _ in range(25):
        rows = rng.normal(size=(10, 3))
        predictions, _ = score(monitored, rows, labels=rows.sum(axis=1).tolist())
        assert predictions == pytest.approx(rows.sum(axis=1).tolist())
    healthy = monitored.client.get("/health/model").json()
    assert healthy["checks"]["data_drift"]["status"] == "ok"
    assert healthy["checks"]["concept_drift"]["labels_received"] == 250

    for _ in range(25):
        rows = rng.normal(size=(10, 3))
        rows[:, 1] += 3.0
        score(monitored, rows)
    drifted = monitored.client.get("/health/model").json()
    drift = drifted["checks"]["data_drift"]
    assert drift["status"] == "alert"
    assert [name for name, f in drift["features"].items() if f["drifted"]] == ["b"]
    assert monitored.client.get("/health/model/history").status_code == 200


def test_each_record_is_keyed_by_bentomls_request_id_and_its_targets_are_labels(monitored: Server) -> None:
    rows = gaussian(3, 3, seed=8)
    _, request_id = score(monitored, rows, labels=[1.0, 2.0, 3.0])

    def stored() -> list[tuple[Any, ...]]:
        with sqlite3.connect(monitored.db) as conn:
            return list(conn.execute("SELECT row, label FROM feedback WHERE request_id = ? ORDER BY row", (request_id,)))

    assert wait_for(lambda: len(stored()) == 3)
    assert stored() == [(0, "1.0"), (1, "2.0"), (2, "3.0")]

    def logged() -> list[tuple[Any, ...]]:
        with sqlite3.connect(monitored.db) as conn:
            return list(conn.execute("SELECT status, rows FROM requests WHERE request_id = ?", (request_id,)))

    assert wait_for(lambda: logged() == [("ok", 3)])


def test_a_missing_reference_never_fails_the_services_own_answers_and_health_names_it(serve: Any, tmp_path: Path) -> None:
    server = serve("tests.apps.monitored:Scorer", env={"MONITORED_REFERENCE": str(tmp_path / "missing.json")})

    predictions, _ = score(server, np.ones((2, 3)))
    health = server.client.get("/health/model")

    assert predictions == [3.0, 3.0]
    assert health.status_code == 500
    assert health.json()["title"] == "Monitor unavailable"
    assert "missing.json" in health.json()["detail"]
