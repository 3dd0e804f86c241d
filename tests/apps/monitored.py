"""A BentoML service written the 1.4 way that logs with ``bentoml.monitor``, for tests/test_monitor_backend.py.

It knows nothing of guarded_serving but its configuration (``monitoring``: our backend, the reference's
path from ``$MONITORED_REFERENCE``) and the one line that mounts ``/health/model``.
"""

import os

import bentoml
import numpy as np

from guarded_serving.bentoml_monitor import mount_health

MONITORING = {
    "enabled": True,
    "type": "guarded_serving.bentoml_monitor.GuardedMonitor",
    "options": {"reference": os.environ.get("MONITORED_REFERENCE", "reference.json"), "window": 200},
}


@bentoml.service(monitoring=MONITORING)
class Scorer:
    @bentoml.api
    def score(self, rows: np.ndarray, labels: list[float] | None = None) -> np.ndarray:
        predictions = rows.sum(axis=1)
        with bentoml.monitor("scorer") as mon:
            mon.log_batch(rows[:, 0].tolist(), "a", "feature", "numerical")
            mon.log_batch(rows[:, 1].tolist(), "b", "feature", "numerical")
            mon.log_batch(rows[:, 2].tolist(), "c", "feature", "numerical")
            mon.log_batch(predictions.tolist(), "prediction", "prediction", "numerical")
            if labels is not None:
                mon.log_batch(labels, "label", "target", "numerical")
        return predictions


mount_health(Scorer, "scorer")
