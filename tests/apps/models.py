"""A real model served with the README's one-liner: `bentoml serve tests.apps.models:forest`.

A random forest fitted on 3,000 rows of the acceptance world (tests/apps/world.py), guarded with its
training data as the reference, exactly as the README shows: its outputs on those rows are
overconfident, so prediction drift must judge against served traffic instead.
"""

import numpy as np

from guarded_serving import guard

from .world import draw, fitted

X_TRAIN, Y_TRAIN, TARGET = draw(3000, np.random.default_rng(7))
model, predict_proba, _ = fitted("random_forest", X_TRAIN, Y_TRAIN, TARGET)

forest = guard(predict_proba, reference=X_TRAIN, name="forest", window=500)
