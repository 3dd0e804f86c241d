"""Values outside the reference's range: the exact chance law, and what it changes for a small reference."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.drift.exceedance import outside_tail


def exact_tail(k: int, n: int, m: int) -> float:
    """P(K >= k) by counting orders, in exact fractions: the lowest ``a`` and highest ``b`` of all values are window
    values, the next ones in from each end reference values, the other m - 2 anywhere between; K = a + b."""
    big = n + m
    orders = sum(comb(big - a - b - 2, m - 2) for a in range(n + 1) for b in range(n + 1 - a) if a + b >= k)
    return float(Fraction(orders, comb(big, m)))


@pytest.mark.parametrize(("n", "m"), [(5, 3), (12, 2), (20, 9), (40, 40), (60, 89)])
def test_the_tail_is_the_count_of_equally_likely_orders(n: int, m: int) -> None:
    ks = np.arange(n + 1)
    got = outside_tail(ks, n, m)
    want = np.array([exact_tail(int(k), n, m) for k in ks])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


def test_the_tail_matches_sampling_from_a_continuous_law() -> None:
    rng = np.random.default_rng(3)
    n, m, draws = 60, 20, 20_000
    reference = rng.random((draws, m))
    window = rng.random((draws, n))
    outside = ((window < reference.min(axis=1, keepdims=True)) | (window > reference.max(axis=1, keepdims=True))).sum(axis=1)
    for k in (1, 5, 10, 20):
        seen = (outside >= k).mean()
        want = float(outside_tail(np.array([k]), n, m)[0])
        assert abs(seen - want) < 4 * np.sqrt(want * (1 - want) / draws) + 1e-4, (k, seen, want)


def test_no_count_no_range_or_a_single_reference_value_is_never_improbable() -> None:
    np.testing.assert_array_equal(outside_tail(np.array([0, 3, 5]), np.array([10, 10, 10]), np.array([100, 1, 0])), [1, 1, 1])


def _quality_flags(reference_rows: int, window: int, repeats: int, shift: float = 0.0, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(repeats):
        monitor = Monitor(Reference.from_data(rng.normal(size=(reference_rows, 4))), window=window)
        rows = rng.normal(size=(window, 4))
        rows[:, 0] *= 1 + shift
        monitor.observe(rows, rows[:, :1])
        check = next(c for c in monitor.health().checks if c.name == "data_quality")
        flagged += check.status.value in ("warn", "alert")
    return flagged


def test_fresh_rows_from_the_reference_law_are_not_flagged_out_of_range_for_an_iris_sized_reference() -> None:
    # 150 reference rows, 1,000 fresh rows of the same law: the binomial test at 2/(m+1) flagged 51 of 200 such
    # references (its rate is only the mean of a Beta(2, m-1) share); the exact law, none.
    assert _quality_flags(150, 1_000, repeats=40) <= 1


def test_values_far_outside_a_small_reference_range_are_still_flagged() -> None:
    # the first feature's spread tripled: a third of its values leave the 150-row reference's range
    assert _quality_flags(150, 1_000, repeats=5, shift=2.0, seed=1) == 5
