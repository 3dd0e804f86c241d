"""The services bench/overhead.py compares, side by side, for one model (BENCH_MODEL=logreg|numpy).

* ``bare``: a plain BentoML service written the way BentoML's docs show: a typed list in, a list out,
  default settings (access log on, every route traced).
* ``tuned``: the same service as a careful engineer would tune it: the body read as one object
  (``{"rows": ...}``) by a pydantic model, a typed response model, the access log off and the
  predict route excluded from OpenTelemetry tracing.
* ``guarded``: ``guard()`` over the same predict function, with a real SQLite store (the file named
  by GUARDED_SERVING_DB) and every check on.

All three take the same body, ``{"rows": [[20 floats], ...]}``, and answer one prediction per row
(BENCH_FEATURES=8 changes the width, for bench/store.py).
The models are fitted at import, from a fixed seed, so every process serves the same model.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
import pydantic

from guarded_serving import guard

FEATURES = int(os.environ.get("BENCH_FEATURES", "20"))
MODEL = os.environ.get("BENCH_MODEL", "logreg")
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))  # serving processes of each service (bench/overhead.py --workers)

_rng = np.random.default_rng(0)
X_TRAIN = _rng.normal(size=(5000, FEATURES))
_weights = _rng.normal(size=FEATURES)

if MODEL == "logreg":
    from sklearn.linear_model import LogisticRegression

    _model = LogisticRegression().fit(X_TRAIN, (X_TRAIN @ _weights > 0).astype(int))
    predict = _model.predict_proba
elif MODEL == "numpy":

    def predict(rows: np.ndarray) -> np.ndarray:
        """A trivial model: a fixed linear score per row."""
        return np.asarray(rows, dtype=float) @ _weights

else:
    raise SystemExit(f"BENCH_MODEL={MODEL!r}; expected 'logreg' or 'numpy'")


@bentoml.service(workers=WORKERS)
class Bare:
    @bentoml.api
    def predict(self, rows: list[list[float]]) -> list:  # type: ignore[type-arg]
        return predict(np.asarray(rows)).tolist()  # type: ignore[no-any-return]


class Rows(pydantic.BaseModel):
    rows: list[list[float]]


class Predictions(pydantic.BaseModel):
    predictions: list  # type: ignore[type-arg]


@bentoml.service(workers=WORKERS, logging={"access": {"enabled": False}}, tracing={"excluded_urls": ["/predict"]})
class Tuned:
    @bentoml.api(input_spec=Rows)
    def predict(self, rows: list[list[float]]) -> Predictions:
        return Predictions(predictions=predict(np.asarray(rows)).tolist())


guarded = guard(predict, reference=X_TRAIN, name=f"bench-{MODEL}", workers=WORKERS)
