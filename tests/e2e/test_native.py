"""A class-based BentoML service gains the guard with one added line per API (guarded_serving.bento.guarded_api).

The service (tests/apps/iris_plain.py) loads a classifier trained here and saved, with its reference, in a
temporary BentoML home, and exposes two typed APIs: ``classify(data: np.ndarray) -> np.ndarray`` and
``score(flowers: list[Flower]) -> list[Score]``. tests/apps/iris_guarded.py is the same file plus one
``@guarded_api(model="iris:latest")`` line per API. Both are served with a real ``bentoml serve``.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.apps.iris_model import FEATURES
from tests.fixtures.data import iris
from tests.fixtures.servers import ROOT, Server, start_server
from tests.fixtures.waiting import wait_for

APPS = Path(__file__).parent.parent / "apps"
FLOWER = dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def save_iris_model(home: Path) -> str:
    """Train the classifier and save it (with its reference) in the model store of BentoML home ``home``."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.iris_model"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bentoml")
    save_iris_model(home)
    return home


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> Iterator[Server]:
    server = start_server(
        "tests.apps.iris_guarded:Iris", tmp_path_factory.mktemp("guarded"), env={"BENTOML_HOME": str(bentoml_home)}
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> Iterator[Server]:
    server = start_server("tests.apps.iris_plain:Iris", tmp_path_factory.mktemp("plain"), env={"BENTOML_HOME": str(bentoml_home)})
    yield server
    server.stop()


def health(server: Server, api: str | None = None) -> dict[str, Any]:
    answer = server.client.get("/health/model", params={"api": api} if api else {})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_guarded_service_is_the_plain_one_plus_one_line_per_api_and_its_import() -> None:
    plain = (APPS / "iris_plain.py").read_text().splitlines()[1:]  # the docstrings differ
    guarded = (APPS / "iris_guarded.py").read_text().splitlines()[1:]

    diff = list(difflib.unified_diff(plain, guarded, lineterm="", n=0))[2:]  # after the two file headers
    added = [line[1:].strip() for line in diff if line.startswith("+") and line[1:].strip()]
    removed = [line for line in diff if line.startswith("-")]

    assert removed == []
    line = '@guarded_api(model="iris:latest")'
    assert added == ["from guarded_serving.bento import guarded_api", line, line]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/classify", {"data": ROWS}),
        ("/classify", {"data": [ROWS[1]]}),
        ("/score", {"flowers": [dict(zip(FEATURES, row, strict=True)) for row in ROWS]}),
    ],
    ids=["classify-three-rows", "classify-one-row", "score-pydantic-rows"],
)
def test_good_requests_get_the_same_answers_as_from_the_plain_service(
    plain: Server, guarded: Server, route: str, body: Any
) -> None:
    expected = plain.client.post(route, json=body)
    answer = guarded.client.post(route, json=body)

    assert (
        (answer.status_code, answer.headers["content-type"])
        == (expected.status_code, expected.headers["content-type"])
        == (
            200,
            "application/json",
        )
    )
    assert answer.content == expected.content
    assert answer.headers["x-request-id"]


@pytest.mark.parametrize(
    ("route", "body", "status", "row", "feature", "expected"),
    [
        ("/classify", {"data": [ROWS[0], [5.0, "wide", 1.0, 0.1]]}, 422, 1, "sepal_width", "a number"),
        ("/classify", {"data": [[5.0, 3.0, 1.0]]}, 422, 0, None, "4 values in the order"),
        ("/score", {"flowers": [FLOWER, {**FLOWER, "petal_length": True}]}, 422, 1, "petal_length", "a number"),
        ("/score", {"flowers": [{k: v for k, v in FLOWER.items() if k != "sepal_length"}]}, 422, 0, "sepal_length", "every"),
        ("/classify", {"rows": ROWS}, 422, None, None, 'a JSON object with the single field "data"'),
    ],
    ids=["classify-a-string", "classify-a-short-row", "score-a-boolean", "score-a-missing-field", "classify-the-wrong-field"],
)
def test_bad_input_gets_the_guards_4xx_naming_row_feature_and_expected(
    guarded: Server, route: str, body: Any, status: int, row: int | None, feature: str | None, expected: str
) -> None:
    answer = guarded.client.post(route, json=body)

    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()["problems"][0]
    assert (problem.get("row"), problem.get("feature")) == (row, feature)
    assert expected in problem["expected"]


