"""What the drift check judges a window by, per count of present values: computed once, the same numbers."""

from __future__ import annotations

import numpy as np

from guarded_serving import Reference
from guarded_serving.drift import Baseline, Calibration
from guarded_serving.drift.limits import Limits
from guarded_serving.drift.statistics import quantiles

NAN = np.nan


def gaussian_baseline(features: int) -> Baseline:
    return Baseline.from_profiles(Reference.from_data(np.random.default_rng(4).normal(size=(500, features))).features)


def test_limits_for_the_same_counts_are_computed_once_and_for_other_counts_again() -> None:
    base = gaussian_baseline(3)
    cal = Calibration.fit(base, 200, 0.01, draws=50)
    full = np.array([200, 200, 200])

    first = Limits.of(base, cal, full, 200)

    assert Limits.of(base, cal, full.copy(), 200) is first
    assert Limits.of(base, cal, np.array([200, 150, 200]), 200) is not first


def test_limits_hold_the_calibrations_thresholds_for_those_counts() -> None:
    base = gaussian_baseline(3)
    cal = Calibration.fit(base, 200, 0.01, draws=50)
    present = np.array([200, 120, 2])

    limits = Limits.of(base, cal, present, 200)

    factor = cal.widen(present, base.reference_sizes())
    np.testing.assert_array_equal(limits.factor, factor)
    np.testing.assert_array_equal(limits.thresholds, cal.distance_thresholds(base.num_idx, base.numeric_methods, factor))


def test_limits_quantiles_are_the_quantiles_of_the_sorted_rows() -> None:
    base = gaussian_baseline(3)
    cal = Calibration.fit(base, 6, 0.01, draws=50)
    rows = np.array([[-1.0, 0.5, 2.0, 3.0, 8.0, 9.5], [4.0, 4.0, 5.0, NAN, NAN, NAN], [NAN] * 6])
    present = np.array([6, 3, 0])

    limits = Limits.of(base, cal, present, 6)

    np.testing.assert_array_equal(limits.quantiles(rows), quantiles(np.ascontiguousarray(rows.T), present), strict=True)


def test_limits_hold_what_the_verdicts_read_for_those_counts() -> None:
    base = gaussian_baseline(3)
    cal = Calibration.fit(base, 200, 0.01, draws=50)
    present = np.array([200, 1, 150])

    limits = Limits.of(base, cal, present, 200)

    judged = (present >= 2) & base.ordered
    np.testing.assert_array_equal(limits.judged, judged)
    assert limits.spread_judged == (judged & limits.spread_testable).tolist()
    assert limits.rows == [200, 1, 150]
    assert limits.few
    assert limits.threshold_list == limits.thresholds.tolist()
    thresholds = limits.thresholds.tolist()
    assert limits.shown_threshold == [round(t, 4) if o else None for t, o in zip(thresholds, base.ordered, strict=True)]
    np.testing.assert_array_equal(limits.mean_mu, cal.mean_mu[base.num_idx])
    assert limits.names == base.names
    assert limits.centre_list == limits.spread_centre.tolist()
    assert limits.limit_list == limits.spread_limits.tolist()
