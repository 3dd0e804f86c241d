"""The joint drift check: relations between features judged against the reference's row sample."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guarded_serving import Monitor, Reference
from guarded_serving.drift import Baseline, Encoder
from guarded_serving.drift.columns import WindowColumns
from guarded_serving.drift.correlation import complete_scores, gram, moments, order_bounds, pairwise, scores
from guarded_serving.drift.joint import (
    ALPHA_JOINT,
    MAX_COLUMNS,
    JointBaseline,
    JointDetails,
    joint_check,
)
from guarded_serving.drift.pairtables import Scratch, Workspace
from guarded_serving.health import CheckResult, Status
from tests.fixtures.data import gaussian

REFERENCE_ROWS = 4_000
WINDOW = 1_000
MIN_ROWS = 100
NAMES = ["a", "b", "c", "colour"]
LEVELS = np.array(["red", "green", "blue", "grey"], dtype=object)


def rows(count: int, seed: int, rho: float = 0.6, missing: float = 0.0) -> list[list[Any]]:
    """a and b correlated by ``rho`` (b lognormal), c and colour related (uniform and categorical) but independent
    of a and b; a share ``missing`` of b missing."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=count)
    b = np.exp(0.5 * (rho * a + np.sqrt(1 - rho**2) * rng.normal(size=count)))
    c = rng.uniform(0, 10, count)
    colour = LEVELS[np.digitize(c + rng.normal(0, 2, count), [3.5, 6.5, 9.0])]
    b[rng.random(count) < missing] = np.nan
    return [[float(x), float(y), float(z), str(w)] for x, y, z, w in zip(a, b, c, colour, strict=True)]


@pytest.fixture(scope="module")
def correlated_reference() -> Reference:
    return Reference.from_data(rows(REFERENCE_ROWS, 0), feature_names=NAMES)


@pytest.fixture(scope="module")
def base(correlated_reference: Reference) -> Baseline:
    return Baseline.from_profiles(correlated_reference.features)


@pytest.fixture(scope="module")
def joint(correlated_reference: Reference, base: Baseline) -> JointBaseline:
    return JointBaseline.fit(correlated_reference.row_sample, base, WINDOW)


def judge(joint: JointBaseline, base: Baseline, window: list[list[Any]]) -> CheckResult:
    matrix = Encoder(base).encode(window, {}, {})
    return joint_check(joint, matrix, WindowColumns.of(matrix, base), base, MIN_ROWS)


def drifted(result: CheckResult) -> list[str]:
    assert isinstance(result.details, JointDetails)
    return [name for name, f in result.details.features.items() if f.drifted]


# -- what is judged ----------------------------------------------------------------------------------------------


def test_numeric_features_and_common_categories_are_judged(joint: JointBaseline) -> None:
    assert joint.reason is None
    assert joint.names == ("a", "b", "c", "colour")
    assert joint.labels == ("a", "b", "c", "colour='red'", "colour='green'", "colour='blue'")  # most common first


def test_pairs_never_join_two_categories_of_one_feature(joint: JointBaseline) -> None:
    assert len(joint.left) == 3 + 3 * 3  # a-b, a-c, b-c, and each numeric feature with each of 3 indicators
    assert all(joint.feature_of[i] != joint.feature_of[j] for i, j in zip(joint.left, joint.right, strict=True))


def test_the_bound_is_bonferroni_over_the_pairs(joint: JointBaseline) -> None:
    from scipy.stats import norm

    assert joint.alpha == ALPHA_JOINT
    assert joint.threshold == pytest.approx(norm.isf(ALPHA_JOINT / (2 * len(joint.left))))


def test_fitting_is_deterministic(correlated_reference: Reference, base: Baseline, joint: JointBaseline) -> None:
    again = JointBaseline.fit(correlated_reference.row_sample, base, WINDOW)

    np.testing.assert_array_equal(again.variance, joint.variance)
    assert again.inflation == joint.inflation


def test_on_normal_data_one_rows_variance_of_fishers_z_is_about_1() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=20_000)
    columns = np.column_stack([a, 0.6 * a + 0.8 * rng.normal(size=20_000)])
    values, present = scores(columns, np.array([-1, -1]), np.full(2, -np.inf), np.full(2, np.inf))
    rho = pairwise(values, present)[0][[0], [1]]

    variance, upper, _ = moments(values, present, rho, np.array([0]), np.array([1]))

    assert rho[0] == pytest.approx(0.6, abs=0.02)
    assert variance[0] == pytest.approx(1.0, abs=0.05)
    assert variance[0] < upper[0] < 1.1 * variance[0]


