"""Small guarded services the end-to-end tests serve with `bentoml serve tests.apps.toy:<name>`.

The toy model sums each row. Special first values make it misbehave on purpose:
999 raises ValueError, -1 emits a DeprecationWarning, -2 returns one result too few.
"""

import dataclasses
import warnings

import numpy as np

from guarded_serving import Reference, guard
from guarded_serving.environment import Fingerprint

rng = np.random.default_rng(0)
TRAINING = rng.normal(size=(500, 3))
FEATURES = ["a", "b", "c"]
REFERENCE = Reference.from_data(TRAINING, feature_names=FEATURES)


def toy_predict(rows: np.ndarray) -> np.ndarray:
    if (rows[:, 0] == 999).any():
        raise ValueError("the toy model cannot handle 999")
    if (rows[:, 0] == -1).any():
        warnings.warn("toy_predict(rows) is deprecated; call toy_predict_v2", DeprecationWarning, stacklevel=1)
    if (rows[:, 0] == -2).any():
        return rows.sum(axis=1)[:-1]
    return rows.sum(axis=1)


# One worker, a small per-request row limit for the 413 case.
one = guard(toy_predict, reference=REFERENCE, name="toy", max_request_rows=50)

# Two workers sharing one store.
two = guard(toy_predict, reference=REFERENCE, name="toy-two", workers=2)

# A reference recorded under another numpy version: library drift.
_env = REFERENCE.environment
OLD_NUMPY = Fingerprint(
    python=_env.python, platform=_env.platform, packages={**_env.packages, "numpy": "1.0.0", "gone-package": "0.1"}
)
drifted = guard(toy_predict, reference=dataclasses.replace(REFERENCE, environment=OLD_NUMPY), name="toy-env")


# Decorator form with BentoML options passed through.
@guard(reference=TRAINING.tolist(), feature_names=FEATURES, name="toy-decorated", traffic={"timeout": 10})
def decorated(rows: np.ndarray) -> list[float]:
    return [float(x) for x in rows[:, 0]]


# A reference with labels and predictions: the concept check judges realized MAE.
LABELS = TRAINING.sum(axis=1) + np.random.default_rng(1).normal(0, 0.1, len(TRAINING))
labelled = guard(
    toy_predict,
    reference=Reference.from_data(TRAINING, y=LABELS, predictions=toy_predict(TRAINING), feature_names=FEATURES),
    name="toy-labelled",
)
