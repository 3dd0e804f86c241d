"""The service the fleet tests run as two replicas sharing one PostgreSQL database (GUARDED_SERVING_DB).

A regression model that sums each row, with a reference holding labels and predictions, so that the
concept check judges the realized error of labelled rows. A window of 300 rows and a history slot of
2 seconds keep the tests short.
"""

import numpy as np

from guarded_serving import Reference, guard
from tests.fixtures.data import gaussian

FEATURES = ["a", "b", "c"]
TRAINING = gaussian(2000, 3, seed=0)
LABELS = TRAINING.sum(axis=1) + np.random.default_rng(1).normal(0, 0.1, len(TRAINING))


def predict(rows: np.ndarray) -> np.ndarray:
    return rows.sum(axis=1)


REFERENCE = Reference.from_data(TRAINING, y=LABELS, predictions=predict(TRAINING), feature_names=FEATURES)
service = guard(predict, reference=REFERENCE, name="fleet", window=300, history_interval=2.0)