@pytest.mark.parametrize("rows", [1, 63, 64, 65, 2_000, 2_001], ids=lambda r: f"{r} rows")
def test_products_summed_by_blocks_of_rows_are_the_plain_product(rows: int) -> None:
    rng = np.random.default_rng(rows)
    left, right = rng.normal(size=(rows, 64)), rng.normal(size=(rows, 3))

    np.testing.assert_allclose(gram(left, left), left.T @ left, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(gram(left, right), left.T @ right, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("rows", [2_000, 2_048], ids=["rows-after-the-blocks", "whole-blocks"])
def test_products_are_the_blocks_products_added_in_row_order_bit_for_bit(rows: int) -> None:
    """The same sums in the same order however the blocks are held at once: a window's report is reproducible."""
    rng = np.random.default_rng(rows)
    single = rng.normal(size=(rows, 64)).astype(np.float32)
    whole = rows - rows % 64
    blocks = single[:whole].reshape(-1, 64, 64)
    products = list(np.matmul(blocks.transpose(0, 2, 1), blocks))  # one array with itself: BLAS's symmetric product
    if whole < rows:
        products.append(single[whole:].T @ single[whole:])

    expected = np.add.reduce(np.stack(products), axis=0)
    np.testing.assert_array_equal(gram(single, single), expected)
    held = np.empty((len(products), 64, 64), np.float32)  # every block's product at once, as a Workspace holds them
    np.testing.assert_array_equal(gram(single, single, held), expected)


def test_scores_of_a_window_known_complete_are_the_scores_bit_for_bit() -> None:
    rng = np.random.default_rng(9)
    columns = np.column_stack([rng.normal(size=(500, 3)), rng.integers(0, 3, 500)])
    levels, lo, hi = np.array([-1, -1, -1, 1]), np.array([-1.0, -2.0, -np.inf, -np.inf]), np.array([1.0, 0.5, np.inf, np.inf])

    np.testing.assert_array_equal(complete_scores(columns, levels, lo, hi), scores(columns, levels, lo, hi)[0])


@pytest.mark.parametrize(
    ("rows", "width"),
    [(2_000, 64), (2_048, 64), (20, 64), (1_000, 6), (65, 64)],
    ids=["rows-after-the-blocks", "whole-blocks", "under-a-block", "narrow", "one-row-past-a-block"],
)
def test_a_scratchs_products_are_those_of_the_windows_scores_bit_for_bit(rows: int, width: int) -> None:
    """Computed in place, in views made once: the same Gram matrix as the scores cast to float32 and multiplied by gram."""
    rng = np.random.default_rng(rows + width)
    columns = rng.normal(size=(rows, width))
    columns[:, -1] = rng.integers(0, 3, rows)  # an indicator's feature
    levels = np.array([-1] * (width - 1) + [1])
    lo, hi = np.quantile(columns, 0.02, axis=0), np.quantile(columns, 0.98, axis=0)
    scratch = Scratch.of(columns.shape)
    single = complete_scores(columns, levels, lo, hi).astype(np.float32)

    for _ in range(2):  # and again in the same arrays
        np.testing.assert_array_equal(scratch.products_of(columns, levels, lo, hi), gram(single, single))


@pytest.mark.parametrize("size", [MIN_ROWS, WINDOW, WINDOW + 1])
def test_a_full_windows_clip_bounds_are_its_order_statistics_from_positions_kept_per_size(
    joint: JointBaseline, base: Baseline, size: int
) -> None:
    matrix = Encoder(base).encode(rows(size, 11), {}, {})
    matrix[: size * 99 // 100, 0] = 1.0  # its 2 % and 98 % statistics tie: its minimum and maximum are taken then
    columns = WindowColumns.of(matrix, base)
    tables = joint.tables
    counts = columns.present[base.num_idx[tables.ranks]]

    for _ in range(2):  # and again from the kept positions
        kept = tables.complete_bounds(columns.numeric)
        for array, expected in zip(kept, order_bounds(columns.numeric, tables.ranks, counts, tables.trim), strict=True):
            np.testing.assert_array_equal(array, expected)
    assert list(tables.positions) == [size]


def test_a_full_windows_spreads_and_bounds_are_those_of_its_pair_rows_kept_per_window_size(joint: JointBaseline) -> None:
    tables = joint.tables

    kept = tables.spread(joint, WINDOW)

    for array, expected in zip(kept, tables.spread(joint, np.full(len(joint.left), float(WINDOW))), strict=True):
        np.testing.assert_array_equal(array, expected)
    assert tables.spread(joint, WINDOW) is kept


def test_a_workspace_lends_its_arrays_to_one_check_at_a_time_and_keeps_them() -> None:
    workspace = Workspace()

    with workspace.borrowed((3, 2)) as first, workspace.borrowed((3, 2)) as meanwhile:
        assert meanwhile is None
    with workspace.borrowed((3, 2)) as again:
        assert again is first
    with workspace.borrowed((4, 2)) as resized:
        assert resized is not None
        assert resized.scores.shape == resized.single.shape == (4, 2)


def test_correlations_with_missing_values_are_those_of_float64_over_the_rows_both_hold() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=(2_000, 64))
    values[:, 1::2] += values[:, ::2]
    values[rng.random(values.shape) < 0.1] = np.nan
    centred, present = scores(values, np.full(64, -1.0), np.full(64, -np.inf), np.full(64, np.inf))

    corr, both = pairwise(centred, present)

    i, j = 0, 1
    rows = present[:, i] & present[:, j]
    x, y = centred[rows, i], centred[rows, j]
    assert both[i, j] == rows.sum()
    assert corr[i, j] == pytest.approx(float(x @ y / np.sqrt((x @ x) * (y @ y))), abs=1e-6)


def test_a_wide_model_keeps_the_64_most_related_columns() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1_000, 80))
    X[:, 70:] += X[:, :10]  # the last ten are related to the first ten; the others are independent
    reference = Reference.from_data(X)

    joint = JointBaseline.fit(reference.row_sample, Baseline.from_profiles(reference.features), WINDOW)

    assert len(joint.labels) == MAX_COLUMNS
    assert {f"f{j}" for j in [*range(10), *range(70, 80)]} <= set(joint.labels)


