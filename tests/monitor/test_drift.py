"""The drift engine wired into Monitor, end to end without BentoML: observe rows, ask for health."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.drift.checks import DriftDetails
from guarded_serving.health import CheckResult, Status
from tests.fixtures.data import three_scales

FEATURES = ["a", "b", "c"]
WINDOW = 200
BATCH = 50


def score(x: np.ndarray) -> np.ndarray:
    """A toy regression model."""
    return np.asarray(0.5 * x[:, 0] - 0.2 * x[:, 1] + 0.1 * x[:, 2])


def probabilities(x: np.ndarray) -> np.ndarray:
    """A toy two-class model: (1 - p, p)."""
    p = 1 / (1 + np.exp(-score(x)))
    return np.column_stack([1 - p, p])


def observe(monitor: Monitor, x: np.ndarray, predictions: np.ndarray | None = None) -> None:
    outputs = score(x) if predictions is None else predictions
    for start in range(0, len(x), BATCH):
        monitor.observe(x[start : start + BATCH], outputs[start : start + BATCH])


def drifted(check: CheckResult) -> list[str]:
    assert isinstance(check.details, DriftDetails)
    return [name for name, f in check.details.features.items() if f.drifted]


def shifted(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    out[:, 1] += 2.0  # one std of b
    return out


@pytest.fixture(scope="module")
def three_scales_3000() -> np.ndarray:
    return three_scales(3_000, seed=1)


@pytest.fixture(scope="module")
def inputs_only_reference(three_scales_3000: np.ndarray) -> Reference:
    """Inputs only: no profile of the model's outputs."""
    return Reference.from_data(three_scales_3000, feature_names=FEATURES)


@pytest.fixture(scope="module")
def reference_with_predictions(three_scales_3000: np.ndarray) -> Reference:
    return Reference.from_data(three_scales_3000, predictions=score(three_scales_3000), feature_names=FEATURES)


@pytest.fixture(scope="module")
def reference_with_probabilities(three_scales_3000: np.ndarray) -> Reference:
    return Reference.from_data(three_scales_3000, predictions=probabilities(three_scales_3000), feature_names=FEATURES)


def test_healthy_traffic_fills_the_window_without_drift(inputs_only_reference: Reference) -> None:
    monitor = Monitor(inputs_only_reference, window=WINDOW)
    observe(monitor, three_scales(300, seed=2))

    report = monitor.health()

    assert report.window_rows == WINDOW
    assert report.check("data_drift").status is Status.OK
    assert report.check("data_quality").status is Status.OK


def test_a_partly_filled_window_is_not_judged_yet(inputs_only_reference: Reference) -> None:
    monitor = Monitor(inputs_only_reference, window=WINDOW)
    observe(monitor, three_scales(50, seed=3))

    report = monitor.health()

    assert report.window_rows == 50
    assert report.check("data_drift").status is Status.INSUFFICIENT_DATA


def test_shifted_traffic_flags_the_shifted_feature(inputs_only_reference: Reference) -> None:
    monitor = Monitor(inputs_only_reference, window=WINDOW)
    observe(monitor, shifted(three_scales(WINDOW, seed=4)))

    data_drift = monitor.health().check("data_drift")

    assert drifted(data_drift) == ["b"]
    assert data_drift.status is Status.ALERT


def test_the_window_forgets_old_traffic(inputs_only_reference: Reference) -> None:
    monitor = Monitor(inputs_only_reference, window=WINDOW)
    observe(monitor, shifted(three_scales(WINDOW, seed=5)))
    observe(monitor, three_scales(WINDOW, seed=6))

    assert monitor.health().check("data_drift").status is Status.OK


