"""A binary classifier that returns one number per row, the probability of its second class (``predict_proba(X)[:, 1]``,
a Keras sigmoid's (n, 1), XGBoost's and LightGBM's binary objectives): it is judged as the classifier it is.

Before, those numbers were compared with the labels as if they were predicted labels: every row wrong, the
reference's accuracy 0, so concept drift could never see it fall, and no performance estimate was made.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from guarded_serving import Monitor, Reference
from guarded_serving.performance import Performance

FLAGGED = frozenset({"warn", "alert"})


def world(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(rows, 4))
    return X, (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=rows) > 0).astype(int)


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    return LogisticRegression().fit(*world(np.random.default_rng(0), 2_000))


@pytest.mark.parametrize("shape", ["flat", "column"], ids=["predict_proba[:, 1]", "sigmoid (n, 1)"])
def test_the_reference_scores_one_probability_per_row_as_a_classifier(model: LogisticRegression, shape: str) -> None:
    X, y = world(np.random.default_rng(1), 2_000)
    p = model.predict_proba(X)[:, 1]

    reference = Reference.from_data(X, y=y, predictions=p if shape == "flat" else p.reshape(-1, 1))

    performance = reference.performance
    assert performance is not None
    assert performance.task == "classification"
    assert performance.classes == (0, 1)
    assert 1 - performance.error_mean == pytest.approx(float(((p > 0.5) == y).mean()), abs=1e-12)
    expected_loss = -np.mean(np.log(np.where(y == 1, p, 1 - p)))
    assert performance.loss_mean == pytest.approx(float(expected_loss), rel=1e-9)
    assert reference.confidence is not None
    assert reference.confidence.labelled
    assert reference.confidence.label_shift is not None


def test_hard_labels_of_a_binary_classifier_stay_labels() -> None:
    y = [0, 1, 1, 0, 1, 0, 0, 1] * 50
    predicted = [0, 1, 0, 0, 1, 0, 1, 1] * 50

    performance = Performance.from_data(y, predicted)

    assert performance.task == "classification"
    assert 1 - performance.error_mean == pytest.approx(0.75)


def judged_after_labels(model: LogisticRegression, flip: bool) -> tuple[dict, dict]:
    """Concept drift and the estimate after 2,000 served rows of one probability each, labelled (flipped: the
    relation between inputs and target turned around)."""
    X, y = world(np.random.default_rng(2), 2_000)
    reference = Reference.from_data(X, y=y, predictions=model.predict_proba(X)[:, 1])
    monitor = Monitor(reference, window=1_000)
    rng = np.random.default_rng(3)
    for _ in range(10):
        X, y = world(rng, 200)
        request_id = monitor.observe(X, model.predict_proba(X)[:, 1].tolist())
        monitor.feedback(request_id, (1 - y if flip else y).tolist())
    checks = monitor.health().to_json()["checks"]
    return checks["concept_drift"], checks["estimated_performance"]


def test_labels_that_turned_around_are_concept_drift(model: LogisticRegression) -> None:
    healthy, estimate = judged_after_labels(model, flip=False)
    broken, _ = judged_after_labels(model, flip=True)

    assert healthy["status"] == "ok", healthy["summary"]
    assert broken["status"] in FLAGGED, broken["summary"]
    assert "accuracy" in broken["summary"]
    assert estimate["status"] == "ok"
    assert estimate["summary"].startswith("Estimated accuracy 0.")
