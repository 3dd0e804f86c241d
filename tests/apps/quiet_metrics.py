"""A guarded service whose /metrics names no feature or category (metrics_labels="none"), for test_metrics_privacy.py."""

import numpy as np

from guarded_serving import Reference, guard

rng = np.random.default_rng(0)
CITIES = np.array(["Springfield", "Shelbyville", "Ogdenville"], dtype=object)
TRAINING = np.column_stack([rng.normal(40, 10, 500), CITIES[rng.integers(0, 3, 500)]]).astype(object)
REFERENCE = Reference.from_data(TRAINING, feature_names=["age", "city"], categorical=["city"])


def predict(rows: np.ndarray) -> list[float]:
    return [float(age) / 100 for age in rows[:, 0]]


quiet = guard(predict, reference=REFERENCE, name="quiet", metrics_labels="none", window=100)
