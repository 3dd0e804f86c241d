"""A plain numpy function, guarded with the decorator form; user stages are timed too.

bentoml serve examples.numpy_function.service:score
"""

import numpy as np

from guarded_serving import guard, stage

rng = np.random.default_rng(7)
TRAINING = rng.normal(size=(2000, 3)) * [1.0, 2.0, 0.5] + [0.0, 10.0, -1.0]
WEIGHTS = np.array([0.5, -0.2, 1.5])


@guard(reference=TRAINING, feature_names=["a", "b", "c"], name="linear-score")
def score(rows: np.ndarray) -> np.ndarray:
    with stage("standardise"):
        z = (rows - TRAINING.mean(axis=0)) / TRAINING.std(axis=0)
    with stage("weigh"):
        return z @ WEIGHTS
