"""Values missing at random: the missing-rate test holds its share of the budget for a small reference, and a
missing rate that rose is still flagged.

The reference's missing rate is itself a count of few values when the reference is small or the rate low. Taken as
exact plus three standard errors estimated at that rate, a 150-row reference that happened to hold none or one
missing value of a feature set a bound below the true rate, and a healthy window of 1,000 rows was flagged: one
healthy check in five for 20 features 3 % missing. The two counts are now compared by Fisher's exact test.
"""

from __future__ import annotations

import numpy as np

from guarded_serving import Monitor, Reference


def _rows(rng: np.random.Generator, count: int, features: int, rate: float) -> np.ndarray:
    rows = rng.normal(size=(count, features))
    rows[rng.random(rows.shape) < rate] = np.nan
    return rows


def _missing_flags(reference_rows: int, window: int, rate: float, window_rate: float, repeats: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(repeats):
        monitor = Monitor(Reference.from_data(_rows(rng, reference_rows, 20, rate)), window=window)
        monitor.observe(_rows(rng, window, 20, window_rate), np.zeros((window, 1)))
        check = next(c for c in monitor.health().checks if c.name == "data_quality")
        flagged += "missing" in check.summary
    return flagged


def test_a_small_reference_with_few_missing_values_does_not_flag_healthy_windows() -> None:
    # 20 features 3 % missing, 150 reference rows, 1,000 fresh rows: the old bound flagged 3 of these 25 references
    # (exactly, 18 % of such checks); Fisher's exact test, none
    assert _missing_flags(150, 1_000, 0.03, 0.03, repeats=25, seed=11) == 0


def test_a_missing_rate_risen_from_3_to_10_percent_is_still_flagged() -> None:
    assert _missing_flags(150, 1_000, 0.03, 0.10, repeats=3, seed=12) == 3
