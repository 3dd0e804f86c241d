"""guarded_api refuses, when the class is defined or its worker starts, an API it cannot guard, naming what it
expected; and builds, in-process, each API's guard from the API's own signature."""

from __future__ import annotations

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from typing import Any

import bentoml
import numpy as np
import pydantic
import pytest

from guarded_serving import ConfigurationError
from guarded_serving.bento import guarded_api
from tests.fixtures.data import gaussian

X = gaussian(300, 3, seed=0)
FEATURES = ["a", "b", "c"]


class Row(pydantic.BaseModel):
    a: float
    b: float
    c: float


class Other(pydantic.BaseModel):
    a: float
    z: float
    c: float


def test_an_api_needs_a_reference_or_a_model() -> None:
    with pytest.raises(ConfigurationError, match=r"^reference: expected training data, a Reference, its file, or model="):
        guarded_api()


def test_an_api_takes_a_reference_or_a_model_not_both() -> None:
    with pytest.raises(ConfigurationError, match=r"^model: expected either reference= or model=.*not both"):
        guarded_api(reference=X, model="iris:latest")


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: _api(_takes_two), "exactly one parameter without a default: the rows"),
        (lambda: _api(_takes_text), "np.ndarray, pd.DataFrame, or a list of rows"),
        (lambda: _api(_takes_context), "an API without a context parameter"),
    ],
    ids=["two-required-parameters", "a-string-parameter", "a-context-parameter"],
)
def test_an_api_the_guard_cannot_feed_is_refused_when_the_class_is_defined(build: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        build()


def _takes_two(self: Any, rows: np.ndarray, scale: float) -> np.ndarray:
    return rows * scale


def _takes_text(self: Any, text: str) -> str:
    return text


def _takes_context(self: Any, rows: np.ndarray, ctx: bentoml.Context) -> np.ndarray:
    return rows


def _api(func: Any) -> Any:
    return guarded_api(reference=X, feature_names=FEATURES, db=":memory:")(bentoml.api(func))


def test_row_models_must_name_the_reference_features() -> None:
    @bentoml.service
    class Mismatched:
        @guarded_api(reference=X, feature_names=FEATURES, db=":memory:")
        @bentoml.api
        def score(self, rows: list[Other]) -> list[float]:
            return [r.a for r in rows]

    with pytest.raises(ConfigurationError, match=r"^score's row fields: expected the reference's features \['a', 'b', 'c'\]"):
        Mismatched.inner()


def test_each_api_gets_its_own_guard_named_after_the_class_and_the_api() -> None:
    @bentoml.service
    class Scorer:
        @guarded_api(reference=X, feature_names=FEATURES, db=":memory:")
        @bentoml.api
        def total(self, rows: np.ndarray) -> np.ndarray:
            return rows.sum(axis=1)

        @guarded_api(reference=X, feature_names=FEATURES, db=":memory:", name="firsts")
        @bentoml.api
        def first(self, rows: list[Row]) -> list[float]:
            return [r.a for r in rows]

    instance = Scorer.inner()
    guards = instance.__guarded_serving_guards__
    try:
        total = guards["total"].handle_predict(b'{"rows": [[1, 2, 3]]}', "application/json")
        first = guards["first"].handle_predict(b'{"rows": [{"a": 1, "b": 2, "c": 3}]}', "application/json")
        wrong = guards["total"].handle_predict(b'{"rows": [[1, 2, "x"]]}', "application/json")
    finally:
        instance.guarded_flush()

    assert sorted(Scorer.apis) == ["feedback", "first", "total"]
    assert (guards["total"].name, guards["first"].name) == ("scorer.total", "firsts")
    assert (total.status, total.body) == (200, b"[6.0]")
    assert (first.status, first.body) == (200, b"[1.0]")
    assert wrong.status == 422
    assert b"row 0, feature 'c'" in wrong.body