def test_a_string_in_an_array_is_a_500_from_the_plain_service_and_a_422_from_the_guarded_one(
    plain: Server, guarded: Server
) -> None:
    body = {"data": [[5.0, "wide", 1.0, 0.1]]}

    assert plain.client.post("/classify", json=body).status_code == 500
    assert guarded.client.post("/classify", json=body).status_code == 422


def test_the_openapi_of_each_api_is_the_plain_services(plain: Server, guarded: Server) -> None:
    plain_spec, guarded_spec = plain.client.get("/docs.json").json(), guarded.client.get("/docs.json").json()

    for route in ("/classify", "/score"):
        expected = plain_spec["paths"][route]["post"]
        assert guarded_spec["paths"][route]["post"]["requestBody"] == expected["requestBody"]
        assert guarded_spec["paths"][route]["post"]["responses"]["200"] == expected["responses"]["200"]
    assert {"/feedback", "/classify", "/score"} <= set(guarded_spec["paths"])


def test_health_judges_each_api_under_its_own_name(guarded: Server) -> None:
    assert guarded.client.post("/score", json={"flowers": [FLOWER] * 7}, headers={"X-Request-ID": "score-7"}).status_code == 200

    assert wait_for(lambda: health(guarded, "score")["totals"]["rows"] >= 7)
    both = health(guarded)
    assert set(both["apis"]) == {"classify", "score"}
    assert both["apis"]["score"]["model"]["name"] == "iris.score"
    assert both["apis"]["classify"]["model"]["name"] == "iris.classify"
    assert health(guarded, "classify")["model"]["name"] == "iris.classify"
    unknown = guarded.client.get("/health/model", params={"api": "nope"})
    assert unknown.status_code == 400
    assert unknown.json()["expected"] == "one of ['classify', 'score']"
    history = guarded.client.get("/health/model/history", params={"api": "score"})
    assert history.status_code == 200
    assert history.json()["model"]["name"] == "iris.score"


def test_labels_join_the_api_that_answered_the_request(guarded: Server) -> None:
    answer = guarded.client.post("/classify", json={"data": ROWS}, headers={"X-Request-ID": "labelled-3"})
    assert answer.json() == [0, 2, 1]

    accepted = guarded.client.post("/feedback", json={"request_id": "labelled-3", "labels": [0, 2, 2]})

    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"accepted": 3, "new": 3, "replaced": 0}
    # The reference has no performance: the labelled rows start the baseline collected from served traffic.
    assert "(3 of 2000 labelled rows)" in health(guarded, "classify")["checks"]["concept_drift"]["summary"]
    assert "no labels received yet" in health(guarded, "score")["checks"]["concept_drift"]["summary"]
    ghost = guarded.client.post("/feedback", json={"request_id": "ghost", "labels": [0]})
    assert ghost.status_code == 404


def test_drift_on_one_api_is_flagged_there_and_blamed_on_the_moved_feature(guarded: Server) -> None:
    rng = np.random.default_rng(11)
    X, _ = iris()
    for i in range(5):  # 1,000 rows: a full window, petal_length moved by +3 cm
        rows = X[rng.integers(0, len(X), 200)] + np.array([0.0, 0.0, 3.0, 0.0])
        answer = guarded.client.post("/classify", json={"data": rows.tolist()}, headers={"X-Request-ID": f"drift-{i}"})
        assert answer.status_code == 200

    assert wait_for(lambda: health(guarded, "classify")["window"]["rows"] == 1000, timeout=15)
    drift = health(guarded, "classify")["checks"]["data_drift"]
    assert drift["status"] == "alert"
    assert [name for name, f in drift["features"].items() if f["drifted"]] == ["petal_length"]
    assert health(guarded, "score")["checks"]["data_drift"]["status"] != "alert"
    assert health(guarded)["status"] == "alert"
