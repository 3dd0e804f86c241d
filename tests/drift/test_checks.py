"""Data drift and data quality checks, judged on seeded windows against a seeded reference."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guarded_serving import Monitor, Reference
from guarded_serving.drift import Baseline, Calibration, Chunk, Encoder, WindowData, assemble, drift_check, quality_check
from guarded_serving.drift.checks import ALPHA_DATA, DriftDetails
from guarded_serving.drift.columns import WindowColumns
from guarded_serving.drift.quality import QualityDetails, fingerprint
from guarded_serving.errors import ConfigurationError
from guarded_serving.health import CheckResult, Status

REFERENCE_ROWS = 5_000
WINDOW = 500
MIN_ROWS = 100
NUMERIC = [f"f{j}" for j in range(5)]
LEVELS = np.array(["a", "b", "c", "d"], dtype=object)
LEVEL_SHARES = (0.5, 0.25, 0.15, 0.1)


def numeric_rows(rows: int, seed: int) -> np.ndarray:
    """Five normal features: f_j has mean j and standard deviation 1 + j."""
    j = np.arange(len(NUMERIC))
    return np.random.default_rng(seed).normal(j, 1 + j, size=(rows, len(NUMERIC)))


def mixed_rows(rows: int, seed: int, shares: tuple[float, ...] = LEVEL_SHARES) -> list[list[Any]]:
    """x ~ N(0, 1), y ~ N(10, 2) and colour in a, b, c, d."""
    rng = np.random.default_rng(seed)
    x, y, colour = rng.normal(0, 1, rows), rng.normal(10, 2, rows), rng.choice(LEVELS, rows, p=shares)
    return [[float(a), float(b), str(c)] for a, b, c in zip(x, y, colour, strict=True)]


def window_of(base: Baseline, rows: list[list[Any]] | np.ndarray) -> WindowData:
    unseen: dict[int, dict[str, int]] = {}
    errors: dict[int, int] = {}
    matrix = Encoder(base).encode(rows.tolist() if isinstance(rows, np.ndarray) else rows, unseen, errors)
    return assemble([Chunk(matrix, None, unseen, errors)], len(matrix), base.width, None)


def drift(base: Baseline, cal: Calibration, rows: list[list[Any]] | np.ndarray) -> CheckResult:
    return drift_check("data_drift", base, cal, WindowColumns.of(window_of(base, rows).inputs, base), MIN_ROWS)


def quality(base: Baseline, rows: list[list[Any]] | np.ndarray, reveal: bool = False) -> CheckResult:
    data = window_of(base, rows)
    return quality_check(base, WindowColumns.of(data.inputs, base), data, MIN_ROWS, reveal=reveal)


def drifted(result: CheckResult) -> list[str]:
    assert isinstance(result.details, DriftDetails)
    return [name for name, f in result.details.features.items() if f.drifted]


def flagged(result: CheckResult) -> dict[str, tuple[str, ...]]:
    assert isinstance(result.details, QualityDetails)
    return {name: f.problems for name, f in result.details.features.items() if f.drifted}


@pytest.fixture(scope="module")
def numeric_reference() -> Reference:
    return Reference.from_data(numeric_rows(REFERENCE_ROWS, seed=1), feature_names=NUMERIC)


@pytest.fixture(scope="module")
def numeric_baseline(numeric_reference: Reference) -> Baseline:
    return Baseline.from_profiles(numeric_reference.features)


@pytest.fixture(scope="module")
def numeric_calibration(numeric_baseline: Baseline) -> Calibration:
    """Calibrated for windows of 1,000 rows, as a monitor with window=1000 is."""
    return Calibration.fit(numeric_baseline, 1_000, ALPHA_DATA)


@pytest.fixture(scope="module")
def mixed_baseline() -> Baseline:
    reference = Reference.from_data(mixed_rows(REFERENCE_ROWS, seed=2), feature_names=["x", "y", "colour"])
    return Baseline.from_profiles(reference.features)


@pytest.fixture(scope="module")
def mixed_calibration(mixed_baseline: Baseline) -> Calibration:
    return Calibration.fit(mixed_baseline, WINDOW, ALPHA_DATA)


# -- data drift ----------------------------------------------------------------------------------------------------


def test_drift_is_not_judged_below_min_rows(numeric_baseline: Baseline, numeric_calibration: Calibration) -> None:
    result = drift(numeric_baseline, numeric_calibration, numeric_rows(MIN_ROWS - 1, seed=3))

    assert result.status is Status.INSUFFICIENT_DATA
    assert result.summary == "99 rows in the window; drift is judged from 100."
    assert result.details.features == {}


def test_drift_is_judged_from_min_rows(numeric_baseline: Baseline, numeric_calibration: Calibration) -> None:
    result = drift(numeric_baseline, numeric_calibration, numeric_rows(MIN_ROWS, seed=3))

    assert result.status is Status.OK
    assert list(result.details.features) == NUMERIC


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(300, 1_000))
def test_a_sample_from_the_reference_distribution_does_not_drift(
    numeric_baseline: Baseline, numeric_calibration: Calibration, seed: int, rows: int
) -> None:
    result = drift(numeric_baseline, numeric_calibration, numeric_rows(rows, seed=seed + 100))

    assert drifted(result) == []
    assert result.status is Status.OK
    assert result.summary == f"No drift in 5 features over the last {rows} rows."


def test_a_mean_shift_of_one_std_flags_exactly_that_feature(numeric_baseline: Baseline, numeric_calibration: Calibration) -> None:
    rows = numeric_rows(WINDOW, seed=4)
    rows[:, 2] += 3.0  # f2 has standard deviation 3

    result = drift(numeric_baseline, numeric_calibration, rows)

    assert drifted(result) == ["f2"]
    assert result.status is Status.ALERT
    assert result.details.features["f2"].status is Status.ALERT
    assert result.summary.startswith("1 of 5 features drifted: f2: mean +")


def test_a_vanished_categorical_level_is_flagged_by_total_variation(
    mixed_baseline: Baseline, mixed_calibration: Calibration
) -> None:
    result = drift(mixed_baseline, mixed_calibration, mixed_rows(WINDOW, seed=5, shares=(0.0, 0.5, 0.3, 0.2)))

    assert drifted(result) == ["colour"]
    colour = result.details.features["colour"]
    assert colour.method == "tv"
    assert colour.reason.startswith("'a' ")
    assert "-> 0.0%" in colour.reason


def test_a_categorical_sample_from_the_reference_does_not_drift(mixed_baseline: Baseline, mixed_calibration: Calibration) -> None:
    result = drift(mixed_baseline, mixed_calibration, mixed_rows(WINDOW, seed=6))

    assert drifted(result) == []
    assert result.details.features["colour"].method == "tv"


def test_a_numeric_feature_that_went_constant_drifts(mixed_baseline: Baseline, mixed_calibration: Calibration) -> None:
    rows = mixed_rows(WINDOW, seed=17)
    for row in rows:
        row[0] = 0.0  # the reference mean of x

    result = drift(mixed_baseline, mixed_calibration, rows)

    x = result.details.features["x"]
    assert drifted(result) == ["x"]
    assert x.spread_ratio == 0.0
    assert x.status is Status.ALERT


@pytest.mark.parametrize(("scale", "spread"), [(0.0, "constant"), (2.5, "spread x2.")], ids=["constant", "wider"])
def test_a_spread_change_is_named_before_the_distance_and_the_distance_once(
    mixed_baseline: Baseline, mixed_calibration: Calibration, scale: float, spread: str
) -> None:
    rows = mixed_rows(WINDOW, seed=18)
    for row in rows:
        row[0] *= scale  # x is centred on 0: its spread changes, its mean does not

    reason = drift(mixed_baseline, mixed_calibration, rows).details.features["x"].reason

    assert reason.startswith(f"{spread}")
    assert ", wasserstein " in reason
    assert reason.count("wasserstein") == 1


def test_a_method_set_on_the_monitor_is_the_features_method(numeric_reference: Reference) -> None:
    monitor = Monitor(numeric_reference, window=200, methods={"f0": "psi"})
    monitor.observe(numeric_rows(200, seed=7), [0.0] * 200)

    data_drift = monitor.health().check("data_drift")

    assert data_drift.details.features["f0"].method == "psi"
    assert data_drift.details.features["f1"].method == "wasserstein"


@pytest.mark.parametrize("method", ["tv", "chi2"], ids=["categorical-method", "unknown-method"])
def test_an_invalid_method_is_refused_naming_the_feature(numeric_reference: Reference, method: str) -> None:
    with pytest.raises(ConfigurationError, match=r"methods\['f0'\]: expected one of \['wasserstein', 'ks', 'psi', 'js'\]"):
        Monitor(numeric_reference, methods={"f0": method})


# -- discrete, sparse, ID-like and small references ----------------------------------------------------------------


def single_feature(values: list[Any], window: int = WINDOW, categorical: bool = False) -> tuple[Baseline, Calibration]:
    reference = Reference.from_data([[v] for v in values], feature_names=["v"], categorical=["v"] if categorical else None)
    base = Baseline.from_profiles(reference.features)
    return base, Calibration.fit(base, window, ALPHA_DATA)


def test_a_user_id_with_new_values_on_every_row_is_neither_drifted_nor_constant() -> None:
    """Issue 16, defect 7: every unseen value encodes to one code; that is not a column gone constant."""
    rng = np.random.default_rng(30)
    base, cal = single_feature([f"u{v}" for v in rng.integers(0, 10**9, 2_000)], categorical=True)
    rows = [[f"u{v}"] for v in rng.integers(0, 10**9, WINDOW)]

    drift_result = drift(base, cal, rows)
    quality_result = quality(base, rows)

    assert drifted(drift_result) == []
    assert flagged(quality_result) == {}
    assert not quality_result.details.features["v"].constant


def test_one_unseen_value_on_every_row_still_went_constant() -> None:
    rng = np.random.default_rng(31)
    base = Baseline.from_profiles(
        Reference.from_data(mixed_rows(REFERENCE_ROWS, seed=2), feature_names=["x", "y", "colour"]).features
    )
    rows = [[float(x), 10.0, "zulu"] for x in rng.normal(size=WINDOW)]

    assert "the feature went constant" in flagged(quality(base, rows))["colour"]


def test_a_window_of_only_zeros_of_a_sparse_feature_is_not_flagged() -> None:
    """A 98 % zero "pixel": a window of 500 often holds no non-zero value in its central 96 %."""
    rng = np.random.default_rng(32)
    values = np.where(rng.random(5_000) < 0.98, 0.0, rng.integers(1, 17, 5_000)).tolist()
    base, cal = single_feature(values)
    rows = [[0.0]] * (WINDOW - 5) + [[float(v)] for v in rng.integers(1, 17, 5)]

    feature = drift(base, cal, rows).details.features["v"]

    assert not feature.drifted, feature.reason


@pytest.mark.parametrize("share", [0.03, 0.3], ids=["rare-flag", "common-flag"])
def test_a_binary_feature_sampled_as_in_the_reference_does_not_drift(share: float) -> None:
    rng = np.random.default_rng(33)
    base, cal = single_feature((rng.random(5_000) < share).astype(float).tolist())
    stays = [
        drift(base, cal, (rng.random((WINDOW, 1)) < share).astype(float).tolist()).details.features["v"].drifted
        for _ in range(50)
    ]

    assert not any(stays)


def test_a_binary_feature_whose_share_moves_is_judged_by_its_value_shares() -> None:
    rng = np.random.default_rng(34)
    base, cal = single_feature((rng.random(5_000) < 0.3).astype(float).tolist())

    feature = drift(base, cal, (rng.random((WINDOW, 1)) < 0.5).astype(float).tolist()).details.features["v"]

    assert feature.drifted
    assert feature.threshold is None  # two values: no distance test, the exact shares test decides
    assert feature.reason.startswith("value ")
    assert feature.shares_p is not None
    assert 0 < feature.shares_p < 1e-6


def test_a_category_whose_share_moved_shows_its_distance_as_context_not_as_the_trigger() -> None:
    # the share test decided; the distance, under its threshold, read "tv 0.037 (threshold 0.092)" beside it, as
    # if it were the reason
    plans = np.array(["basic", "pro", "enterprise"], dtype=object)
    base, cal = single_feature(list(np.repeat(plans, [3_000, 1_750, 250])), window=1_000, categorical=True)
    window = [["basic"]] * 563 + [["pro"]] * 350 + [["enterprise"]] * 87

    feature = drift(base, cal, window).details.features["v"]

    assert feature.drifted
    assert feature.reason == "'enterprise' 5.0% -> 8.7%; tv 0.037, under its threshold 0.092"


def test_a_small_reference_widens_thresholds_by_its_own_noise_only() -> None:
    """Issue 12: 72 held-out rows, one category moving from 25 % to 61 % (and 12 % unseen) was called ok."""
    rng = np.random.default_rng(35)
    levels = np.array(["a", "b", "c", "d"], dtype=object)
    base, cal = single_feature(list(np.repeat(levels, 18)), window=1_000, categorical=True)
    moved = rng.choice(np.array(["a", "b", "c", "d", "new"], dtype=object), 1_000, p=[0.61, 0.09, 0.09, 0.09, 0.12])

    feature = drift(base, cal, [[v] for v in moved]).details.features["v"]
    healthy = drift(base, cal, [[v] for v in rng.choice(levels, 1_000)]).details.features["v"]

    assert feature.drifted
    assert feature.status is Status.ALERT
    assert not healthy.drifted, healthy.reason


# -- data quality --------------------------------------------------------------------------------------------------


def test_quality_is_not_judged_below_min_rows(mixed_baseline: Baseline) -> None:
    result = quality(mixed_baseline, mixed_rows(MIN_ROWS - 1, seed=8))

    assert result.status is Status.INSUFFICIENT_DATA
    assert result.summary == "99 rows in the window; quality is judged from 100."


def test_a_sample_from_the_reference_has_no_quality_problem(mixed_baseline: Baseline) -> None:
    result = quality(mixed_baseline, mixed_rows(WINDOW, seed=8))

    assert result.status is Status.OK
    assert flagged(result) == {}


def test_forty_percent_missing_values_are_flagged(mixed_baseline: Baseline) -> None:
    rows = mixed_rows(WINDOW, seed=9)
    for row in rows[:200]:
        row[0] = None

    result = quality(mixed_baseline, rows)

    assert flagged(result) == {"x": ("40% missing (reference 0%)",)}
    assert result.details.features["x"].missing_rate == 0.4
    assert result.status is Status.ALERT


def test_a_feature_with_all_values_missing_is_flagged(mixed_baseline: Baseline) -> None:
    rows = mixed_rows(WINDOW, seed=10)
    for row in rows:
        row[1] = None

    result = quality(mixed_baseline, rows)

    assert flagged(result) == {"y": ("all values missing",)}


def test_values_a_thousand_times_larger_are_out_of_range(mixed_baseline: Baseline) -> None:
    rows = mixed_rows(WINDOW, seed=11)
    for row in rows:
        row[1] *= 1_000

    result = quality(mixed_baseline, rows)

    problems = flagged(result)
    assert list(problems) == ["y"]
    assert problems["y"][0].startswith("100% of values outside the reference range [")
    assert result.details.features["y"].out_of_range == 1.0


def test_an_unseen_category_is_listed_by_fingerprint_with_its_count(mixed_baseline: Baseline) -> None:
    rows = mixed_rows(WINDOW, seed=12)
    for row in rows[:30]:
        row[2] = "zulu"

    result = quality(mixed_baseline, rows)

    assert flagged(result) == {"colour": (f"1 unseen category ('{fingerprint('zulu')}' x30)",)}
    assert result.details.features["colour"].unseen == {fingerprint("zulu"): 30}
    assert fingerprint("zulu") == "#" + hashlib.sha256(b"zulu").hexdigest()[:8]
    assert "zulu" not in str(result.to_json())


def test_an_unseen_category_is_named_when_values_may_be_reported(mixed_baseline: Baseline) -> None:
    rows = mixed_rows(WINDOW, seed=12)
    for row in rows[:30]:
        row[2] = "zulu"

    result = quality(mixed_baseline, rows, reveal=True)

    assert flagged(result) == {"colour": ("1 unseen category ('zulu' x30)",)}
    assert result.details.features["colour"].unseen == {"zulu": 30}


def test_several_unseen_categories_are_counted_as_categories_and_as_values(mixed_baseline: Baseline) -> None:
    rows = mixed_rows(WINDOW, seed=12)
    for i, row in enumerate(rows[:40]):
        row[2] = ["zulu", "zulu", "yankee", "x-ray", "whiskey"][i % 5]

    result = quality(mixed_baseline, rows, reveal=True)

    assert flagged(result) == {"colour": ("4 unseen categories in 40 values ('zulu' x16, 'yankee' x8, 'x-ray' x8, ...)",)}


@pytest.mark.parametrize("first_missing", [False, True], ids=["all-present", "first-row-missing"])
@pytest.mark.parametrize(("feature", "value"), [(0, 1.5), (2, "a")], ids=["numeric", "categorical"])
def test_a_column_that_went_constant_is_flagged(
    mixed_baseline: Baseline, feature: int, value: object, first_missing: bool
) -> None:
    rows = mixed_rows(WINDOW, seed=13)
    for row in rows:
        row[feature] = value
    if first_missing:
        rows[0][feature] = None

    result = quality(mixed_baseline, rows)

    name = mixed_baseline.names[feature]
    assert "the feature went constant" in flagged(result)[name]
    assert result.details.features[name].constant


def test_values_of_the_wrong_type_are_counted(mixed_baseline: Baseline) -> None:
    rows = mixed_rows(WINDOW, seed=14)
    for row in rows[:3]:
        row[0] = "abc"

    result = quality(mixed_baseline, rows)

    assert flagged(result) == {"x": ("3 values of the wrong type",)}
    assert result.details.features["x"].type_errors == 3


def test_a_dominant_category_is_not_called_constant_in_a_small_window() -> None:
    kinds = ["common"] * 9_990 + ["rare"] * 10  # "common" is 99.9 % of the reference
    noise = np.random.default_rng(15).normal(size=len(kinds))
    reference = Reference.from_data([[float(v), k] for v, k in zip(noise, kinds, strict=True)], feature_names=["x", "kind"])
    base = Baseline.from_profiles(reference.features)
    rows: list[list[Any]] = [[float(v), "common"] for v in np.random.default_rng(16).normal(size=100)]

    result = quality(base, rows)

    assert not result.details.features["kind"].constant
    assert flagged(result) == {}


def test_a_count_shifted_by_a_fraction_is_flagged_by_its_values_the_reference_never_had() -> None:
    """Every value stays in its reference bin ([k, k + 1)): only the values themselves are new."""
    rng = np.random.default_rng(36)
    base, cal = single_feature(rng.poisson(2.0, 5_000).astype(float).tolist())

    feature = drift(base, cal, (rng.poisson(2.0, (WINDOW, 1)) + 0.7).tolist()).details.features["v"]
    healthy = drift(base, cal, rng.poisson(2.0, (WINDOW, 1)).astype(float).tolist()).details.features["v"]

    assert feature.drifted
    assert feature.reason.startswith("values the reference never had: 0.0% -> 100.0%")
    assert not healthy.drifted, healthy.reason


def test_a_feature_entry_built_through_the_slots_is_the_dataclass_built_by_its_init() -> None:
    from guarded_serving.drift.checks import FeatureDrift, _feature_drift

    values = (Status.WARN, True, "wasserstein", 0.31, 0.2, 480, "mean +0.40 std", 0.4, 1.1, 0.31, 0.05, 0.01, None, 0.003)

    built = _feature_drift(*values)

    assert built == FeatureDrift(*values)
    assert repr(built) == repr(FeatureDrift(*values))


def test_a_vanished_decimal_value_is_named_as_itself() -> None:
    """Tenths are not float32 values: the reference's kept sample (float32) must still be binned as its values
    were, or the bin of 1.3 is named after the 1.4s whose rounding falls below the edge at 1.4."""
    rng = np.random.default_rng(1)
    tenths = np.round(np.arange(1.0, 2.0, 0.1), 1)
    reference = np.column_stack([rng.choice(tenths, 5000), rng.normal(size=5000)])
    window = reference[:1000].copy()
    window[:, 0] = np.where(window[:, 0] == 1.3, 1.6, window[:, 0])  # 1.3 no longer occurs
    with Monitor(reference, window=1000) as monitor:
        monitor.observe(window, np.zeros(1000))
        reason = monitor.health().check("data_drift").details.features["f0"].reason
        labels = monitor._evaluator.baseline.bin_labels[0]
    assert labels == tuple(f"value {v:.4g}" for v in tenths)
    assert reason is not None
    assert "value 1.3: 10.0% -> 0.0%" in reason
