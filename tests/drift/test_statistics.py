"""The drift statistics: pure functions of (reference summary, window), checked on inputs small enough to do by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import binom, hypergeom, ks_2samp

from guarded_serving.drift.statistics import (
    GRID,
    binomial_sf,
    jensen_shannon,
    jensen_shannon_rows,
    ks_statistic,
    location_shift,
    log_spread_ratio,
    proportions_in_bins,
    psi,
    psi_rows,
    quantile_spread,
    quantiles,
    quantiles_by_feature,
    share_p_values,
    spread_score,
    total_variation,
    wasserstein,
)

NAN = np.nan


def sorted_columns(*columns: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Columns of different lengths as the statistics expect them: each sorted, NaN-padded at the end, with counts."""
    rows = max((len(c) for c in columns), default=0)
    matrix = np.full((max(rows, 1), len(columns)), NAN)
    for j, column in enumerate(columns):
        matrix[: len(column), j] = np.sort(column)
    return matrix, np.array([len(c) for c in columns], dtype=np.intp)


# -- quantiles -----------------------------------------------------------------------------------------------------


def test_quantiles_interpolate_linearly_between_order_statistics() -> None:
    values, counts = sorted_columns([1.0, 2.0, 3.0, 4.0])

    result = quantiles(values, counts, np.array([0.0, 0.25, 0.5, 0.9, 1.0]))

    np.testing.assert_allclose(result[:, 0], [1.0, 1.75, 2.5, 3.7, 4.0])


def test_quantiles_ignore_the_nan_padding_of_a_shorter_column() -> None:
    values, counts = sorted_columns([1.0, 2.0, 3.0, 4.0], [10.0, 20.0])

    result = quantiles(values, counts, np.array([0.0, 0.5, 1.0]))

    np.testing.assert_allclose(result, [[1.0, 10.0], [2.5, 15.0], [4.0, 20.0]])


def test_quantiles_of_a_column_with_no_values_are_nan() -> None:
    values, counts = sorted_columns([5.0, 7.0], [])

    result = quantiles(values, counts, np.array([0.0, 0.5, 1.0]))

    np.testing.assert_allclose(result[:, 0], [5.0, 6.0, 7.0])
    assert np.isnan(result[:, 1]).all()


def test_quantiles_of_a_single_value_are_that_value() -> None:
    values, counts = sorted_columns([3.5])

    assert quantiles(values, counts).tolist() == [[3.5]] * len(GRID)


def test_quantiles_by_feature_are_the_quantiles_of_the_same_columns_laid_out_one_row_per_feature() -> None:
    values, counts = sorted_columns([1.0, 2.0, 3.0, 4.0], [10.0, 20.0], [], [-1.5, 0.25, 0.25, 7.0, 9.0])

    by_feature = quantiles_by_feature(np.ascontiguousarray(values.T), counts)

    np.testing.assert_array_equal(by_feature, quantiles(values, counts))


# -- location and spread -------------------------------------------------------------------------------------------


def test_wasserstein_of_identical_quantile_functions_is_zero() -> None:
    q = np.array([[1.0, -2.0], [2.0, 0.0], [4.0, 3.0]])

    assert wasserstein(q, q.copy(), np.array([1.0, 5.0])).tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("shift", "scale"), [(1.0, 1.0), (3.0, 2.0), (-0.5, 0.25)], ids=["c1-s1", "c3-s2", "c-0.5-s0.25"])
def test_wasserstein_of_a_shift_is_the_shift_in_reference_stds(shift: float, scale: float) -> None:
    reference = np.array([[0.0], [1.0], [5.0]])

    result = wasserstein(reference + shift, reference, np.array([scale]))

    assert result[0] == pytest.approx(abs(shift) / scale)


def test_wasserstein_averages_the_absolute_gaps_between_quantile_functions() -> None:
    window = np.array([[0.0], [2.0], [2.0], [4.0]])
    reference = np.array([[1.0], [1.0], [1.0], [1.0]])

    assert wasserstein(window, reference, np.array([2.0]))[0] == pytest.approx((1 + 1 + 1 + 3) / 4 / 2)