def test_a_model_of_1200_features_with_missing_values_keeps_its_related_columns() -> None:
    """Wider than 512 columns, the reference's correlations are one BLAS product, not one product per row (5 s at
    1,000 features, 75 s at 3,000); the missing values' products too."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 1_200))
    X[:, 1_190:] += X[:, :10]  # the last ten are related to the first ten; the others are independent
    X[rng.random(X.shape) < 0.05] = np.nan
    reference = Reference.from_data(X)

    joint = JointBaseline.fit(reference.row_sample, Baseline.from_profiles(reference.features), WINDOW)

    assert len(joint.labels) == MAX_COLUMNS
    assert {f"f{j}" for j in [*range(10), *range(1_190, 1_200)]} <= set(joint.labels)


def test_the_product_of_many_columns_is_the_product_of_the_whole() -> None:
    rng = np.random.default_rng(6)
    single = rng.normal(size=(300, 600)).astype(np.float32)
    exact = single.astype(np.float64).T @ single.astype(np.float64)
    np.testing.assert_allclose(gram(single, single), exact, rtol=1e-4, atol=1e-3)


# -- not judged --------------------------------------------------------------------------------------------------


def test_a_reference_without_a_row_sample_is_not_judged(correlated_reference: Reference, base: Baseline) -> None:
    joint = JointBaseline.fit(None, base, WINDOW)

    result = judge(joint, base, rows(500, 1))

    assert result.status is Status.OK
    assert result.summary.startswith("Not judged: the reference has no row sample (saved by an older version")


def test_a_reference_of_one_feature_is_not_judged() -> None:
    reference = Reference.from_data(gaussian(500, 1, seed=5))

    joint = JointBaseline.fit(reference.row_sample, Baseline.from_profiles(reference.features), WINDOW)

    assert joint.reason is not None
    assert joint.reason.startswith("fewer than two features to relate")


def test_a_row_sample_of_fewer_than_100_rows_is_not_judged() -> None:
    reference = Reference.from_data(gaussian(60, 3, seed=6))

    joint = JointBaseline.fit(reference.row_sample, Baseline.from_profiles(reference.features), WINDOW)

    assert joint.reason == "the reference's row sample holds 60 rows; relations need 100."


def test_a_short_window_is_insufficient_data(joint: JointBaseline, base: Baseline) -> None:
    result = judge(joint, base, rows(50, 7))

    assert result.status is Status.INSUFFICIENT_DATA
    assert result.summary == "50 rows in the window; relations are judged from 100."


# -- healthy windows ---------------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(min_value=10, max_value=10_000))
def test_a_fresh_window_of_the_reference_world_is_ok(joint: JointBaseline, base: Baseline, seed: int) -> None:
    result = judge(joint, base, rows(WINDOW, seed))

    assert result.status is Status.OK, result.summary
    assert result.summary == "No relation changed between 4 features (12 pairs) over the last 1000 rows."


def test_the_reference_rows_compared_with_themselves_never_drift(
    correlated_reference: Reference, joint: JointBaseline, base: Baseline
) -> None:
    assert correlated_reference.row_sample is not None
    matrix = correlated_reference.row_sample.matrix

    result = joint_check(joint, matrix, WindowColumns.of(matrix, base), base, MIN_ROWS)

    assert result.status is Status.OK
    assert isinstance(result.details, JointDetails)
    assert result.details.score is not None
    assert result.details.score < 1.0


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: [[a + 5, b, c, w] for a, b, c, w in r], id="a-shifted-by-5-std"),
        pytest.param(lambda r: [[a, b * 1000, c, w] for a, b, c, w in r], id="b-in-other-units"),
        pytest.param(lambda r: [[a * 3, b, c - 20, w] for a, b, c, w in r], id="a-rescaled-and-c-moved"),
    ],
)
def test_a_change_of_one_features_scale_or_place_leaves_relations_as_they_were(
    joint: JointBaseline, base: Baseline, change: Any
) -> None:
    result = judge(joint, base, change(rows(WINDOW, 8)))

    assert result.status is Status.OK, result.summary


def test_missing_values_appearing_at_random_leave_relations_as_they_were(joint: JointBaseline, base: Baseline) -> None:
    result = judge(joint, base, rows(WINDOW, 9, missing=0.3))

    assert result.status is Status.OK, result.summary


def test_checking_never_changes_the_window(joint: JointBaseline, base: Baseline) -> None:
    matrix = Encoder(base).encode(rows(WINDOW, 10), {}, {})
    copy = matrix.copy()

    joint_check(joint, matrix, WindowColumns.of(matrix, base), base, MIN_ROWS)

    np.testing.assert_array_equal(matrix, copy)


# -- broken relations --------------------------------------------------------------------------------------------


def test_a_flipped_correlation_is_an_alert_naming_the_pair(joint: JointBaseline, base: Baseline) -> None:
    result = judge(joint, base, rows(WINDOW, 11, rho=-0.6))

    assert result.status is Status.ALERT
    assert drifted(result) == ["a", "b"]
    assert result.summary.startswith("1 of 12 feature pairs changed relation: a ~ b: correlation +0.6")
    assert isinstance(result.details, JointDetails)
    [pair] = result.details.changed
    assert pair.features == ("a", "b")
    assert pair.reference > 0.5
    assert pair.current < -0.5


def test_a_relation_of_a_category_that_vanished_names_the_category() -> None:
    reference = Reference.from_data(rows(REFERENCE_ROWS, 12), feature_names=NAMES)
    base = Baseline.from_profiles(reference.features)
    joint = JointBaseline.fit(reference.row_sample, base, WINDOW)
    window = rows(WINDOW, 13)
    shuffled = np.random.default_rng(14).permutation([r[3] for r in window])
    window = [[a, b, c, str(w)] for (a, b, c, _), w in zip(window, shuffled, strict=True)]

    result = judge(joint, base, window)

    assert result.status is Status.ALERT
    assert set(drifted(result)) == {"c", "colour"}
    assert "c ~ colour='" in result.summary


def test_every_judged_feature_reports_its_nearest_pair(joint: JointBaseline, base: Baseline) -> None:
    result = judge(joint, base, rows(WINDOW, 15))

    assert isinstance(result.details, JointDetails)
    for name, feature in result.details.features.items():
        assert feature.status is Status.OK
        assert not feature.drifted
        assert feature.score is not None
        assert feature.threshold is not None
        assert feature.score < feature.threshold
        assert feature.partner is not None
        assert feature.partner.split("=")[0] != name


# -- in a monitor ------------------------------------------------------------------------------------------------


def test_redacted_features_are_left_out_of_the_row_sample_and_the_check(correlated_reference: Reference) -> None:
    monitor = Monitor(correlated_reference, window=WINDOW, redact=["b"])
    monitor.observe(rows(WINDOW, 16, rho=-0.6), [0.0] * WINDOW)

    result = monitor.health().check("joint_drift")

    assert monitor.reference.row_sample is not None
    assert monitor.reference.row_sample.names == ("a", "c", "colour")
    assert isinstance(result.details, JointDetails)
    assert list(result.details.features) == ["a", "c", "colour"]
    assert result.status is Status.OK  # the broken pair involved b, which is not judged


def test_a_monitor_on_an_old_reference_says_joint_drift_is_not_judged(correlated_reference: Reference) -> None:
    old = dataclasses.replace(correlated_reference, row_sample=None)
    monitor = Monitor(Reference.from_json({k: v for k, v in old.to_json().items() if k != "row_sample"}), window=WINDOW)
    monitor.observe(rows(WINDOW, 17), [0.0] * WINDOW)

    result = monitor.health().check("joint_drift")

    assert result.status is Status.OK
    assert result.summary.startswith("Not judged: the reference has no row sample")
