"""Feedback: labels that arrive after the prediction are joined to the rows they label, in memory or in the store."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from guarded_serving import InputError, Monitor, Reference
from guarded_serving.concept import ConceptDetails
from guarded_serving.errors import UnknownRequestError
from guarded_serving.guard import GuardedModel, Reply
from guarded_serving.monitor import FeedbackResult
from tests.fixtures.data import gaussian, logistic_probabilities

# Two alternating prediction rows: even rows predict class 0 (p = 0.8), odd rows class 1 (p = 0.7).
ALTERNATING = [[0.8, 0.2], [0.3, 0.7]]


def alternating(rows: int) -> list[list[float]]:
    return [ALTERNATING[i % 2] for i in range(rows)]


def predicted_classes(rows: int, wrong: tuple[int, ...] = ()) -> list[int]:
    """Labels agreeing with ``alternating(rows)`` except on the rows listed in ``wrong``."""
    return [(i % 2) ^ (i in wrong) for i in range(rows)]


@pytest.fixture
def gaussian_100x3() -> np.ndarray:
    return gaussian(100, 3, seed=8)


@pytest.fixture(params=["in-memory", "sqlite-store"])
def monitor(request: pytest.FixtureRequest, logistic_reference_500: Reference, tmp_path: Path) -> Iterator[Monitor]:
    db = tmp_path / "feedback.db" if request.param == "sqlite-store" else None
    with Monitor(logistic_reference_500, name="churn", db=db) as monitor:
        yield monitor


@pytest.fixture
def stored_monitor(logistic_reference_500: Reference, tmp_path: Path) -> Iterator[Monitor]:
    with Monitor(logistic_reference_500, name="churn", db=tmp_path / "feedback.db") as monitor:
        yield monitor


def concept(monitor: Monitor) -> ConceptDetails:
    monitor.flush()
    details = monitor.health().check("concept_drift").details
    assert isinstance(details, ConceptDetails)
    return details


def feedback_table(monitor: Monitor) -> list[tuple[str, int, str]]:
    assert monitor.store is not None
    with sqlite3.connect(monitor.store.path) as conn:
        return conn.execute("SELECT request_id, row, label FROM feedback ORDER BY request_id, row").fetchall()


def counts(monitor: Monitor) -> tuple[int, int, int]:
    """(labels received, labels replaced, labels held): held is the feedback table's rows with a store, else the
    labelled rows the concept check joins in memory."""
    details = concept(monitor)
    held = len(feedback_table(monitor)) if monitor.store is not None else details.labelled_rows
    return details.labels_received, details.labels_replaced, held


def observe_alternating(monitor: Monitor, features: np.ndarray, request_id: str | None = None) -> str:
    return monitor.observe(features, alternating(len(features)), request_id=request_id)


# -- joining -------------------------------------------------------------------------------------------------------


def test_observe_returns_a_fresh_request_id_for_each_request(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    first = observe_alternating(monitor, gaussian_100x3[:5])
    second = observe_alternating(monitor, gaussian_100x3[:5])

    assert first != second
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in (first, second))


def test_feedback_joins_labels_to_the_rows_of_that_request(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    observe_alternating(monitor, gaussian_100x3[:50])  # unlabelled traffic before and after
    request_id = observe_alternating(monitor, gaussian_100x3)
    observe_alternating(monitor, gaussian_100x3[:50])

    result = monitor.feedback(request_id, predicted_classes(100, wrong=(3, 10, 51, 77)))

    assert result == FeedbackResult(accepted=100, new=100, replaced=0)
    details = concept(monitor)
    assert (details.labels_received, details.labelled_rows, details.current) == (100, 100, 0.96)


def test_feedback_rows_are_stored_by_request_and_row(stored_monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    request_id = observe_alternating(stored_monitor, gaussian_100x3[:3], request_id="r-3")

    stored_monitor.feedback(request_id, [1, 0, 1])

    assert feedback_table(stored_monitor) == [("r-3", 0, "1"), ("r-3", 1, "0"), ("r-3", 2, "1")]


def test_a_repeated_label_replaces_the_earlier_one(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    request_id = observe_alternating(monitor, gaussian_100x3)
    monitor.feedback(request_id, predicted_classes(100))

    monitor.feedback_items([(request_id, row, 1 - row % 2) for row in range(10)])

    assert concept(monitor).current == 0.9


def test_a_repeated_label_is_counted_as_replaced(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    request_id = observe_alternating(monitor, gaussian_100x3)
    monitor.feedback(request_id, predicted_classes(100))

    result = monitor.feedback_items([(request_id, row, 1 - row % 2) for row in range(10)])

    assert result == FeedbackResult(accepted=10, new=0, replaced=10)
    assert counts(monitor) == (100, 10, 100)


def test_a_label_repeated_within_one_call_replaces_and_is_counted(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    request_id = observe_alternating(monitor, gaussian_100x3)
    items = [(request_id, row, label) for row, label in enumerate(predicted_classes(100))]

    result = monitor.feedback_items([*items, (request_id, 0, 1)])  # row 0 again, now wrong: the later label wins

    assert result == FeedbackResult(accepted=101, new=100, replaced=1)
    assert counts(monitor) == (100, 1, 100)
    assert concept(monitor).current == 0.99


def test_feedback_items_may_label_rows_of_several_requests(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    small = observe_alternating(monitor, gaussian_100x3[:5])
    medium = observe_alternating(monitor, gaussian_100x3[:30])
    large = observe_alternating(monitor, gaussian_100x3)
    items: list[tuple[str, int, Any]] = [(large, row, row % 2) for row in range(0, 100, 2)]
    items += [(small, row, 1 - row % 2) for row in range(5)] + [(medium, row, row % 2) for row in range(30)]

    result = monitor.feedback_items(items)

    assert result == FeedbackResult(accepted=85, new=85, replaced=0)
    details = concept(monitor)
    assert (details.labels_received, details.labelled_rows, details.current) == (85, 85, None)  # judged from 100 rows


def test_labels_arriving_late_and_out_of_order_join_to_the_right_predictions(monitor: Monitor) -> None:
    # 2,000 rows in 40 requests: the first 1,000 predicted by a model with its classes swapped, the last 1,000 by the
    # true one. Labels arrive shuffled across requests and rows; the window must be the newest 1,000 rows by
    # prediction (not arrival) order, each judged against its own label.
    rng = np.random.default_rng(2_000)
    X = rng.normal(size=(2_000, 3))
    y = (rng.random(2_000) < logistic_probabilities(X)[:, 1]).astype(int)
    P = logistic_probabilities(X)
    P[:1_000] = P[:1_000, ::-1]
    items = []
    for start in range(0, 2_000, 50):
        request_id = monitor.observe(X[start : start + 50], P[start : start + 50])
        items += [(request_id, row, int(y[start + row])) for row in range(50)]

    for chunk in np.array_split(rng.permutation(len(items)), 20):
        monitor.feedback_items([items[i] for i in chunk])

    details = concept(monitor)
    expected = float(np.mean(P[1_000:].argmax(axis=1) == y[1_000:]))
    assert (details.labels_received, details.labelled_rows) == (2_000, 1_000)
    assert details.current == round(expected, 4)
    assert expected > 0.75 > float(np.mean(P.argmax(axis=1) == y))  # a wrong window or join would not pass


# -- refusals: everything is checked before anything is stored ----------------------------------------------------


def test_unknown_request_ids_are_refused_and_all_listed(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    known = observe_alternating(monitor, gaussian_100x3[:5])
    monitor.feedback(known, predicted_classes(5))

    with pytest.raises(UnknownRequestError) as caught:
        monitor.feedback_items([(known, 0, 1), ("nope-1", 0, 1), (known, 1, 1), ("nope-2", 3, 0), ("nope-1", 1, 0)])

    assert caught.value.unknown == ("nope-1", "nope-2")
    assert caught.value.status == 404
    assert str(caught.value) == "unknown request ids 'nope-1', 'nope-2'; expected ids of answered predictions"
    assert counts(monitor) == (5, 0, 5)


def test_a_wrong_number_of_labels_is_refused(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    request_id = observe_alternating(monitor, gaussian_100x3[:5], request_id="r-5")

    with pytest.raises(InputError, match=r"^3 labels for request 'r-5'; expected 5 labels, one per row$"):
        monitor.feedback(request_id, [0, 1, 0])

    assert counts(monitor) == (0, 0, 0)


def test_a_row_out_of_range_is_refused(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    request_id = observe_alternating(monitor, gaussian_100x3[:5], request_id="r-5")

    with pytest.raises(InputError, match=r"^item 1: row 5 of request 'r-5'; expected a row index in 0\.\.4$"):
        monitor.feedback_items([(request_id, 0, 0), (request_id, 5, 1)])

    assert counts(monitor) == (0, 0, 0)


def test_a_label_not_among_the_classes_is_refused(monitor: Monitor, gaussian_100x3: np.ndarray) -> None:
    request_id = observe_alternating(monitor, gaussian_100x3[:5])

    with pytest.raises(InputError, match=r'^item 1: label got "yes"; expected one of the classes \[0, 1\]$'):
        monitor.feedback_items([(request_id, 0, 0), (request_id, 1, "yes")])

    assert counts(monitor) == (0, 0, 0)


# -- the one-line form: labels among the classes the model can return -----------------------------------------


def one_line(predict: Any, X: Any) -> GuardedModel:
    """``guard(predict, reference=X_train)`` without BentoML: no labels, so no reference performance."""
    return GuardedModel(predict, reference=X, name="one-line", db=":memory:")


def send_label(guarded: GuardedModel, row: list[float], label: Any) -> Reply:
    answered = guarded.handle_predict(json.dumps({"rows": [row]}).encode())
    assert answered.status == 200
    request_id = json.loads(answered.body)["request_id"]
    return guarded.handle_feedback(json.dumps({"request_id": request_id, "labels": [label]}).encode())


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, Any]:
    X, y = load_digits(return_X_y=True)
    return X, LogisticRegression(max_iter=200).fit(X, y)


def test_a_label_outside_a_ten_class_models_classes_gets_a_422(digits: tuple[np.ndarray, Any]) -> None:
    X, model = digits
    guarded = one_line(model.predict_proba, X)
    try:
        refused = send_label(guarded, X[0].tolist(), 42)
        accepted = send_label(guarded, X[0].tolist(), 3)
    finally:
        guarded.close()

    assert refused.status == 422
    assert (
        json.loads(refused.body)["detail"] == "item 0: label got 42; expected one of the classes [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
    )
    assert accepted.status == 200
    assert guarded.reference.classes == tuple(range(10))


def test_the_classes_of_a_pipelines_last_step_are_the_labels_it_takes() -> None:
    X = gaussian(90, 2, seed=0)
    y = np.array(["bird", "cat", "dog"])[np.argmax(np.c_[X, -X.sum(axis=1)], axis=1)]
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression())]).fit(X, y)
    guarded = one_line(model.predict, X)
    try:
        refused = send_label(guarded, [0.0, 0.0], "fish")
        accepted = send_label(guarded, [0.0, 0.0], "cat")
    finally:
        guarded.close()

    assert guarded.reference.classes == ("bird", "cat", "dog")
    assert refused.status == 422
    assert 'expected one of the classes ["bird", "cat", "dog"]' in json.loads(refused.body)["detail"]
    assert accepted.status == 200


def test_a_plain_function_returning_probabilities_takes_their_column_indices_as_labels() -> None:
    X = gaussian(200, 3, seed=1)
    guarded = one_line(logistic_probabilities, X)
    try:
        refused = send_label(guarded, [0.0, 0.0, 0.0], 2)
        accepted = send_label(guarded, [0.0, 0.0, 0.0], 1)
    finally:
        guarded.close()

    assert guarded.reference.classes == (0, 1)
    assert (refused.status, accepted.status) == (422, 200)


def test_a_regressor_has_no_classes_and_takes_any_label() -> None:
    X = gaussian(200, 2, seed=2)
    guarded = one_line(lambda rows: rows.sum(axis=1), X)
    try:
        accepted = send_label(guarded, [0.0, 0.0], 12.5)
    finally:
        guarded.close()

    assert guarded.reference.classes == ()
    assert accepted.status == 200


def test_the_reference_keeps_its_classes_through_save_and_load(tmp_path: Path) -> None:
    reference = dataclasses.replace(Reference.from_data(np.eye(3)), classes=("bird", "cat"))

    assert Reference.load(reference.save(tmp_path / "reference.json")) == reference


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        pytest.param(
            b"",
            400,
            'the request body is empty; expected {"request_id": "...", "labels": [...]} or {"items": [{"request_id": "...",'
            ' "row": 0, "label": ...}]}',
            id="empty-body",
        ),
        pytest.param(
            b'{"request_id": "x", "labels": [1], "note": 1}',
            422,
            "the body has neither form: fields ['labels', 'note', 'request_id']",
            id="extra-field",
        ),
        pytest.param(b"[1, 2]", 422, "the body has neither form: a list", id="a-list"),
        pytest.param(
            b'{"items": [{"request_id": "{RID}", "row": 0, "label": null}]}', 422, "item 0: label got null", id="null-label"
        ),
        pytest.param(
            b'{"items": [{"request_id": "{RID}", "row": 0, "label": true}]}', 422, "item 0: label got true", id="bool-label"
        ),
    ],
)
def test_bad_feedback_is_named_as_the_client_wrote_it(
    digits: tuple[np.ndarray, Any], body: bytes, status: int, detail: str
) -> None:
    X, model = digits
    guarded = one_line(model.predict_proba, X)
    try:
        request_id = json.loads(guarded.handle_predict(json.dumps({"rows": [X[0].tolist()]}).encode()).body)["request_id"]
        refused = guarded.handle_feedback(body.replace(b"{RID}", request_id.encode()))
    finally:
        guarded.close()

    assert refused.status == status
    assert json.loads(refused.body)["detail"].startswith(detail)