def test_location_shift_is_signed_and_in_reference_stds() -> None:
    reference = np.array([[0.0, 10.0], [2.0, 20.0]])
    window = np.array([[3.0, 0.0], [5.0, 10.0]])

    result = location_shift(window, reference, np.array([1.5, 5.0]))

    np.testing.assert_allclose(result, [3.0 / 1.5, -10.0 / 5.0])


def test_quantile_spread_is_the_root_mean_square_deviation_around_the_mean() -> None:
    q = np.array([[1.0, 4.0], [2.0, 4.0], [3.0, 4.0], [6.0, 4.0]])

    np.testing.assert_allclose(quantile_spread(q), [np.sqrt((4 + 1 + 0 + 9) / 4), 0.0])


def test_log_spread_ratio_is_the_log_of_window_over_reference() -> None:
    result = log_spread_ratio(np.array([2.0, 0.5]), np.array([1.0, 1.0]))

    np.testing.assert_allclose(result, [math.log(2.0), math.log(0.5)])


def test_log_spread_ratio_of_a_constant_window_is_minus_infinity() -> None:
    assert log_spread_ratio(np.array([0.0]), np.array([1.0]))[0] == -math.inf


# -- Kolmogorov-Smirnov --------------------------------------------------------------------------------------------


def test_ks_statistic_matches_scipy_for_columns_of_different_lengths() -> None:
    rng = np.random.default_rng(3)
    window_columns = [rng.normal(0, 1, 40), rng.normal(0.5, 1, 17), rng.exponential(1, 63), rng.integers(0, 4, 25).astype(float)]
    reference_columns = [
        rng.normal(0, 1, 90),
        rng.normal(0, 1, 31),
        rng.exponential(1.5, 120),
        rng.integers(0, 5, 50).astype(float),
    ]
    window, counts = sorted_columns(*window_columns)
    reference, reference_counts = sorted_columns(*reference_columns)

    result = ks_statistic(window, counts, reference, reference_counts)

    expected = [ks_2samp(w, r).statistic for w, r in zip(window_columns, reference_columns, strict=True)]
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)


def test_ks_statistic_of_disjoint_samples_is_one() -> None:
    window, counts = sorted_columns([5.0, 6.0, 7.0])
    reference, reference_counts = sorted_columns([1.0, 2.0])

    assert ks_statistic(window, counts, reference, reference_counts).tolist() == [1.0]


def test_ks_statistic_of_an_empty_column_is_nan() -> None:
    window, counts = sorted_columns([1.0], [])
    reference, reference_counts = sorted_columns([1.0], [2.0])

    result = ks_statistic(window, counts, reference, reference_counts)

    assert result[0] == 0.0
    assert math.isnan(result[1])


# -- binned distances ----------------------------------------------------------------------------------------------


def test_proportions_in_bins_count_present_values_with_right_closed_edges() -> None:
    values = np.array([0.0, 1.0, 2.0, 3.0, NAN])

    result = proportions_in_bins(values, np.array([1.0, 2.5]))

    assert result.tolist() == [0.25, 0.5, 0.25]  # 0 | 1, 2 | 3 ; a value equal to an edge goes right


def test_proportions_in_bins_of_no_values_are_all_zero() -> None:
    assert proportions_in_bins(np.array([NAN, NAN]), np.array([1.0])).tolist() == [0.0, 0.0]


def test_psi_of_identical_proportions_is_zero() -> None:
    p = np.array([0.2, 0.3, 0.5])

    assert psi(p, p.copy()) == 0.0


def test_psi_of_a_hand_example() -> None:
    # (0.5 - 0.25) ln(0.5 / 0.25) + (0.5 - 0.75) ln(0.5 / 0.75) = 0.25 ln 2 + 0.25 ln 1.5 = ln(3) / 4
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(math.log(3) / 4)


