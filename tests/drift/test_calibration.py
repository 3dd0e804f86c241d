"""Calibration: thresholds fitted for a window size, deterministic, shrinking with more rows, never below a minimum effect."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from scipy.stats import norm

from guarded_serving import Reference
from guarded_serving.drift import Baseline, Calibration
from guarded_serving.drift.calibration import MIN_EFFECT, batch_draws
from guarded_serving.drift.statistics import GRID, location_shift, log_spread_ratio, quantile_spread, quantiles, spread_score
from tests.fixtures.data import gaussian

ALPHA = 0.004
LEVELS = np.array(["a", "b", "c", "d"], dtype=object)


def numeric_baseline(features: int, seed: int = 5, rows: int = 2_000) -> Baseline:
    data = gaussian(rows, features, seed=seed)
    return Baseline.from_profiles(Reference.from_data(data, feature_names=[f"f{j}" for j in range(features)]).features)


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    """Three normal features, 2,000 reference rows."""
    return numeric_baseline(3)


@pytest.fixture(scope="module")
def every_method_baseline() -> Baseline:
    """One numeric feature per numeric method and one categorical feature per categorical method."""
    rng = np.random.default_rng(8)
    rows = 3_000
    numeric = {"w": "wasserstein", "k": "ks", "p": "psi", "j": "js"}
    categorical = {"ct": "tv", "cp": "psi", "cj": "js"}
    columns = [rng.gamma(2.0, 1.0, rows) for _ in numeric]
    columns += [rng.choice(LEVELS, rows, p=[0.4, 0.3, 0.2, 0.1]) for _ in categorical]
    data = np.empty((rows, len(columns)), dtype=object)
    for j, column in enumerate(columns):
        data[:, j] = column
    names = [*numeric, *categorical]
    reference = Reference.from_data(data, feature_names=names, categorical=list(categorical))
    return Baseline.from_profiles(reference.features, methods={**numeric, **categorical})


def full_window_factor(cal: Calibration, base: Baseline) -> np.ndarray:
    return cal.widen(cal.n_cal.astype(float), base.reference_sizes())


def test_fit_with_the_same_seed_gives_identical_arrays(baseline: Baseline) -> None:
    first = Calibration.fit(baseline, 500, ALPHA, seed=42)
    second = Calibration.fit(baseline, 500, ALPHA, seed=42)

    for field in ("n_cal", "log_mu", "log_sd", "mean_mu", "mean_sd", "scale_mu", "scale_sd"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field), err_msg=field)


def test_fit_with_another_seed_draws_other_windows(baseline: Baseline) -> None:
    first = Calibration.fit(baseline, 500, ALPHA, seed=42)
    second = Calibration.fit(baseline, 500, ALPHA, seed=43)

    assert not np.array_equal(first.log_mu, second.log_mu)


def test_distance_thresholds_shrink_as_the_window_grows(baseline: Baseline) -> None:
    small = Calibration.fit(baseline, 500, ALPHA)
    large = Calibration.fit(baseline, 2_000, ALPHA)
    small_factor = full_window_factor(small, baseline)
    large_factor = full_window_factor(large, baseline)

    for j in range(baseline.width):
        assert large.distance_threshold(j, "wasserstein", large_factor[j]) < small.distance_threshold(
            j, "wasserstein", small_factor[j]
        )


def test_widen_is_one_for_a_full_window_against_a_reference_drawn_at_its_own_size(baseline: Baseline) -> None:
    cal = Calibration.fit(baseline, 500, ALPHA)

    np.testing.assert_array_equal(cal.m_cal, baseline.reference_sizes())
    np.testing.assert_allclose(cal.widen(np.full(baseline.width, 500.0), baseline.reference_sizes()), 1.0)


def test_widen_is_larger_for_a_partly_filled_window(baseline: Baseline) -> None:
    cal = Calibration.fit(baseline, 500, ALPHA)
    m = baseline.reference_sizes()

    full = cal.widen(np.full(baseline.width, 500.0), m)
    partial = cal.widen(np.full(baseline.width, 125.0), m)

    np.testing.assert_allclose(partial, np.sqrt((1 / 125 + 1 / m) / (1 / 500 + 1 / m)))
    assert (partial > full).all()


def test_widen_of_an_empty_feature_is_infinite(baseline: Baseline) -> None:
    cal = Calibration.fit(baseline, 500, ALPHA)

    assert cal.widen(np.array([0.0, 500.0, 500.0]), baseline.reference_sizes())[0] == math.inf


@pytest.mark.parametrize("window", [50, 1_000, 100_000], ids=["window-50", "window-1000", "window-100000"])
def test_distance_thresholds_never_fall_below_the_minimum_effect(every_method_baseline: Baseline, window: int) -> None:
    base = every_method_baseline
    cal = Calibration.fit(base, window, ALPHA, draws=40)
    factor = full_window_factor(cal, base)

    for j, method in enumerate(base.methods):
        assert cal.distance_threshold(j, method, factor[j]) >= MIN_EFFECT[method], base.names[j]


@pytest.mark.parametrize("window", [50, 1_000], ids=["window-50", "window-1000"])
def test_the_thresholds_of_all_features_at_once_are_each_features_threshold(every_method_baseline: Baseline, window: int) -> None:
    base = every_method_baseline
    cal = Calibration.fit(base, window, ALPHA, draws=40)
    factor = full_window_factor(cal, base) * np.linspace(0.8, 1.6, base.width)  # partly filled windows too
    features = np.arange(base.width)

    at_once = cal.distance_thresholds(features, base.methods, factor)

    assert at_once.tolist() == [cal.distance_threshold(j, m, float(factor[j])) for j, m in enumerate(base.methods)]


def test_tests_count_three_per_ordered_numeric_one_per_point_mass_and_two_per_categorical_feature(
    every_method_baseline: Baseline,
) -> None:
    cal = Calibration.fit(every_method_baseline, 200, ALPHA, draws=10)

    assert not every_method_baseline.shares_tested.any()  # gamma draws: no value holds 5 %
    assert cal.tests == 3 * 4 + 2 * 3


def test_a_discrete_feature_is_one_test_of_its_value_shares() -> None:
    rng = np.random.default_rng(9)
    counts = rng.poisson(2.0, size=(2_000, 1)).astype(float)
    base = Baseline.from_profiles(Reference.from_data(counts, feature_names=["count"]).features)

    cal = Calibration.fit(base, 200, ALPHA, draws=10)

    assert not base.ordered[0]
    assert base.shares_tested[0]
    assert cal.tests == 1


@pytest.mark.parametrize("window", [500, 2_000], ids=["window-500", "window-2000"])
def test_thresholds_from_other_seeds_agree_within_10_percent(baseline: Baseline, window: int) -> None:
    first = Calibration.fit(baseline, window, ALPHA, seed=1)
    second = Calibration.fit(baseline, window, ALPHA, seed=2)

    np.testing.assert_allclose(first.mean_sd, second.mean_sd, rtol=0.1)
    np.testing.assert_allclose(first.scale_sd, second.scale_sd, rtol=0.1)
    for j in range(baseline.width):
        assert first.distance_threshold(j, "wasserstein", 1.0) == pytest.approx(
            second.distance_threshold(j, "wasserstein", 1.0), rel=0.1
        )


def test_the_null_spreads_match_windows_drawn_from_the_population(baseline: Baseline) -> None:
    """The calibration is right: fresh windows and fresh references from the population vary as the draws say."""
    rng = np.random.default_rng(10)
    cal = Calibration.fit(baseline, 500, ALPHA)
    shifts, scores = [], []
    for _ in range(400):
        reference = rng.normal(size=(2_000, 1))
        window = rng.normal(size=(500, 1))
        q_ref = quantiles(np.sort(reference, axis=0), np.array([2_000]), GRID)
        q = quantiles(np.sort(window, axis=0), np.array([500]), GRID)
        shifts.append(location_shift(q, q_ref, np.array([1.0]))[0])
        scores.append(spread_score(log_spread_ratio(quantile_spread(q), quantile_spread(q_ref)))[0])

    assert np.std(shifts) == pytest.approx(cal.mean_sd[0], rel=0.12)
    assert np.std(scores) == pytest.approx(cal.scale_sd[0], rel=0.12)


@pytest.mark.parametrize("features", [1, 2, 5, 20], ids=["1-feature", "2-features", "5-features", "20-features"])
def test_z_values_are_the_bonferroni_quantiles(features: int) -> None:
    cal = Calibration.fit(numeric_baseline(features, rows=300), 100, ALPHA, draws=10)

    assert cal.z_one_sided == pytest.approx(norm.isf(ALPHA / (3 * features)))
    assert cal.z_two_sided == pytest.approx(norm.isf(ALPHA / (6 * features)))


def test_z_values_grow_with_the_number_of_tests() -> None:
    cals = [Calibration.fit(numeric_baseline(features, rows=300), 100, ALPHA, draws=10) for features in (1, 2, 5, 20)]

    assert [c.z_one_sided for c in cals] == sorted(c.z_one_sided for c in cals)
    assert len({c.z_one_sided for c in cals}) == 4
    assert all(c.z_two_sided > c.z_one_sided for c in cals)


def test_a_categorical_feature_without_any_reference_category_is_calibrated_without_failing() -> None:
    rows = [[float(i), None] for i in range(300)]  # "b" is missing in every training row (or redacted)
    base = Baseline.from_profiles(Reference.from_data(rows, feature_names=["a", "b"], categorical=["b"]).features)

    calibration = Calibration.fit(base, 200, ALPHA)

    assert math.isfinite(calibration.log_mu[0])
    assert math.isnan(calibration.log_mu[1])


def _fit_peak_bytes(base: Baseline) -> int:
    """The most memory a calibration held at once above what was held before it, numpy's arrays included."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        Calibration.fit(base, 1_000, ALPHA, draws=200)  # two batches of a narrow model's 100 draws
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_a_wide_model_is_calibrated_in_no_more_memory_than_a_128_feature_one() -> None:
    """Each batch of draws held ~6 arrays of draws x features x 194 quantiles: at 1,000 features a calibration peaked
    at 1.1 GB. A wider model now draws fewer at once; what it keeps per feature (a copy of its sample, a few arrays
    per draw) still grows with it, a few MB here."""
    narrow, wide = numeric_baseline(128, rows=1_000), numeric_baseline(1_024, rows=1_000)
    narrow_peak, wide_peak = _fit_peak_bytes(narrow), _fit_peak_bytes(wide)
    kept_per_feature = 1_000 * 8 + 1_000 * 8 * 6  # its sample copied once, six arrays of one value per draw
    assert wide_peak < narrow_peak + (1_024 - 128) * kept_per_feature * 2, (narrow_peak >> 20, wide_peak >> 20)


def test_a_wide_model_draws_fewer_at_once_from_the_same_null() -> None:
    assert batch_draws(3) == batch_draws(128) == 100  # the thresholds of every model up to 128 features are as before
    assert batch_draws(1_024) == 12
    assert batch_draws(1_000_000) == 1
    # 300 features of one distribution, drawn 42 at a time, against 100 of them drawn 100 at a time: the same null
    wide = Calibration.fit(numeric_baseline(300, rows=500), 500, ALPHA, draws=200)
    narrow = Calibration.fit(numeric_baseline(100, rows=500), 500, ALPHA, draws=200)
    # (the fitted null per feature: the thresholds also carry the budget's split over 3 tests a feature)
    assert np.isfinite(wide.log_mu).all()
    assert np.isfinite(wide.log_sd).all()
    assert np.median(wide.log_mu) == pytest.approx(np.median(narrow.log_mu), abs=0.03)
    assert np.median(wide.log_sd) == pytest.approx(np.median(narrow.log_sd), rel=0.05)
    assert np.median(wide.mean_sd) == pytest.approx(np.median(narrow.mean_sd), rel=0.05)
