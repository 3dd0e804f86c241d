"""Every example runs: trained, served for real, and queried."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.servers import BENTOML, ROOT, Server

IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def trained() -> None:
    """Train the classifier and regressor examples (writes model.pkl and reference.json beside them)."""
    for script in ("examples/classifier/train.py", "examples/regressor/train.py"):
        result = subprocess.run([sys.executable, script], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "saved" in result.stdout


def test_classifier_times_each_pipeline_step(trained: None, serve: Callable[..., Server]) -> None:
    server = serve("examples.classifier.service:svc")

    response = server.client.post("/predict", json={"rows": [IRIS_ROW]})

    assert response.status_code == 200
    [probabilities] = response.json()["predictions"]
    assert probabilities[0] > 0.9
    assert sum(probabilities) == pytest.approx(1.0)
    stages = server.client.get("/health/model").json()["checks"]["pipeline"]["stages"]
    assert {"validate", "predict", "scale", "classify", "serialize", "log"} <= set(stages)


def test_classifier_serves_unchanged_from_its_own_folder(trained: None, serve: Callable[..., Server]) -> None:
    server = serve("service:svc", cwd=ROOT / "examples" / "classifier")

    assert server.client.post("/predict", json={"rows": IRIS_ROW}).status_code == 200


def test_regressor_serves_with_two_workers(trained: None, serve: Callable[..., Server]) -> None:
    server = serve("examples.regressor.service:svc")

    response = server.client.post("/predict", json={"rows": [[0.0] * 10, [0.05] * 10]})

    assert response.status_code == 200
    low, high = response.json()["predictions"]
    assert isinstance(low, float)
    assert high != low
    assert server.client.get("/health/model").json()["model"]["name"] == "diabetes"


def test_numpy_function_records_user_stages(serve: Callable[..., Server]) -> None:
    server = serve("examples.numpy_function.service:score")

    response = server.client.post("/predict", json={"rows": [{"a": 0.0, "b": 10.0, "c": -1.0}]})

    assert response.json()["predictions"] == [pytest.approx(0.0, abs=0.1)]
    stages = server.client.get("/health/model").json()["checks"]["pipeline"]["stages"]
    assert {"standardise", "weigh"} <= set(stages)


def test_traffic_script_shows_rejections_in_the_report(trained: None, serve: Callable[..., Server]) -> None:
    server = serve("examples.classifier.service:svc")

    result = subprocess.run(
        [sys.executable, "examples/traffic.py", "--url", server.url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sent 150 normal rows" in out
    assert "a string for a number: 422 row 0, feature 'sepal_width': got \"wide\"; expected a number" in out
    assert "a NaN literal: 422 row 0, feature 'sepal_length': NaN is not allowed" in out
    assert '"rejected": 5' in out
    assert "sent 300 drifted rows" in out
    assert "data_drift: alert: 1 of 4 features drifted: petal_length: mean +" in out


def test_bentofile_builds_a_bento_that_serves(trained: None, serve: Callable[..., Server], tmp_path: Path) -> None:
    env = {"BENTOML_HOME": str(tmp_path / "bentoml-home")}
    build = subprocess.run(
        [BENTOML, "build"], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, **env}
    )
    assert build.returncode == 0, build.stdout + build.stderr

    server = serve("guarded-iris:latest", cwd=tmp_path, env=env)

    assert server.client.post("/predict", json={"rows": [IRIS_ROW]}).status_code == 200