def test_psi_floors_an_empty_bin_instead_of_returning_infinity() -> None:
    result = psi(np.array([1.0, 0.0]), np.array([0.5, 0.5]))

    expected = 0.5 * math.log(2) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert result == pytest.approx(expected)


def test_jensen_shannon_of_identical_proportions_is_zero() -> None:
    p = np.array([0.1, 0.6, 0.3])

    assert jensen_shannon(p, p.copy()) == 0.0


def test_jensen_shannon_of_disjoint_proportions_is_one() -> None:
    assert jensen_shannon(np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.0, 0.0, 0.25, 0.75])) == pytest.approx(1.0)


def test_jensen_shannon_normalises_counts_to_proportions() -> None:
    assert jensen_shannon(np.array([2.0, 6.0]), np.array([0.25, 0.75])) == pytest.approx(0.0, abs=1e-15)


def test_total_variation_is_half_the_l1_distance() -> None:
    assert total_variation(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.5, 0.25])) == pytest.approx(0.25)


@pytest.mark.parametrize(("rows", "single"), [(psi_rows, psi), (jensen_shannon_rows, jensen_shannon)], ids=["psi", "js"])
def test_row_wise_distances_match_the_single_vector_ones_on_zero_padded_bins(rows: object, single: object) -> None:
    # features with 3 and 2 bins, padded with zeros to 3 as the baseline's bin matrix is
    window = np.array([[0.2, 0.5, 0.3], [0.9, 0.1, 0.0]])
    reference = np.array([[0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])

    result = rows(window, reference)  # type: ignore[operator]

    expected = [single(window[0], reference[0]), single(window[1, :2], reference[1, :2])]  # type: ignore[operator]
    np.testing.assert_allclose(result, expected, rtol=1e-12)


# -- invariants ----------------------------------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False)
samples = arrays(np.float64, st.integers(1, 40), elements=finite)


def as_proportions(w: list[float]) -> np.ndarray:
    p = np.asarray(w, dtype=float) + 1e-3
    return np.asarray(p / p.sum())


@st.composite
def proportion_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    bins = draw(st.integers(2, 8))
    pair = st.lists(st.floats(min_value=0.0, max_value=1.0, allow_subnormal=False), min_size=bins, max_size=bins)
    return as_proportions(draw(pair)), as_proportions(draw(pair))


PROPORTION_DISTANCES = {"psi": psi, "js": jensen_shannon, "tv": total_variation}


@settings(max_examples=60, deadline=None)
@given(sample=samples)
def test_sample_distances_are_zero_against_itself(sample: np.ndarray) -> None:
    values, counts = sorted_columns(list(sample))
    q = quantiles(values, counts)
    scale = np.array([max(float(np.std(sample)), 1e-12)])

    assert wasserstein(q, q, scale).tolist() == [0.0]
    assert location_shift(q, q, scale).tolist() == [0.0]
    assert ks_statistic(values, counts, values, counts).tolist() == [0.0]


@settings(max_examples=60, deadline=None)
@given(window=samples, reference=samples)
def test_sample_distances_are_never_negative(window: np.ndarray, reference: np.ndarray) -> None:
    w, w_counts = sorted_columns(list(window))
    r, r_counts = sorted_columns(list(reference))
    scale = np.array([max(float(np.std(reference)), 1e-12)])

    assert wasserstein(quantiles(w, w_counts), quantiles(r, r_counts), scale)[0] >= 0.0
    assert 0.0 <= ks_statistic(w, w_counts, r, r_counts)[0] <= 1.0


@pytest.mark.parametrize("name", sorted(PROPORTION_DISTANCES))
@settings(max_examples=60, deadline=None)
@given(pair=proportion_pairs())
def test_proportion_distances_are_zero_against_itself(name: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, _ = pair

    assert PROPORTION_DISTANCES[name](p, p.copy()) == 0.0


@pytest.mark.parametrize("name", sorted(PROPORTION_DISTANCES))
@settings(max_examples=60, deadline=None)
@given(pair=proportion_pairs())
@example(  # two vectors one rounding apart: the Jensen-Shannon sum came out as -8e-17
    pair=(
        np.array([1 / 1004, 1 / 1004, 1 - 3 / 1004, 1 / 1004]),
        np.array([1 / 1004, 1 / 1004, 1 - 3 / 1004, 1 / 1004 + 1e-10]),
    )
)
def test_proportion_distances_are_never_negative(name: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair

    assert PROPORTION_DISTANCES[name](p, q) >= 0.0


@pytest.mark.parametrize("name", sorted(PROPORTION_DISTANCES))
@settings(max_examples=60, deadline=None)
@given(pair=proportion_pairs())
def test_proportion_distances_are_symmetric(name: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    distance = PROPORTION_DISTANCES[name]

    assert distance(p, q) == pytest.approx(distance(q, p), rel=1e-9, abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(pair=proportion_pairs())
def test_jensen_shannon_is_at_most_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    assert jensen_shannon(*pair) <= 1.0 + 1e-12


# -- the exact test of bin shares, the spread score ------------------------------------------------------------------


def test_share_p_values_are_fishers_exact_two_sided_by_doubling_the_smaller_tail() -> None:
    window, n, reference, m = 61, 100, 18, 72

    p = share_p_values(np.array([window]), np.array([n]), np.array([reference]), np.array([m]))[0]

    lower = hypergeom.cdf(window, n + m, window + reference, n)
    upper = hypergeom.sf(window - 1, n + m, window + reference, n)
    assert p == pytest.approx(min(1.0, 2 * min(lower, upper)))
    assert p < 1e-5


def test_equal_shares_have_a_p_value_of_one() -> None:
    p = share_p_values(np.array([50.0, 0.0]), np.array([100.0, 100.0]), np.array([500.0, 0.0]), np.array([1000.0, 1000.0]))

    np.testing.assert_allclose(p, [1.0, 1.0])


def test_an_empty_sample_has_no_evidence() -> None:
    p = share_p_values(np.array([0.0]), np.array([0.0]), np.array([10.0]), np.array([100.0]))

    assert p[0] == 1.0


@settings(max_examples=40, deadline=None, derandomize=True)
@given(window=st.integers(0, 200), reference=st.integers(0, 500))
def test_share_p_values_are_probabilities(window: int, reference: int) -> None:
    p = share_p_values(np.array([window]), np.array([200]), np.array([reference]), np.array([500]))[0]

    assert 0.0 <= p <= 1.0


def test_the_spread_score_is_the_cube_root_of_the_variance_ratio() -> None:
    np.testing.assert_allclose(spread_score(np.log(np.array([2.0, 1.0, 0.5]))), np.array([4.0, 1.0, 0.25]) ** (1 / 3))


def test_the_spread_score_of_a_constant_window_is_nan() -> None:
    assert np.isnan(spread_score(np.array([-np.inf]))[0])


# -- binomial tail -------------------------------------------------------------------------------------------------


def test_binomial_sf_is_scipys_binom_sf_bit_for_bit_inside_and_outside_the_support() -> None:
    rng = np.random.default_rng(5)
    n = rng.integers(0, 3000, 20_000).astype(float)
    k = np.floor(rng.random(20_000) * (n + 4)) - 2  # from below the support to past it
    p = np.where(rng.random(20_000) < 0.2, rng.random(20_000) * 1e-3, rng.random(20_000))

    np.testing.assert_array_equal(binomial_sf(k, n, p), binom.sf(k, n, p))


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(-1.0, 0.0, 0.5), (0.0, 0.0, 0.5), (3.0, 2.0, 0.5), (NAN, 10.0, 0.5), (1.0, 10.0, NAN), (1.0, 10.0, 1.5), (1.0, -1.0, 0.5)],
    ids=["below-support", "empty", "past-support", "nan-count", "nan-share", "share-above-one", "negative-size"],
)
def test_binomial_sf_at_the_edges_is_scipys(k: float, n: float, p: float) -> None:
    np.testing.assert_array_equal(binomial_sf(np.array([k]), np.array([n]), np.array([p])), binom.sf(k, n, p))
