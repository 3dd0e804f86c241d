"""missing.py: where a model takes a missing value, asked of it once; a null where it takes none is a 422."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from guarded_serving import GuardedModel, Reference
from guarded_serving.missing import ASKED_ONE_BY_ONE, fields_taking_missing, missing_taken, typical_row
from tests.fixtures.data import gaussian, iris


@pytest.fixture(scope="module")
def iris_rows() -> tuple[np.ndarray, np.ndarray]:
    return iris()


@pytest.fixture(scope="module")
def iris_reference(iris_rows: tuple[np.ndarray, np.ndarray]) -> Reference:
    return Reference.from_data(iris_rows[0])


def logistic(iris_rows: tuple[np.ndarray, np.ndarray]) -> Any:
    return LogisticRegression(max_iter=500).fit(*iris_rows).predict_proba


def body(rows: Any) -> bytes:
    return json.dumps({"rows": rows}).encode()


@pytest.fixture
def guarded_logistic(iris_rows: tuple[np.ndarray, np.ndarray]) -> Iterator[GuardedModel]:
    """The README's one-liner (a LogisticRegression guarded with its training rows), without a server."""
    guarded = GuardedModel(logistic(iris_rows), reference=iris_rows[0], name="churn", db=":memory:")
    guarded.start()
    yield guarded
    guarded.close()


def test_a_logistic_regression_takes_a_missing_value_in_no_feature(
    iris_rows: tuple[np.ndarray, np.ndarray], iris_reference: Reference
) -> None:
    assert missing_taken(logistic(iris_rows), iris_reference, "array") == (False, False, False, False)


def test_a_gradient_boosting_model_takes_a_missing_value_in_every_feature(
    iris_rows: tuple[np.ndarray, np.ndarray], iris_reference: Reference
) -> None:
    model = HistGradientBoostingClassifier(max_iter=5).fit(*iris_rows)

    assert missing_taken(model.predict_proba, iris_reference, "array") == (True, True, True, True)


def test_a_pipeline_imputing_one_column_takes_a_missing_value_there_only(
    iris_rows: tuple[np.ndarray, np.ndarray], iris_reference: Reference
) -> None:
    columns = ColumnTransformer([("imputed", SimpleImputer(), [2])], remainder="passthrough")
    model = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(*iris_rows)

    assert missing_taken(model.predict_proba, iris_reference, "array") == (False, False, True, False)


def test_a_model_refusing_even_a_typical_row_keeps_taking_nulls_as_before(iris_reference: Reference) -> None:
    def broken(rows: np.ndarray) -> np.ndarray:
        raise RuntimeError("always")

    assert missing_taken(broken, iris_reference, "array") == (True, True, True, True)


def test_a_model_wider_than_the_features_asked_one_by_one_refuses_nulls_everywhere() -> None:
    reference = Reference.from_data(gaussian(50, ASKED_ONE_BY_ONE + 1, seed=3))

    def no_nan(rows: np.ndarray) -> np.ndarray:
        if np.isnan(rows).any():
            raise ValueError("Input X contains NaN.")
        return rows.sum(axis=1)

    assert missing_taken(no_nan, reference, "array") == (False,) * (ASKED_ONE_BY_ONE + 1)


def test_the_typical_row_holds_each_numeric_median_and_the_most_common_category() -> None:
    reference = Reference.from_data([{"age": float(a), "city": "Oslo" if a % 3 else "Rome"} for a in range(1, 12)])

    assert typical_row(reference) == [6.0, "Oslo"]


def test_records_are_asked_as_records_with_none_for_the_missing_value() -> None:
    reference = Reference.from_data([{"age": float(a), "city": "Oslo" if a % 3 else "Rome"} for a in range(1, 12)])
    seen: list[Any] = []

    def records(rows: list[dict[str, Any]]) -> list[float]:
        seen.extend(rows)
        if any(row["age"] is None for row in rows):
            raise TypeError("age must be a number")
        return [1.0] * len(rows)

    assert missing_taken(records, reference, "records") == (False, True)
    assert {"age": None, "city": "Oslo"} in seen


def test_a_null_where_the_model_takes_none_is_a_422_naming_the_feature_before_the_model_runs(
    guarded_logistic: GuardedModel,
) -> None:
    reply = guarded_logistic.handle_predict(body([[5.1, 3.5, 1.4, 0.2], [5.0, None, 1.3, 0.2]]), "application/json")

    assert reply.status == 422
    problem = json.loads(reply.body)
    assert problem["detail"] == (
        "row 1, feature 'f1': got null, a missing value, which this model cannot take (it raised on one at start);"
        " expected a number"
    )
    monitor = guarded_logistic.monitor
    assert monitor is not None
    report = monitor.health()
    assert (report.requests, report.rejected, report.errors) == (1, 1, 0)


