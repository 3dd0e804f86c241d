"""Guarded services for the fault tests (`bentoml serve tests.apps.faults:<name>`): sampling with labels."""

import numpy as np

from guarded_serving import Reference, guard

TRAINING = np.random.default_rng(0).normal(size=(500, 3))
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
