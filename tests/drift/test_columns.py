"""The window laid out for the checks, and how the checks round what they report."""

from __future__ import annotations

import numpy as np
import pytest

from guarded_serving import Reference
from guarded_serving.drift.baseline import Baseline
from guarded_serving.drift.columns import WindowColumns, rounded, rounded_all

NAN = np.nan


def test_rounded_all_is_rounded_of_every_value_including_the_halves_a_scaled_product_misses() -> None:
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            rng.normal(size=20_000),
            rng.normal(size=5_000) * 1e6,
            rng.normal(size=2_000) * 1e14,
            (np.arange(-5_000, 5_000) + 0.5) / 1e4,  # halves on the fourth digit, most not exact in binary
            [2.675, 1.00005, 0.00015, -0.0, 0.0, 5e-324, 1e15, 1.7e308, -1.7e308, NAN, np.inf, -np.inf],
        ]
    )

    shown = rounded_all(values)

    expected = [rounded(v) for v in values.tolist()]
    assert shown == expected
    assert [np.signbit(v) for v in shown if v is not None] == [np.signbit(v) for v in expected if v is not None]


@pytest.mark.parametrize("gaps", [False, True], ids=["no-missing-value", "missing-values"])
def test_present_values_are_counted_per_feature(gaps: bool) -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(300, 3))
    window = rng.normal(size=(50, 3))
    if gaps:
        window[::7, 1] = NAN
        window[:, 2] = NAN
    base = Baseline.from_profiles(Reference.from_data(reference).features)

    columns = WindowColumns.of(window, base)

    assert columns.present.tolist() == (~np.isnan(window)).sum(axis=0).tolist()
    np.testing.assert_array_equal(columns.numeric, np.sort(window.T, axis=1))
    assert columns.categorical.shape == (0, 50)  # numbers only


def test_a_window_with_categories_is_laid_out_as_one_of_numbers_only_for_its_numeric_features() -> None:
    rng = np.random.default_rng(3)
    xs, cs, ys = rng.normal(size=300), rng.choice(["a", "b"], 300), rng.normal(size=300)
    reference = [[float(x), str(c), float(y)] for x, c, y in zip(xs, cs, ys, strict=True)]
    mixed = Baseline.from_profiles(Reference.from_data(reference, categorical=[1]).features)
    numeric = Baseline.from_profiles(Reference.from_data([[r[0], r[2]] for r in reference]).features)
    window = np.column_stack([rng.normal(size=40), rng.integers(0, 2, 40).astype(float), rng.normal(size=40)])
    window[::5, 0] = NAN
    window[::3, 1] = NAN

    both, numbers = WindowColumns.of(window, mixed), WindowColumns.of(window[:, [0, 2]], numeric)

    np.testing.assert_array_equal(both.numeric, numbers.numeric)
    assert both.present.tolist() == [32, 26, 40]
    assert numbers.present.tolist() == [32, 40]
    np.testing.assert_array_equal(both.categorical, window[:, [1]].T)
