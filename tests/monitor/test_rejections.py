"""Rejected requests in the health report: counted by data quality while the rows served around them are in the
window, and kept out of the question whether served rows may become a baseline (they never reached the window)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from guarded_serving import guard
from guarded_serving.health import HealthReport, Status
from guarded_serving.testing import TestClient

RNG = np.random.default_rng(3)
X = RNG.normal(size=(3_000, 4))
Y = (X[:, 0] + X[:, 1] * X[:, 2] + RNG.normal(scale=0.5, size=len(X)) > 0).astype(int)


@pytest.fixture(scope="module")
def forest() -> Any:
    return RandomForestClassifier(n_estimators=20, random_state=0).fit(X[:1_000], Y[:1_000])


@pytest.fixture(params=["memory", "sqlite-file"])
def client(request: pytest.FixtureRequest, forest: Any, tmp_path: Path) -> Iterator[TestClient]:
    """The README's one-liner on a random forest, a window of 500 rows, in memory or with a store; nulls refused
    (the forest would take them)."""
    db = str(tmp_path / "log.db") if request.param == "sqlite-file" else ":memory:"
    with TestClient(guard(forest.predict_proba, reference=X[:1_000], db=db, window=500, allow_missing=False)) as client:
        yield client


def serve(client: TestClient, start: int, stop: int, labelled: bool = False) -> None:
    """Rows ``start..stop-1`` of the held-out stream, 100 a request."""
    for at in range(start, stop, 100):
        answer = client.predict(X[at : at + 100].tolist())
        assert answer.status == 200, answer.text
        if labelled:
            assert client.feedback(answer.json()["request_id"], Y[at : at + 100].tolist()).status == 200


def reject(client: TestClient) -> None:
    """One request with a string where feature f2's number belongs, one with a null in f1, and one with a number
    in f3 far beyond the reference's (a unit error upstream: 10^12)."""
    wrong = client.predict([X[0].tolist(), [*X[1, :2].tolist(), "abc", float(X[1, 3])]])
    assert wrong.status == 422, wrong.text
    assert json.loads(wrong.body)["problems"][0]["feature"] == "f2"
    null = client.predict([[float(X[2, 0]), None, *X[2, 2:].tolist()]])
    assert null.status == 422, null.text
    beyond = client.predict([X[3].tolist()] * 50 + [[*X[4, :3].tolist(), 1e12]])  # wide: the numeric fast path
    assert beyond.status == 422, beyond.text
    assert json.loads(beyond.body)["problems"][0]["feature"] == "f3"


def health(client: TestClient) -> HealthReport:
    monitor = client.model.monitor
    assert monitor is not None
    monitor.flush()
    return monitor.health()


def test_a_rejected_request_counts_while_the_rows_served_around_it_are_in_the_window(client: TestClient) -> None:
    serve(client, 1_000, 1_300)
    reject(client)
    serve(client, 1_300, 1_700)  # the window (500 rows) still holds 200 rows served before the bad requests

    quality = health(client).check("data_quality")

    assert quality.status is Status.WARN, quality.summary
    features = quality.details.features
    assert (features["f2"].type_errors, features["f1"].refused_missing, features["f3"].refused_range) == (1, 1, 1)
    assert features["f2"].problems == ("1 value of the wrong type",)
    assert features["f3"].problems == ("1 request refused for a number far beyond the reference's",)


def test_a_rejected_request_older_than_the_window_s_oldest_row_no_longer_counts(client: TestClient) -> None:
    serve(client, 1_000, 1_300)
    reject(client)
    serve(client, 1_300, 1_800)  # 500 rows since: the window holds none served before the bad requests

    quality = health(client).check("data_quality")

    assert quality.status is Status.OK, quality.summary  # before: a warning for the next 1,000 requests
    features = quality.details.features
    assert (features["f2"].type_errors, features["f1"].refused_missing, features["f3"].refused_range) == (0, 0, 0)


def test_rejected_requests_in_the_window_do_not_keep_served_baselines_from_being_adopted(client: TestClient) -> None:
    serve(client, 1_000, 2_900, labelled=True)
    reject(client)  # among the newest rows when the collection is full
    serve(client, 2_900, 3_000, labelled=True)

    report = health(client)

    quality = report.check("data_quality")
    assert quality.status is Status.WARN, quality.summary
    assert "f2: 1 value of the wrong type" in quality.summary
    assert report.check("data_drift").status is Status.OK, report.check("data_drift").summary
    for name in ("prediction_drift", "concept_drift"):  # before: "waiting for ... inputs that pass the data checks"
        check = report.check(name)
        assert check.status is Status.OK, check.summary
        assert check.details.baseline.source == "served traffic", check.summary
