"""Estimated performance: the reference's confidence profile and the check that compares a window with it."""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest

from guarded_serving import Reference
from guarded_serving.confidence import ConfidenceProfile, _isotonic
from guarded_serving.errors import InvalidReferenceError
from guarded_serving.estimate import ALPHA_ESTIMATE, EstimateDetails, EstimateRows, estimate_check
from guarded_serving.health import Status
from tests.fixtures.data import gaussian

ROWS = 3_000


def binary(rows: int, seed: int, strength: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a calibrated binary classifier and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-strength * rng.normal(size=rows)))
    return np.column_stack([1 - p, p]), (rng.random(rows) < p).astype(int)


def errors(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (P.argmax(axis=1) != y).astype(float)


@pytest.fixture(scope="module")
def labelled() -> ConfidenceProfile:
    P, y = binary(ROWS, 0)
    profile = ConfidenceProfile.of("classification", P, errors(P, y))
    assert profile is not None
    return profile


def test_a_labelled_profile_reproduces_the_references_realized_accuracy(labelled: ConfidenceProfile) -> None:
    assert labelled.labelled
    assert labelled.realized is not None
    assert labelled.mean == pytest.approx(labelled.realized)  # binned means average back to the overall rate
    assert len(labelled.errors) == len(labelled.edges) + 1 == 10


def test_a_more_confident_bin_is_never_expected_to_err_more(labelled: ConfidenceProfile) -> None:
    assert list(labelled.errors) == sorted(labelled.errors, reverse=True)


def test_a_calibrated_model_is_not_said_to_be_miscalibrated(labelled: ConfidenceProfile) -> None:
    assert labelled.miscalibration is None


def test_an_overconfident_model_is_said_to_be_miscalibrated() -> None:
    P, y = binary(ROWS, 1)
    sharp = P**4 / (P**4).sum(axis=1, keepdims=True)
    profile = ConfidenceProfile.of("classification", sharp, errors(sharp, y))

    assert profile is not None
    assert profile.miscalibration is not None
    assert profile.miscalibration > 0.05


def test_pool_adjacent_violators_gives_the_weighted_non_decreasing_fit() -> None:
    fitted = _isotonic(np.array([1.0, 3.0, 2.0, 4.0]), np.array([1.0, 1.0, 3.0, 1.0]))

    np.testing.assert_allclose(fitted, [1.0, 2.25, 2.25, 4.0])


def test_the_profile_survives_json(labelled: ConfidenceProfile) -> None:
    assert ConfidenceProfile.from_json(labelled.to_json()) == labelled


def test_a_profile_of_another_version_is_refused(labelled: ConfidenceProfile) -> None:
    with pytest.raises(InvalidReferenceError, match="confidence profile version 9 is not supported"):
        ConfidenceProfile.from_json({**labelled.to_json(), "version": 9})


@pytest.mark.parametrize(
    ("task", "predictions"),
    [
        pytest.param("classification", np.random.default_rng(2).integers(0, 2, ROWS), id="a-classifier-returning-labels"),
        pytest.param("classification", np.random.default_rng(3).random((ROWS, 2)), id="rows-not-summing-to-1"),
        pytest.param("regression", np.random.default_rng(4).normal(size=ROWS), id="a-regressor-without-labels"),
        pytest.param("classification", binary(50, 5)[0], id="fewer-than-100-rows"),
    ],
)
def test_outputs_that_give_no_score_give_no_profile(task: str, predictions: np.ndarray) -> None:
    assert ConfidenceProfile.of(task, predictions) is None


def test_a_reference_with_predictions_and_labels_holds_a_labelled_profile() -> None:
    P, y = binary(ROWS, 6)

    reference = Reference.from_data(gaussian(ROWS, 2, seed=6), y=y, predictions=P)

    assert reference.confidence is not None
    assert reference.confidence.labelled
    assert reference.performance is not None
    assert reference.confidence.realized == pytest.approx(reference.performance.error_mean)


def test_a_reference_with_probabilities_only_holds_an_unlabelled_profile() -> None:
    P, _ = binary(ROWS, 7)

    reference = Reference.from_data(gaussian(ROWS, 2, seed=7), predictions=P)

    assert reference.confidence is not None
    assert not reference.confidence.labelled
    assert reference.confidence.mean == pytest.approx(1 - P.max(axis=1).mean())


# -- the check ---------------------------------------------------------------------------------------------------


def test_without_a_profile_the_estimate_is_not_judged() -> None:
    result = estimate_check(None, np.zeros((500, 2)), 100)

    assert result.status is Status.OK
    assert result.summary.startswith("Not judged: the reference has no profile of the model's outputs")


def test_a_short_window_is_insufficient_data(labelled: ConfidenceProfile) -> None:
    result = estimate_check(labelled, binary(60, 8)[0], 100)

    assert result.status is Status.INSUFFICIENT_DATA
    assert result.summary == "60 rows with outputs in the window; performance is estimated from 100."


def test_rows_without_outputs_are_left_out(labelled: ConfidenceProfile) -> None:
    P = binary(500, 9)[0]
    P[:450] = np.nan

    result = estimate_check(labelled, P, 100)

    assert result.status is Status.INSUFFICIENT_DATA
    assert isinstance(result.details, EstimateDetails)
    assert result.details.rows == 50


def test_outputs_that_are_not_probabilities_are_not_judged(labelled: ConfidenceProfile) -> None:
    result = estimate_check(labelled, np.full((500, 2), 3.0), 100)

    assert result.status is Status.OK
    assert result.summary == "Not judged: the window's outputs are not class probabilities, so they give no confidence."


def test_a_window_like_the_reference_is_within_the_interval(labelled: ConfidenceProfile) -> None:
    result = estimate_check(labelled, binary(1000, 10)[0], 100)

    assert result.status is Status.OK
    assert isinstance(result.details, EstimateDetails)
    low, high = result.details.interval or (0.0, 0.0)
    assert low <= result.details.estimated <= high  # type: ignore[operator]
    assert result.details.alpha == ALPHA_ESTIMATE
    assert result.summary.startswith("Estimated accuracy 0.")
    assert result.summary.endswith("; from confidences calibrated on the reference's labels.")


def test_less_confident_outputs_are_an_alert_saying_the_estimate_fell(labelled: ConfidenceProfile) -> None:
    result = estimate_check(labelled, binary(1000, 11, strength=0.7)[0], 100)

    assert result.status is Status.ALERT
    assert result.summary.startswith("Estimated accuracy fell to 0.")
    assert " outside " in result.summary


def test_more_confident_outputs_only_warn_that_the_estimate_rose(labelled: ConfidenceProfile) -> None:
    result = estimate_check(labelled, binary(1000, 12, strength=6.0)[0], 100)

    assert result.status is Status.WARN
    assert result.summary.startswith("Estimated accuracy rose to 0.")


def test_the_interval_never_narrows_below_two_accuracy_points(labelled: ConfidenceProfile) -> None:
    result = estimate_check(labelled, binary(100_000, 13)[0], 100)

    assert isinstance(result.details, EstimateDetails)
    assert result.details.interval is not None
    low, high = result.details.interval
    assert high - low == pytest.approx(0.04, abs=1e-3)


def test_probabilities_of_more_classes_than_the_labels_show_give_an_unlabelled_profile() -> None:
    P, y = binary(ROWS, 14)
    three = np.column_stack([P[:, 0] * 0.9, P[:, 1] * 0.9, np.full(ROWS, 0.1)])  # a third class no label names

    reference = Reference.from_data(gaussian(ROWS, 2, seed=14), y=y, predictions=three)

    assert reference.confidence is not None
    assert not reference.confidence.labelled


def test_reference_rows_without_a_usable_prediction_are_left_out_of_the_profile() -> None:
    P, y = binary(ROWS, 15)
    P[:300] = np.nan

    reference = Reference.from_data(gaussian(ROWS, 2, seed=15), y=y, predictions=P)

    assert reference.confidence is not None
    assert reference.confidence.labelled
    assert reference.confidence.rows == ROWS - 300
    assert reference.confidence.realized == pytest.approx(float((P[300:].argmax(axis=1) != y[300:]).mean()))


# -- the window's reading moved on with the window ------------------------------------------------------------------


def reading_equal(a: EstimateRows | None, b: EstimateRows | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(astuple(a), astuple(b), strict=True))


@pytest.mark.parametrize("kind", ["labelled", "unlabelled", "regression"])
def test_a_reading_moved_on_with_the_window_is_the_reading_of_the_moved_window(labelled: ConfidenceProfile, kind: str) -> None:
    """Rows left and came, some NaN, some not probabilities: each figure is the one read afresh, bit for bit, and the
    check judged on the moved reading is the check judged afresh."""
    rng = np.random.default_rng(5)
    P = binary(3_000, 21, strength=0.8)[0]
    profile: ConfidenceProfile | None = labelled
    if kind == "unlabelled":
        profile = ConfidenceProfile.of("classification", binary(ROWS, 1)[0])
    elif kind == "regression":
        X = rng.normal(size=ROWS)
        profile = ConfidenceProfile.of("regression", X[:, None], np.abs(rng.normal(size=ROWS)) * (1 + np.abs(X)))
        P = P[:, :1] * 4 - 2
    assert profile is not None
    P[rng.integers(0, len(P), 30)] = np.nan
    start, size = 0, 400
    reading = EstimateRows.of(profile, P[:size])
    for step in range(12):
        departed, arrived = int(rng.integers(0, 120)), int(rng.integers(1, 120))
        if step == 8 and kind != "regression":  # a new row that is not a probability vector: no confidences any more
            P[start + size + arrived - 1] = [0.7, 0.7]
        assert reading is not None
        reading = reading.moved(profile, departed, P[start + size : start + size + arrived])
        start, size = start + departed, size - departed + arrived
        window = P[start : start + size]

        assert reading_equal(reading, EstimateRows.of(profile, window))
        assert estimate_check(profile, window, 100, lambda kept=reading: kept) == estimate_check(profile, window, 100)
