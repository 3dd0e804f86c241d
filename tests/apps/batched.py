"""Guarded services with adaptive batching, for tests/test_batching.py and bench/batching.py.

The model's cost is per call, not per row, as a small neural network's is at small batch sizes: a fixed
stretch of numeric Python (no sleep, so the CPU is really spent) plus a sum of each row. A first value of
999 makes it raise, for the whole call it is in.
"""

import os
import time

import numpy as np

from guarded_serving import Reference, guard
from tests.fixtures.data import gaussian

FEATURES = ["a", "b", "c"]
REFERENCE = Reference.from_data(gaussian(500, 3, seed=0), feature_names=FEATURES)
CALL_COST_S = float(os.environ.get("BATCHED_CALL_COST_S", "0.001"))


def _calibrate(seconds: float) -> int:
    """Loop iterations that take ``seconds`` of this thread's CPU time (not wall time: on a busy machine the
    thread is preempted, and a wall-clock calibration would make each call cheaper than it claims)."""
    n, elapsed = 10_000, 0.0
    while elapsed < 0.05:
        n *= 2
        started = time.thread_time()
        _spin(n)
        elapsed = time.thread_time() - started
    n = max(1, int(n * seconds / elapsed))
    started = time.thread_time()  # once more at the size used: a short loop costs more per turn
    for _ in range(20):
        _spin(n)
    return max(1, int(n * seconds * 20 / (time.thread_time() - started)))


def _spin(n: int) -> float:
    x = 0.0
    for i in range(n):
        x += i * 1e-9
    return x


SPINS = _calibrate(CALL_COST_S)


def costly_predict(rows: np.ndarray) -> np.ndarray:
    _spin(SPINS)
    if (rows[:, 0] == 999).any():
        raise ValueError("the model cannot handle 999")
    return rows.sum(axis=1)


# Requests wait up to 300 ms for others to join their batch: the tests' concurrent requests share one.
waiting = guard(costly_predict, reference=REFERENCE, name="batched", batching={"max_batch_size": 64, "max_latency_ms": 300})

# The benchmark's pair: the same model with and without batching (no added wait).
batched = guard(costly_predict, reference=REFERENCE, name="bench-batched", batching={"max_batch_size": 64})
unbatched = guard(costly_predict, reference=REFERENCE, name="bench-unbatched")
