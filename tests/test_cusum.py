"""The change detector moved on from its last run finds the alarms a fresh run finds, bit for bit, and the fresh
run finds those of the detector as first written (a plain loop over every row, kept here as the oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from guarded_serving.concept import ALPHA_CONCEPT, CUSUM_HORIZON
from guarded_serving.cusum import CusumRun, cusum_alarms

THRESHOLD = math.log(CUSUM_HORIZON / ALPHA_CONCEPT)


def first_written(errors: np.ndarray, p0: float, threshold: float) -> list[int]:
    """The CUSUM as concept.py first ran it: every row, from the start."""
    alarms: list[int] = []
    base = min(max(p0, 1e-4), 0.9)

    def steps(rate: float) -> tuple[float, float]:
        up = min(max(2 * rate, rate + 0.05), 0.99)
        return math.log(up / rate), math.log((1 - up) / (1 - rate))

    step_error, step_ok = steps(base)
    total = 0.0
    since = 0
    for i, e in enumerate(errors.tolist()):
        if total == 0.0:
            since = i
        total += step_error if e else step_ok
        total = max(total, 0.0)
        if total > threshold:
            alarms.append(i)
            observed = float(np.mean(errors[since : i + 1]))
            base = min(max(min(max(2 * base, base + 0.05), 0.99), observed), 0.9)
            step_error, step_ok = steps(base)
            total = 0.0
    return alarms


def errors_with_changes(rng: np.random.Generator, rows: int, p0: float) -> np.ndarray:
    """0/1 errors at rate ``p0`` with stretches at higher rates (alarms, and rates set by them)."""
    rates = np.full(rows, p0)
    for _ in range(int(rng.integers(0, 4))):
        start = int(rng.integers(0, rows))
        rates[start : start + int(rng.integers(20, 600))] = rng.uniform(p0, 0.9)
    return (rng.random(rows) < rates).astype(float)


@pytest.mark.parametrize("seed", range(40))
def test_a_run_moved_on_alarms_where_a_fresh_run_does(seed: int) -> None:
    """Windows moved by requests (oldest rows left, new ones came), some with rows changed among the kept ones
    (labels that arrived late), some with a wrong guess of how many rows left: the alarms, the rates they set
    and the rows where the sum was zero are the fresh run's."""
    rng = np.random.default_rng(seed)
    p0 = float(rng.choice([0.005, 0.05, 0.15, 0.3]))
    stream = errors_with_changes(rng, 12_000, p0)
    start, size = 0, 2_000
    run = CusumRun.of(stream[start : start + size], p0, THRESHOLD)
    for _ in range(25):
        departed, arrived = int(rng.integers(0, 300)), int(rng.integers(0, 300))
        start += departed
        size = max(size - departed + arrived, 1)
        errors = stream[start : start + size].copy()
        if rng.random() < 0.2:  # a label for an old row changed its error
            errors[int(rng.integers(0, size))] = 1.0
        guess = departed if rng.random() < 0.8 else int(rng.integers(0, 400))
        moved = run.moved(errors, p0, THRESHOLD, guess)
        fresh = CusumRun.of(errors, p0, THRESHOLD)

        assert moved.alarms == fresh.alarms == first_written(errors, p0, THRESHOLD)
        assert moved.bases == fresh.bases
        assert np.array_equal(moved.zeros, fresh.zeros)
        run = moved


def test_a_run_moved_against_another_baseline_is_run_afresh() -> None:
    errors = (np.random.default_rng(3).random(3_000) < 0.3).astype(float)
    run = CusumRun.of(errors[:2_000], 0.1, THRESHOLD)

    moved = run.moved(errors[100:2_100], 0.3, THRESHOLD, 100)

    assert moved.alarms == first_written(errors[100:2_100], 0.3, THRESHOLD)


@pytest.mark.parametrize("seed", range(10))
def test_cusum_alarms_are_the_first_written_loop_s(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    p0 = float(rng.choice([0.001, 0.02, 0.1, 0.4, 0.95]))
    errors = errors_with_changes(rng, 5_000, min(p0, 0.9))

    assert cusum_alarms(errors, p0, THRESHOLD) == first_written(errors, p0, THRESHOLD)
