"""joint_drift on heavy-tailed features: a column whose clipped values still have a heavy tail is clipped harder
(correlation.trims), so that healthy windows stay within the check's budget while broken relations are still found."""

from __future__ import annotations

import numpy as np
import pytest

from guarded_serving import Reference
from guarded_serving.drift import Baseline
from guarded_serving.drift.columns import WindowColumns
from guarded_serving.drift.correlation import TRIMS, trims
from guarded_serving.drift.joint import JointBaseline, JointDetails, joint_check
from guarded_serving.health import CheckResult, Status

FEATURES = 20
ROWS = 2_000


def world(rows: int, rng: np.random.Generator, sigma: float = 2.0, rho: float = 0.5) -> np.ndarray:
    """``FEATURES`` log-normal amounts (sigma ``sigma``), each odd column related to the even one before it: their
    logs correlated by ``rho``."""
    z = rng.normal(size=(rows, FEATURES))
    z[:, 1::2] = rho * z[:, 0::2] + np.sqrt(1 - rho**2) * z[:, 1::2]
    return np.exp(sigma * z)


def fitted(seed: int, sigma: float = 2.0) -> tuple[JointBaseline, Baseline, np.random.Generator]:
    rng = np.random.default_rng((seed, 77))
    reference = Reference.from_data(world(ROWS, rng, sigma))
    base = Baseline.from_profiles(reference.features)
    return JointBaseline.fit(reference.row_sample, base, ROWS), base, rng


def judge(joint: JointBaseline, base: Baseline, matrix: np.ndarray) -> CheckResult:
    return joint_check(joint, matrix, WindowColumns.of(matrix, base), base, 100)


def test_a_column_is_clipped_harder_only_when_its_clipped_tail_stays_heavy() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    sparse = np.where(rng.random(n) < 0.95, 0.0, rng.normal(size=n))  # clipped harder, its bounds would coincide
    columns = np.column_stack(
        [
            rng.normal(size=n),
            rng.uniform(size=n),
            rng.exponential(size=n),
            np.exp(0.5 * rng.normal(size=n)),
            np.exp(2.0 * rng.normal(size=n)),
            100 * (1 - rng.random(n)) ** (-1 / 1.5),  # Pareto amounts, tail index 1.5
            sparse,
            rng.integers(0, 3, n).astype(float),  # an indicator's column: never clipped
        ]
    )
    levels = np.array([-1, -1, -1, -1, -1, -1, -1, 1])

    chosen = trims(columns, levels, np.ones(columns.shape[1]))

    assert chosen.tolist() == [0.02, 0.02, 0.02, 0.02, TRIMS[-1], TRIMS[-1], 0.02, 0.02]


def test_missing_values_do_not_count_in_a_columns_tail() -> None:
    rng = np.random.default_rng(4)
    heavy = np.exp(2.0 * rng.normal(size=2_000))
    heavy[rng.random(2_000) < 0.3] = np.nan
    columns = np.column_stack([rng.normal(size=2_000), heavy])

    assert trims(columns, np.array([-1, -1]), np.ones(2)).tolist() == [0.02, TRIMS[-1]]


@pytest.mark.parametrize("seed", range(12))
def test_healthy_windows_of_heavy_tailed_amounts_stay_ok(seed: int) -> None:
    """Every column clipped at 2 % and 98 % (as before correlation.trims), 3 of these 12 references (6, 9, 10) had a
    healthy window flagged, 3 of 60 windows against a budget of 0.05 % of checks: a pair of log-normal amounts of
    sigma 2 whose correlation moved by 0.1-0.13 between two samples of 2,000 rows."""
    joint, base, rng = fitted(seed)

    found = [judge(joint, base, world(ROWS, rng)) for _ in range(5)]

    assert [r.summary for r in found if r.status is not Status.OK] == []


def test_a_relation_between_heavy_tailed_amounts_that_flipped_is_found_and_named() -> None:
    joint, base, rng = fitted(0)
    window = world(ROWS, rng)
    window[:, 3] = world(ROWS, rng, rho=-0.5)[:, 3]  # column 3's relation to column 2 flipped (its marginal kept)

    result = judge(joint, base, window)

    assert result.status is not Status.OK, result.summary
    assert isinstance(result.details, JointDetails)
    assert [c.features for c in result.details.changed] == [("f2", "f3")]


def test_heavy_tailed_amounts_in_other_units_keep_their_relations() -> None:
    joint, base, rng = fitted(1)
    window = world(ROWS, rng)
    window[:, 4] *= 1000.0  # a unit change: data drift's business, not a relation's

    assert judge(joint, base, window).status is Status.OK


def test_a_full_windows_clip_bounds_are_taken_at_each_columns_own_trim() -> None:
    joint, base, rng = fitted(2)
    matrix = world(ROWS, rng)
    tables = joint.tables
    ordered = np.sort(matrix, axis=0)
    at = np.floor(tables.trim * (ROWS - 1)).astype(np.intp), np.ceil((1 - tables.trim) * (ROWS - 1)).astype(np.intp)

    lo, hi = tables.complete_bounds(WindowColumns.of(matrix, base).numeric)

    assert tables.trim.tolist() == [TRIMS[-1]] * FEATURES
    np.testing.assert_array_equal(lo, ordered[at[0], tables.ranks])
    np.testing.assert_array_equal(hi, ordered[at[1], tables.ranks])


def test_a_heavy_tail_with_a_value_held_by_many_rows_keeps_the_least_clipping() -> None:
    rng = np.random.default_rng(5)
    amount = np.exp(2.0 * rng.normal(size=2_000))
    columns = np.column_stack([amount, np.where(rng.random(2_000) < 0.3, 0.0, amount)])  # the second: 30 % zeros

    assert trims(columns, np.array([-1, -1]), np.array([1.0, 0.7])).tolist() == [TRIMS[-1], 0.02]
