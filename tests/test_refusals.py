"""A model that raises on a category it was never trained on (a scikit-learn pipeline's OneHotEncoder) gets the
client a 422 naming the row, the feature and what it knows, recorded as rejected; any other failure stays a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlite_utils
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from guarded_serving import GuardedModel
from guarded_serving.testing import TestClient


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 600).astype(float), "plan": rng.choice(["basic", "pro", "max"], 600)})
    y = ((frame.age > 40) ^ (frame.plan == "pro")).astype(int)
    prepare = ColumnTransformer([("num", StandardScaler(), ["age"]), ("cat", OneHotEncoder(), ["plan"])])
    return frame, make_pipeline(prepare, LogisticRegression()).fit(frame, y)


def serve(customers: tuple[pd.DataFrame, Any], db: Path, **keywords: Any) -> GuardedModel:
    frame, model = customers
    return GuardedModel(model.predict_proba, reference=frame, db=str(db), name="plans", **keywords)


def test_an_unseen_category_the_model_refuses_is_a_422_naming_it(customers: tuple[pd.DataFrame, Any], tmp_path: Path) -> None:
    with TestClient(serve(customers, tmp_path / "log.db")) as client:
        answer = client.predict([{"age": 30.0, "plan": "pro"}, {"age": 50.0, "plan": "enterprise"}])

    assert answer.status == 422, answer.body
    body = answer.json()
    assert body["title"] == "Invalid input"
    [problem] = body["problems"]
    assert (problem["row"], problem["feature"]) == (1, "plan")
    assert problem["problem"] == 'got "enterprise", a category the model was not trained on (it raised ValueError)'
    assert problem["expected"].startswith("one of its categories: ")
    assert {"'basic'", "'pro'", "'max'"} <= set(problem["expected"].split(": ", 1)[1].split(", "))
    [logged] = sqlite_utils.Database(tmp_path / "log.db")["requests"].rows
    assert (logged["status"], logged["request_id"]) == ("rejected", body["request_id"])
    assert "enterprise" in logged["error"]


def test_a_redacted_feature_is_refused_without_its_value_or_categories(
    customers: tuple[pd.DataFrame, Any], tmp_path: Path
) -> None:
    with TestClient(serve(customers, tmp_path / "log.db", redact=["plan"])) as client:
        answer = client.predict([{"age": 50.0, "plan": "canary-enterprise"}])

    assert answer.status == 422, answer.body
    assert b"canary" not in answer.body
    assert b"basic" not in answer.body
    assert b"canary" not in (tmp_path / "log.db").read_bytes()


def test_a_failure_that_does_not_quote_the_value_stays_a_500(tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": [30.0, 40.0, 50.0] * 50, "plan": ["basic", "pro", "max"] * 50})

    def broken(rows: pd.DataFrame) -> Any:  # fails on the new category, but its message does not quote it
        if (rows["plan"] == "enterprise").any():
            raise ValueError("the weights file is missing")
        return np.zeros(len(rows))

    guarded = GuardedModel(broken, reference=frame, db=str(tmp_path / "log.db"), name="broken")
    with TestClient(guarded) as client:
        answer = client.predict([{"age": 50.0, "plan": "enterprise"}])

    assert answer.status == 500
    assert json.loads(answer.body)["title"] == "Model error"


def test_a_lookup_of_the_unseen_category_is_refused_too(tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": [30.0, 40.0, 50.0] * 50, "plan": ["basic", "pro", "max"] * 50})
    price = {"basic": 0.1, "pro": 0.5, "max": 0.9}

    def priced(rows: pd.DataFrame) -> Any:
        return [price[plan] for plan in rows["plan"]]  # KeyError('enterprise')

    with TestClient(GuardedModel(priced, reference=frame, db=str(tmp_path / "log.db"), name="priced")) as client:
        answer = client.predict([{"age": 50.0, "plan": "enterprise"}, {"age": 50.0, "plan": "gold"}])

    assert answer.status == 422, answer.body
    assert [p["row"] for p in answer.json()["problems"]] == [0]  # the value the lookup raised on
