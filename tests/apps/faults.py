"""Guarded services for the fault tests (`bentoml serve tests.apps.faults:<name>`): sampling with labels, redaction,
a model that hangs, a store that blocks, a small body limit."""

import os
import time
import warnings
from pathlib import Path

import numpy as np

from guarded_serving import Reference, guard
from tests.fixtures.data import gaussian

TRAINING = gaussian(500, 3, seed=0)
FEATURES = ["a", "b", "c"]
LABELS = TRAINING.sum(axis=1) + np.random.default_rng(1).normal(0, 0.1, len(TRAINING))


def total(rows: np.ndarray) -> np.ndarray:
    return rows.sum(axis=1)


# One request in ten logs its rows (outputs included); labels may name any answered request.
sampled = guard(
    total,
    reference=Reference.from_data(TRAINING, y=LABELS, predictions=total(TRAINING), feature_names=FEATURES),
    name="faults-sampled",
    sample_rate=0.1,
)


# -- redaction: canary values in redacted features must reach no sink ---------------------------------------------------
PRIVATE_FEATURES = ["age", "ssn", "city", "income"]
TRAINING_CANARY_CITY = "TRAIN-CANARY-CITY"  # a training category of a redacted feature
TRAINING_CANARY_SSN = 13579.2468  # a training value of a redacted numeric feature
_private_rng = np.random.default_rng(2)
PRIVATE_TRAINING = [
    [float(a), TRAINING_CANARY_SSN if i == 7 else float(s), TRAINING_CANARY_CITY if i % 50 == 0 else c, float(m)]
    for i, (a, s, c, m) in enumerate(
        zip(
            _private_rng.normal(40, 10, 500),
            _private_rng.normal(5e8, 1e8, 500),
            _private_rng.choice(["north", "south", "east", "west"], 500),
            _private_rng.normal(50, 5, 500),
            strict=True,
        )
    )
]


def private_predict(rows: np.ndarray) -> np.ndarray:
    """Scores age + income; quotes its whole input when it fails (age 999) or warns (age -1), as careless code does."""
    if (rows[:, 0] == 999).any():
        raise ValueError(f"cannot score rows {rows.tolist()}")
    if (rows[:, 0] == -1).any():
        warnings.warn(f"scoring {rows.tolist()} through a deprecated path", DeprecationWarning, stacklevel=1)
    return (rows[:, 0].astype(float) + rows[:, 3].astype(float)) / 100


private = guard(
    private_predict,
    reference=Reference.from_data(PRIVATE_TRAINING, feature_names=PRIVATE_FEATURES, categorical=["city"]),
    name="faults-private",
    redact=["ssn", "city"],
    window=100,
)


# -- a model that hangs, a store that blocks, a small body limit -----------------------------------------------------------
def hang_on_777(rows: np.ndarray) -> np.ndarray:
    """Sums each row; a row starting with 777 hangs (touching $FAULTS_HUNG) until $FAULTS_RELEASE exists (120 s at most)."""
    if (rows[:, 0] == 777).any():
        Path(os.environ["FAULTS_HUNG"]).touch()
        deadline = time.monotonic() + 120
        while not Path(os.environ["FAULTS_RELEASE"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return rows.sum(axis=1)


hanging = guard(hang_on_777, reference=TRAINING, feature_names=FEATURES, name="faults-hanging", traffic={"timeout": 4})
# The same with two model threads (anyio's pool instead of the model thread).
hanging_threads = guard(
    hang_on_777, reference=TRAINING, feature_names=FEATURES, name="faults-hanging-threads", traffic={"timeout": 4}, threads=2
)
# The same with adaptive batching (the batcher's thread instead of the model thread).
hanging_batched = guard(
    hang_on_777, reference=TRAINING, feature_names=FEATURES, name="faults-hanging-batched", traffic={"timeout": 4}, batching=True
)

# A buffer of 5 rows that makes requests wait for room (up to 5 s) while the store cannot write.
blocking = guard(total, reference=TRAINING, feature_names=FEATURES, name="faults-blocking", overflow="block", store_capacity=5)

small_body = guard(total, reference=TRAINING, feature_names=FEATURES, name="faults-small-body", max_body_bytes=1024 * 1024)
