"""The quality check's count of values outside the reference range, by its shortcut over sorted rows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from guarded_serving.drift.quality import _outside


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 6), width=st.integers(0, 40))
def test_values_outside_the_range_counted_from_sorted_rows_are_the_comparison_of_every_value(
    seed: int, rows: int, width: int
) -> None:
    rng = np.random.default_rng(seed)
    special = rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf], size=(rows, width))
    values = np.where(rng.random((rows, width)) < 0.5, special, rng.normal(size=(rows, width)))  # ties, NaN, infinities
    low = rng.choice([-1.0, 0.0, np.nan, -np.inf], size=rows)
    high = np.where(np.isnan(low), np.nan, low + rng.choice([0.0, 0.5, 2.0], size=rows))
    sorted_rows = np.sort(values, axis=1)  # NaN last, as the window lays them out
    present = (~np.isnan(sorted_rows)).sum(axis=1)

    counted = _outside(sorted_rows, present, low, high)

    expected = ((sorted_rows < low[:, None]) | (sorted_rows > high[:, None])).sum(axis=1)
    np.testing.assert_array_equal(counted, expected)
