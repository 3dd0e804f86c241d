"""tests/apps/iris_plain.py with the guard: one added line per API (and its import)."""

from __future__ import annotations

import bentoml
import numpy as np
import pydantic
from bentoml.models import BentoModel

from guarded_serving.bento import guarded_api

SPECIES = ["setosa", "versicolor", "virginica"]


class Flower(pydantic.BaseModel):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


class Score(pydantic.BaseModel):
    species: str
    probability: float


@bentoml.service
class Iris:
    model_ref = BentoModel("iris:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)

    @guarded_api(model="iris:latest")
    @bentoml.api
    def classify(self, data: np.ndarray) -> np.ndarray:
        return self.model.predict(data)

    @guarded_api(model="iris:latest")
    @bentoml.api
    def score(self, flowers: list[Flower]) -> list[Score]:
        rows = np.array([[f.sepal_length, f.sepal_width, f.petal_length, f.petal_width] for f in flowers])
        probabilities = self.model.predict_proba(rows)
        return [Score(species=SPECIES[int(p.argmax())], probability=float(p.max())) for p in probabilities]
