"""Heavy-tailed numeric features: healthy windows stay within the false-alarm budget, real shifts are still flagged.

Location, spread and the Wasserstein distance are judged on the features' normal scores (``drift.scores``); on the
values' own scale their resampled null rested on the reference's few top values, and healthy log-normal windows
were flagged many times as often as the budget allows (the cases below flag on the code before the scores).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from guarded_serving import Reference
from guarded_serving.drift import Baseline, Calibration, Chunk, Encoder, assemble, drift_check
from guarded_serving.drift.checks import ALPHA_DATA, DriftDetails
from guarded_serving.drift.columns import WindowColumns
from guarded_serving.drift.scores import NormalScores
from guarded_serving.drift.statistics import GRID, quantiles
from guarded_serving.health import Status
from tests.fixtures.data import heavy_tailed

FEATURES = 20
ROWS = 1_000  # reference rows and window rows


def baseline_of(rows: np.ndarray) -> Baseline:
    names = [f"f{j}" for j in range(rows.shape[1])]
    return Baseline.from_profiles(Reference.from_data(rows, feature_names=names).features)


def drifted(base: Baseline, cal: Calibration, rows: np.ndarray) -> dict[str, str | None]:
    """The features data drift flags in a window of ``rows``, with their reasons."""
    matrix = Encoder(base).encode(rows.tolist(), {}, {})
    window = assemble([Chunk(matrix, None, {}, {})], len(matrix), base.width, None)
    result = drift_check("data_drift", base, cal, WindowColumns.of(window.inputs, base), 100)
    assert isinstance(result.details, DriftDetails)
    return {name: f.reason for name, f in result.details.features.items() if f.drifted}


def flagged_checks(law: str, shape: float, references: int, windows: int, seed: int, rows: int = ROWS) -> int:
    """Healthy checks flagged: ``references`` fresh references of ``rows`` rows, ``windows`` fresh windows each."""
    flagged = 0
    for r in range(references):
        base = baseline_of(heavy_tailed(rows, FEATURES, seed=seed + 1_000 * r, law=law, shape=shape))
        cal = Calibration.fit(base, ROWS, ALPHA_DATA)
        for w in range(windows):
            flagged += bool(drifted(base, cal, heavy_tailed(ROWS, FEATURES, seed=seed + 1_000 * r + w + 1, law=law, shape=shape)))
    return flagged


@pytest.fixture(scope="module")
def log_normal_baseline() -> Baseline:
    return baseline_of(heavy_tailed(ROWS, FEATURES, seed=7))


@pytest.fixture(scope="module")
def log_normal_calibration(log_normal_baseline: Baseline) -> Calibration:
    return Calibration.fit(log_normal_baseline, ROWS, ALPHA_DATA)


def test_healthy_log_normal_windows_are_not_flagged() -> None:
    """Sigma 1.5, 1,000 reference rows, 20 features, 8 references x 8 windows: judged on the values' own scale, 5
    of these 64 checks were flagged (spread tests, one with the mean)."""
    assert flagged_checks("log-normal", 1.5, references=8, windows=8, seed=300) == 0


def test_healthy_zipf_counts_against_a_small_reference_are_rarely_flagged() -> None:
    """Zipf-1.6 counts, 300 reference rows (ties everywhere: they share their mid-probability's score), 20 features,
    6 references x 8 windows: judged on the values' own scale, 24 of these 48 checks were flagged (spread tests
    above all). One still is: a spread test at 4.5 null sds, the window's upper decile above the reference's sparse
    top values (a 300-row reference holds 30 values above its 90th percentile; see the README)."""
    assert flagged_checks("zipf", 1.6, references=6, windows=8, seed=500, rows=300) <= 1


def test_a_log_normal_whose_median_doubles_is_flagged_on_that_feature(
    log_normal_baseline: Baseline, log_normal_calibration: Calibration
) -> None:
    rows = heavy_tailed(ROWS, FEATURES, seed=8)
    rows[:, 3] *= 2.0

    found = drifted(log_normal_baseline, log_normal_calibration, rows)

    assert list(found) == ["f3"]
    assert str(found["f3"]).startswith("mean +")


def test_a_log_normal_whose_sigma_grows_by_a_third_is_flagged_for_its_spread(
    log_normal_baseline: Baseline, log_normal_calibration: Calibration
) -> None:
    rows = heavy_tailed(ROWS, FEATURES, seed=9)
    rows[:, 5] **= 1.3  # sigma 1.5 -> 1.95, the median stays 1

    found = drifted(log_normal_baseline, log_normal_calibration, rows)

    assert list(found) == ["f5"]
    assert "spread x" in str(found["f5"])


def test_a_healthy_log_normal_window_reports_its_effects_in_the_features_own_units(
    log_normal_baseline: Baseline, log_normal_calibration: Calibration
) -> None:
    matrix = Encoder(log_normal_baseline).encode(heavy_tailed(ROWS, FEATURES, seed=10).tolist(), {}, {})
    window = assemble([Chunk(matrix, None, {}, {})], len(matrix), log_normal_baseline.width, None)
    columns = WindowColumns.of(window.inputs, log_normal_baseline)
    result = drift_check("data_drift", log_normal_baseline, log_normal_calibration, columns, 100)
    assert isinstance(result.details, DriftDetails)
    feature = result.details.features["f0"]

    q = quantiles(np.sort(np.asarray(window.inputs)[:, :1], axis=0), np.array([ROWS]), GRID)
    own = (q.mean() - log_normal_baseline.ref_quantiles[:, 0].mean()) / log_normal_baseline.scale[0]
    assert result.status is Status.OK
    assert feature.mean_shift_std == pytest.approx(own, abs=1e-4)


def test_a_value_seen_c_times_after_r_smaller_ones_scores_its_mid_probability() -> None:
    sample = np.array([[0.0] * 50 + [1.0] * 30 + [float(v) for v in range(2, 22)]]).T  # 100 values, 22 distinct
    scores = NormalScores.of(sample, np.array([100]), np.zeros((len(GRID), 1)))

    got = scores(np.array([[0.0], [1.0], [21.0]]))

    np.testing.assert_allclose(got[:, 0], norm.ppf([25 / 100, 65 / 100, 99.5 / 100]))


def test_values_beyond_the_reference_range_score_as_its_extremes() -> None:
    sample = np.sort(np.random.default_rng(3).lognormal(size=(500, 1)), axis=0)
    scores = NormalScores.of(sample, np.array([500]), np.zeros((len(GRID), 1)))

    got = scores(np.array([[-5.0], [0.0], [1e9]]))

    np.testing.assert_allclose(got[:, 0], norm.ppf([0.5 / 500, 0.5 / 500, 1 - 0.5 / 500]))


def test_the_scores_of_a_normal_feature_are_its_standardised_values() -> None:
    sample = np.sort(np.random.default_rng(4).normal(10.0, 2.0, size=(5_000, 1)), axis=0)
    scores = NormalScores.of(sample, np.array([5_000]), np.zeros((len(GRID), 1)))
    values = np.linspace(7.0, 13.0, 7)[:, None]

    np.testing.assert_allclose(scores(values)[:, 0], (values[:, 0] - 10.0) / 2.0, atol=0.05)