def test_with_a_shared_file_one_worker_judges_the_rows_another_observed(inputs_only_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with (
        Monitor(inputs_only_reference, window=WINDOW, db=db, flush_interval=0.01) as observing,
        Monitor(inputs_only_reference, window=WINDOW, db=db, flush_interval=0.01) as judging,
    ):
        observe(observing, shifted(three_scales(WINDOW, seed=7)))
        assert observing.flush()

        report = judging.health()

    assert report.window_rows == WINDOW
    assert drifted(report.check("data_drift")) == ["b"]


def test_without_an_output_profile_prediction_drift_is_not_judged(inputs_only_reference: Reference) -> None:
    monitor = Monitor(inputs_only_reference, window=WINDOW)
    observe(monitor, three_scales(WINDOW, seed=8))

    prediction_drift = monitor.health().check("prediction_drift")

    assert prediction_drift.status is Status.OK
    assert prediction_drift.summary.startswith("Not judged")


def test_one_dimensional_predictions_are_judged_as_prediction(reference_with_predictions: Reference) -> None:
    monitor = Monitor(reference_with_predictions, window=WINDOW)
    observe(monitor, three_scales(WINDOW, seed=9))

    prediction_drift = monitor.health().check("prediction_drift")

    assert prediction_drift.status is Status.OK
    assert list(prediction_drift.details.features) == ["prediction"]
    assert prediction_drift.summary == f"No drift in 1 outputs over the last {WINDOW} rows."


def test_two_dimensional_outputs_are_judged_per_column(reference_with_probabilities: Reference) -> None:
    monitor = Monitor(reference_with_probabilities, window=WINDOW)
    x = three_scales(WINDOW, seed=10)
    observe(monitor, x, probabilities(x))

    prediction_drift = monitor.health().check("prediction_drift")

    assert prediction_drift.status is Status.OK
    assert list(prediction_drift.details.features) == ["output_0", "output_1"]


def test_shifted_predictions_are_flagged(reference_with_predictions: Reference) -> None:
    monitor = Monitor(reference_with_predictions, window=WINDOW)
    x = three_scales(WINDOW, seed=11)
    observe(monitor, x, score(x) + 1.0)

    prediction_drift = monitor.health().check("prediction_drift")

    assert drifted(prediction_drift) == ["prediction"]


@pytest.fixture(scope="module")
def one_feature_reference(three_scales_3000: np.ndarray) -> Reference:
    return Reference.from_data(three_scales_3000[:, :1], feature_names=["a"])


def test_health_does_not_reorder_the_window_of_a_one_feature_model(one_feature_reference: Reference) -> None:
    monitor = Monitor(one_feature_reference, window=WINDOW)
    x = three_scales(150, seed=12)[:, :1]
    monitor.observe(x, [0.0] * 150)

    monitor.health()

    assert monitor.window_data().inputs[:, 0].tolist() == x[:, 0].tolist()


@pytest.mark.parametrize(("features", "rows"), [(1, 150), (3, 1)], ids=["one-feature", "one-row"])
def test_health_reads_a_window_of_one_stored_chunk(
    tmp_path: Path, three_scales_3000: np.ndarray, features: int, rows: int
) -> None:
    reference = Reference.from_data(three_scales_3000[:, :features], feature_names=FEATURES[:features])
    with Monitor(reference, window=WINDOW, db=tmp_path / "one.db", flush_interval=0.01) as monitor:
        monitor.observe(three_scales(rows, seed=13)[:, :features], [0.0] * rows)
        assert monitor.flush()

        report = monitor.health()

    assert report.window_rows == rows
    assert report.check("data_drift").status is (Status.OK if rows >= 100 else Status.INSUFFICIENT_DATA)


def test_a_feature_with_no_value_in_the_window_is_reported_without_a_numpy_warning() -> None:
    """A constant reference feature (spread 0) that arrives empty: its limits are 0 x inf, never read, never warned."""
    x = three_scales(3_000, seed=11)
    x[:, 2] = 5.0
    monitor = Monitor(Reference.from_data(x, feature_names=FEATURES), window=WINDOW)
    traffic = three_scales(WINDOW, seed=12)
    traffic[:, 2] = np.nan
    observe(monitor, traffic)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data_drift = monitor.health().check("data_drift")

    assert isinstance(data_drift.details, DriftDetails)
    assert data_drift.details.features["c"].status is Status.INSUFFICIENT_DATA
    assert data_drift.details.features["c"].rows == 0
