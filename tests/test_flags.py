"""Boolean features (flags: is_member, has_discount): a DataFrame's bool column, a list column of True/False.

They were profiled as numbers (a bool is an int to Python), so the service refused every JSON ``true`` with a 422
("expected a number") and ``Monitor.observe`` counted every flag as a wrong type (data quality alerting on healthy
traffic). A flag is a category now, and takes true/false and 0/1 alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from guarded_serving import GuardedModel, Monitor, Reference
from guarded_serving.tabular import columns_from_data
from guarded_serving.testing import TestClient


def members(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.integers(18, 90, rows).astype(float), "member": rng.random(rows) < 0.3})
    return frame, (frame.age / 50 + frame.member + rng.normal(size=rows) > 1.5).astype(int).to_numpy()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(pd.DataFrame({"x": [1.5, 2.0, 3.0], "flag": [True, False, True]}), id="dataframe-bool"),
        pytest.param(pd.DataFrame({"x": [1.5, 2.0, 3.0], "flag": pd.array([True, None, False], dtype="boolean")}), id="nullable"),
        pytest.param([[1.5, True], [2.0, False], [3.0, None]], id="lists"),
    ],
)
def test_a_column_of_booleans_is_categorical(data: object) -> None:
    columns = columns_from_data(data)

    assert columns.categorical == (False, True)
    assert [v for v in columns.values[1].tolist() if v is not None and v is not pd.NA] in ([True, False, True], [True, False])


def test_zeros_and_ones_stay_numeric() -> None:
    assert columns_from_data([[1.5, 1], [2.0, 0], [3.0, 1]]).categorical == (False, False)


def test_a_numpy_array_of_booleans_is_categorical() -> None:
    columns = columns_from_data(np.array([[True, False], [False, False], [True, True]]))

    assert columns.categorical == (True, True)


def test_the_service_takes_a_flag_as_true_false_or_0_1() -> None:
    frame, y = members(2_000)
    model = LogisticRegression().fit(frame, y)
    guarded = GuardedModel(model.predict_proba, reference=frame, db=":memory:", name="flags", window=200)

    with TestClient(guarded) as client:
        by_bool = client.predict([{"age": 40.0, "member": True}, {"age": 30.0, "member": False}])
        by_number = client.predict([[40.0, 1], [30.0, 0]])
        refused = client.predict([[40.0, "yes"]])

    assert by_bool.status == 200, by_bool.body
    assert by_number.status == 200, by_number.body
    assert by_bool.json()["predictions"] == by_number.json()["predictions"]
    assert refused.status == 422
    problem = refused.json()["problems"][0]
    assert (problem["feature"], problem["problem"]) == ("member", 'got "yes"')
    assert "boolean" in problem["expected"]


def test_healthy_flags_observed_in_process_raise_no_quality_problem() -> None:
    frame, _ = members(3_000)
    monitor = Monitor(Reference.from_data(frame), window=1_000)
    served, _ = members(1_000, seed=1)

    monitor.observe(served, np.zeros(len(served)))
    checks = {c.name: c for c in monitor.health().checks}

    assert checks["data_quality"].status.value == "ok", checks["data_quality"].summary
    assert checks["data_drift"].status.value == "ok", checks["data_drift"].summary


def test_a_flag_rate_that_doubles_is_data_drift() -> None:
    frame, _ = members(3_000)
    monitor = Monitor(Reference.from_data(frame), window=1_000)
    served, _ = members(1_000, seed=1)
    served["member"] = np.random.default_rng(2).random(1_000) < 0.6

    monitor.observe(served, np.zeros(len(served)))
    drift = monitor.health().check("data_drift")

    assert drift.status.value in ("warn", "alert"), drift.summary
    assert "member" in drift.summary
