"""The window laid out for the checks, and how the checks round what they report."""

from __future__ import annotations

import numpy as np
import pytest

from guarded_serving import Reference
from guarded_serving.drift import columns as columns_module
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


# --- a moved window's lay-out: the last one's, the rows that left taken out and those that came merged in ---------


def _every_move_laid_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of any size moved by any share laid out from the last lay-out (not afresh, as small ones are)."""
    monkeypatch.setattr(columns_module, "SMALL", 0)
    monkeypatch.setattr(columns_module, "MOVED_AT_MOST", 1.0)


def _assert_laid_out_alike(got: WindowColumns, expected: WindowColumns) -> None:
    assert got.rows == expected.rows
    assert got.present.tolist() == expected.present.tolist()
    np.testing.assert_array_equal(got.numeric, expected.numeric)  # NaN equal to NaN, in the same places
    np.testing.assert_array_equal(got.categorical, expected.categorical)


@pytest.mark.parametrize("merge", ["values placed", "runs sorted"])
@pytest.mark.parametrize("kind", ["continuous", "discrete-with-missing-values", "with-a-category"])
def test_a_moved_window_s_lay_out_is_the_new_window_s(kind: str, merge: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _every_move_laid_out(monkeypatch)
    monkeypatch.setattr(columns_module, "MERGED_BY_SORT", 10**9 if merge == "values placed" else 0)
    rng = np.random.default_rng(21)
    stream = rng.normal(size=(6_000, 4))
    if kind != "continuous":  # few distinct values: runs of equal values leave and come
        stream = np.round(stream * 2)
        stream[rng.random(stream.shape) < 0.1] = NAN
    categorical = [2] if kind == "with-a-category" else []
    if categorical:
        stream[:, 2] = rng.integers(0, 3, len(stream))
        stream[rng.random(len(stream)) < 0.1, 2] = NAN
    reference = stream[:1_000].tolist()
    if categorical:  # the reference's categories as text; the window holds their codes
        reference = [[r[0], r[1], None if np.isnan(r[2]) else f"c{r[2]:.0f}", r[3]] for r in reference]
    base = Baseline.from_profiles(Reference.from_data(reference, categorical=categorical or None).features)
    assert len(base.cat_idx) == len(categorical)
    start, end = 1_000, 1_300
    laid_out = WindowColumns.of(stream[start:end], base)
    for step in range(60):
        left, came = (int(k) for k in rng.choice([0, 1, 2, 17, 90], size=2))
        left = min(left, end - start - 1)
        if step % 3 == 0:  # one row out and one in, as a one-row request moves a full window (_swapped)
            left = came = 1
        new_start, new_end = start + left, end + came

        laid_out = laid_out.moved(stream[new_start:new_end], stream[start:new_start], stream[end:new_end], base)

        _assert_laid_out_alike(laid_out, WindowColumns.of(stream[new_start:new_end], base))
        start, end = new_start, new_end
    assert end - start != 300  # the window grew and shrank on the way


@pytest.mark.parametrize("rows", [5, 1])
def test_columns_that_are_not_the_old_window_s_lay_out_are_laid_out_afresh(rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _every_move_laid_out(monkeypatch)
    rng = np.random.default_rng(22)
    stream = rng.normal(size=(400, 3))
    base = Baseline.from_profiles(Reference.from_data(rng.normal(size=(500, 3))).features)
    other = WindowColumns.of(rng.normal(size=(300, 3)), base)  # a window of the same size, other values

    moved = other.moved(stream[rows : 300 + rows], stream[:rows], stream[300 : 300 + rows], base)

    _assert_laid_out_alike(moved, WindowColumns.of(stream[rows : 300 + rows], base))


def test_a_window_that_moved_by_much_or_a_small_one_is_laid_out_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(23)
    stream = rng.normal(size=(5_000, 16))
    base = Baseline.from_profiles(Reference.from_data(rng.normal(size=(500, 16))).features)
    window = WindowColumns.of(stream[:2_000], base)
    small_window = WindowColumns.of(stream[:100], base)
    afresh: list[int] = []
    laid_out = columns_module._laid_out
    monkeypatch.setattr(columns_module, "_laid_out", lambda matrix, b: afresh.append(len(matrix)) or laid_out(matrix, b))

    near = window.moved(stream[1:2_001], stream[:1], stream[2_000:2_001], base)
    small = small_window.moved(stream[1:101], stream[:1], stream[100:101], base)
    far = window.moved(stream[300:2_300], stream[:300], stream[2_000:2_300], base)

    assert afresh == [100, 2_000]  # the small window and the far move; the near move from the last lay-out
    monkeypatch.setattr(columns_module, "_laid_out", laid_out)
    _assert_laid_out_alike(near, WindowColumns.of(stream[1:2_001], base))
    _assert_laid_out_alike(small, WindowColumns.of(stream[1:101], base))
    _assert_laid_out_alike(far, WindowColumns.of(stream[300:2_300], base))
