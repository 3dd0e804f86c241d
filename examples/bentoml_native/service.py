"""A class-based BentoML service, guarded in place: the one added line is ``@guarded_api(...)``.

python examples/bentoml_native/train.py && bentoml serve examples.bentoml_native.service:IrisClassifier

``POST /classify {"data": [[5.1, 3.5, 1.4, 0.2]]}`` answers ``[0]`` as before; a bad row gets a 422 naming the
row and the feature; ``GET /health/model`` judges the API against the reference saved with the model, and
``POST /feedback`` takes labels for an answer's ``X-Request-ID``.
"""

from __future__ import annotations

import bentoml
import numpy as np
from bentoml.models import BentoModel

from guarded_serving.bento import guarded_api


@bentoml.service
class IrisClassifier:
    model_ref = BentoModel("iris_classifier:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)

    @guarded_api(model="iris_classifier:latest")
    @bentoml.api
    def classify(self, data: np.ndarray) -> np.ndarray:
        return self.model.predict(data)