def test_the_service_answers_the_next_request_after_refusing_a_null(guarded_logistic: GuardedModel) -> None:
    guarded_logistic.handle_predict(body([[None, 3.5, 1.4, 0.2]]), "application/json")

    assert guarded_logistic.handle_predict(body([[5.1, 3.5, 1.4, 0.2]]), "application/json").status == 200


def test_allow_missing_true_passes_every_null_on_without_asking(iris_rows: tuple[np.ndarray, np.ndarray]) -> None:
    guarded = GuardedModel(logistic(iris_rows), reference=iris_rows[0], name="churn", db=":memory:", allow_missing=True)

    assert guarded.schema.nulls() == (True, True, True, True)


def test_allow_missing_false_refuses_every_null_whatever_the_model_takes(iris_rows: tuple[np.ndarray, np.ndarray]) -> None:
    model = HistGradientBoostingClassifier(max_iter=5).fit(*iris_rows)
    guarded = GuardedModel(model.predict_proba, reference=iris_rows[0], name="m", db=":memory:", allow_missing=False)
    guarded.start()
    try:
        reply = guarded.handle_predict(body([[None, 3.5, 1.4, 0.2]]), "application/json")
    finally:
        guarded.close()

    assert reply.status == 422
    assert "a missing value (null) is not allowed" in json.loads(reply.body)["detail"]


def test_rows_with_free_text_take_a_null_text_and_refuse_one_where_the_pipeline_cannot() -> None:
    from examples.text import reviews  # TF-IDF on review, scaled stars and price, one-hot channel (ignoring unknowns)

    guarded = GuardedModel(reviews.model.predict_proba, reference=reviews.X, name="reviews", db=":memory:")
    row = {"review": "great fast delivery", "stars": 5, "price": 9.5, "channel": "web"}
    guarded.start()
    try:
        statuses = [
            guarded.handle_predict(body([{**row, field: None}]), "application/json").status for field in reviews.X.columns
        ]
    finally:
        guarded.close()

    assert list(reviews.X.columns) == ["review", "stars", "price", "channel"]
    assert fields_taking_missing(reviews.model.predict_proba, guarded.reference, guarded.kind) == (True, False, False, True)  # type: ignore[arg-type]
    assert statuses == [200, 422, 422, 200]


def test_a_nan_literal_is_not_answered_with_an_offer_of_null_where_the_model_takes_none(guarded_logistic: GuardedModel) -> None:
    reply = guarded_logistic.handle_predict(b'{"rows": [[NaN, 3.5, 1.4, 0.2]]}', "application/json")

    assert json.loads(reply.body)["detail"] == "row 0, feature 'f0': NaN is not allowed; expected a finite number"


@pytest.mark.parametrize("store", ["memory", "sqlite-file"])
def test_refused_nulls_are_counted_as_refused_missing_values_not_as_wrong_types(
    iris_rows: tuple[np.ndarray, np.ndarray], tmp_path: Path, store: str
) -> None:
    db = str(tmp_path / "refused.db") if store == "sqlite-file" else ":memory:"
    guarded = GuardedModel(logistic(iris_rows), reference=iris_rows[0], name="churn", db=db)
    guarded.start()
    try:
        rows = iris_rows[0][:150].tolist()
        assert guarded.handle_predict(body(rows), "application/json").status == 200
        for _ in range(3):  # a null where the model takes none: refused, twice in feature f1 within one request
            refused = guarded.handle_predict(body([[None, 3.5, 1.4, 0.2], [None, 3.0, 1.4, 0.2]]), "application/json")
            assert refused.status == 422
        wrong = guarded.handle_predict(body([[5.1, "3.5", 1.4, 0.2]]), "application/json")  # a string: a wrong type
        assert wrong.status == 422
        monitor = guarded.monitor
        assert monitor is not None
        monitor.flush()

        quality = monitor.health().check("data_quality")
    finally:
        guarded.close()

    features = quality.details.features
    assert features["f0"].refused_missing == 3  # requests, not values
    assert features["f0"].type_errors == 0
    assert "3 requests refused for a missing value (null)" in features["f0"].problems
    assert features["f1"].type_errors == 1
    assert features["f1"].refused_missing == 0
    assert features["f1"].problems == ("1 value of the wrong type",)
    assert "f0: 3 requests refused for a missing value (null)" in quality.summary
