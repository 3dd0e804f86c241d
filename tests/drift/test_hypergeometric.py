"""The numpy hypergeometric tails equal scipy.stats.hypergeom's, which the share test used before, to 1e-12.

Beyond about 100,000 values in all, scipy's (Boost's) own probabilities drift from the exact ones by ~7e-11
while these stay within 1e-13 of exact rational arithmetic; there the comparison is with that arithmetic.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import hypergeom

from guarded_serving.drift.hypergeometric import lower_tail, pmf, two_sided, upper_tail

# (window values, reference values): a small reference, the bench's window and reference, equal sizes, a big reference
SIZES = [(500, 72), (2000, 10_000), (10_000, 10_000), (100, 20), (3, 5)]


def cases(window: int, reference: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bins of every share (and the support's ends) with window counts from the centre to far in both tails."""
    rng = np.random.default_rng(seed)
    N = float(window + reference)
    K = rng.integers(0, int(N) + 1, 3000).astype(float)
    K[:40] = rng.integers(0, 6, 40)  # rare values
    K[40:80] = N - rng.integers(0, 6, 40)  # a point mass holding nearly everything
    mean = K * window / N
    sd = np.sqrt(window * K * (N - K) * (N - window) / (N * N * max(N - 1, 1)))
    k = np.round(mean + rng.normal(0, 4, len(K)) * sd)
    k[80:90], k[90:100] = 0, window  # the ends
    k = np.clip(k, np.maximum(0, window + K - N), np.minimum(K, window))
    return k, np.full_like(K, N), K, np.full_like(K, float(window))


def assert_equal_to_1e12(mine: np.ndarray, scipys: np.ndarray) -> None:
    np.testing.assert_allclose(mine, scipys, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize(("window", "reference"), SIZES, ids=[f"window {w}, reference {r}" for w, r in SIZES])
def test_the_probability_of_a_count_is_scipys(window: int, reference: int) -> None:
    k, N, K, n = cases(window, reference, seed=1)

    assert_equal_to_1e12(pmf(k, N, K, n), hypergeom.pmf(k, N, K, n))


@pytest.mark.parametrize(("window", "reference"), SIZES, ids=[f"window {w}, reference {r}" for w, r in SIZES])
def test_both_tails_are_scipys(window: int, reference: int) -> None:
    k, N, K, n = cases(window, reference, seed=2)

    assert_equal_to_1e12(upper_tail(k, N, K, n), hypergeom.sf(k - 1, N, K, n))
    assert_equal_to_1e12(lower_tail(k, N, K, n), hypergeom.cdf(k, N, K, n))


@pytest.mark.parametrize(("window", "reference"), SIZES, ids=[f"window {w}, reference {r}" for w, r in SIZES])
def test_the_two_sided_p_value_is_the_one_computed_with_scipy(window: int, reference: int) -> None:
    k, N, K, n = cases(window, reference, seed=3)
    with_scipy = np.minimum(2 * np.minimum(hypergeom.sf(k - 1, N, K, n), hypergeom.cdf(k, N, K, n)), 1.0)

    assert_equal_to_1e12(two_sided(k, N, K, n), with_scipy)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    N=st.integers(1, 400),
    K_share=st.floats(0, 1),
    n_share=st.floats(0, 1),
    k_share=st.floats(0, 1),
)
def test_any_small_table_gives_scipys_answers(N: int, K_share: float, n_share: float, k_share: float) -> None:
    K, n = round(K_share * N), round(n_share * N)
    k = round(max(0, n + K - N) + k_share * (min(K, n) - max(0, n + K - N)))
    args = (np.array([k]), np.array([N]), np.array([K]), np.array([n]))

    assert_equal_to_1e12(pmf(*args), hypergeom.pmf(*args))
    assert_equal_to_1e12(upper_tail(*args), hypergeom.sf(k - 1, N, K, n))
    assert_equal_to_1e12(lower_tail(*args), hypergeom.cdf(*args))


def test_large_tables_are_exact_where_scipy_is_not() -> None:
    k, N, K, n = (a[::150] for a in cases(20_000, 200_000, seed=4))
    exact = [
        Fraction(math.comb(int(b), int(x)) * math.comb(int(t - b), int(d - x)), math.comb(int(t), int(d)))
        for x, t, b, d in zip(k, N, K, n, strict=True)
    ]

    mine = pmf(k, N, K, n)

    np.testing.assert_allclose(mine, [float(e) for e in exact], rtol=1e-13, atol=1e-300)
    with_scipy = np.minimum(2 * np.minimum(hypergeom.sf(k - 1, N, K, n), hypergeom.cdf(k, N, K, n)), 1.0)
    np.testing.assert_allclose(two_sided(k, N, K, n), with_scipy, rtol=2e-10, atol=1e-300)  # scipy's own error


def test_counts_outside_the_support_have_the_probability_scipy_gives() -> None:
    k, N, K, n = np.array([-1.0, 11.0, 4.0]), np.array([30.0] * 3), np.array([10.0] * 3), np.array([25.0] * 3)

    np.testing.assert_array_equal(pmf(k, N, K, n), [0.0, 0.0, 0.0])  # 25 drawn of 30 with 10 marked: 5 to 10 marked
    np.testing.assert_array_equal(upper_tail(k, N, K, n), hypergeom.sf(k - 1, N, K, n))
    np.testing.assert_array_equal(lower_tail(k, N, K, n), hypergeom.cdf(k, N, K, n))


def test_arguments_scipy_rejects_give_nan_as_scipy_does() -> None:
    k, N, K, n = np.array([1.0, 1.0, 1.0]), np.array([10.0, 10.0, 10.5]), np.array([11.0, 3.0, 3.0]), np.array([5.0, 12.0, 5.0])

    assert np.isnan(two_sided(k, N, K, n)).all()
    assert np.isnan(hypergeom.sf(k - 1, N, K, n)).all()
