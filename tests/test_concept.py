"""Concept drift: the CUSUM change detector and the realized-performance check."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import Monitor, Reference, Status
from guarded_serving.concept import ALPHA_CONCEPT, CUSUM_HORIZON, MIN_LABELS, ConceptDetails, concept_check, cusum_alarms
from guarded_serving.health import CheckResult
from guarded_serving.performance import Performance

THRESHOLD = math.log(CUSUM_HORIZON / ALPHA_CONCEPT)  # the threshold concept_check uses: log(1e7) = 16.12


def every(period: int, rows: int) -> np.ndarray:
    """0/1 errors with one error at the end of every ``period`` rows (rate exactly 1 / period)."""
    errors = np.zeros(rows)
    errors[period - 1 :: period] = 1.0
    return errors


@pytest.fixture
def classifier_85() -> Performance:
    """A reference classifier with 85 % accuracy, measured on 5,000 rows."""
    return Performance("classification", (0, 1), 5_000, 0.15, math.sqrt(0.15 * 0.85), 0.35)


@pytest.fixture
def regressor_mae_1() -> Performance:
    """A reference regressor with MAE 1.0 (std 0.5), measured on 5,000 rows."""
    return Performance("regression", (), 5_000, 1.0, 0.5, 1.25)


def judge(
    reference: Performance | None,
    errors: np.ndarray,
    *,
    inputs_drifted: bool | None = False,
    labels_received: int | None = None,
) -> CheckResult:
    losses = errors**2 if reference is not None and reference.task == "regression" else errors
    received = len(errors) if labels_received is None else labels_received
    return concept_check(reference, errors, losses, np.zeros(len(errors)), received, 0, inputs_drifted)


# -- cusum_alarms --------------------------------------------------------------------------------------------------


def test_the_threshold_concept_check_uses_is_log_of_ten_million() -> None:
    assert round(THRESHOLD, 4) == round(math.log(1e7), 4) == 16.1181


def test_cusum_does_not_alarm_on_errors_at_the_reference_rate() -> None:
    assert cusum_alarms(every(10, 20_000), 0.1, THRESHOLD) == []


def test_cusum_does_not_alarm_on_seeded_bernoulli_errors_at_the_reference_rate() -> None:
    errors = (np.random.default_rng(11).random(20_000) < 0.1).astype(float)

    assert cusum_alarms(errors, 0.1, THRESHOLD) == []


def test_cusum_alarms_once_on_the_24th_error_of_a_sudden_run() -> None:
    # p0 = 0.1, p1 = 0.2: each error adds log 2; 23 log 2 = 15.9 < 16.12 < 24 log 2 = 16.6. The 6 errors after the
    # alarm, against the new baseline 0.2, are far from a second alarm.
    errors = np.zeros(1_000)
    errors[200:230] = 1.0

    assert cusum_alarms(errors, 0.1, THRESHOLD) == [223]


def test_after_an_alarm_a_lasting_higher_rate_is_one_alarm_not_one_per_row() -> None:
    # From row 200 on, every 5th row is an error: the rate doubles from 0.1 to 0.2 and stays there.
    # Against p0 = 0.1 each 5-row cycle adds log 2 + 4 log(0.8 / 0.9) = 0.222, so the sum after the k-th error is
    # log 2 + 0.222 (k - 1), above 16.12 from k = 71 on: row 200 + 5 * 71 - 1 = 554. Then the baseline is 0.2 and
    # the same cycle subtracts 0.46 against p1 = 0.4: no further alarm over the next 19,000 rows.
    errors = np.concatenate([np.zeros(200), every(5, 19_800)])

    assert cusum_alarms(errors, 0.1, THRESHOLD) == [554]


def test_cusum_a_lasting_jump_of_any_size_is_one_alarm() -> None:
    # From 0.1 to 0.5: after the alarm the baseline is the rate seen since the change, so it stays quiet.
    errors = np.concatenate([np.zeros(200), np.tile([1.0, 0.0], 5_000)])

    assert cusum_alarms(errors, 0.1, THRESHOLD) == [254]


def test_cusum_never_alarms_on_isolated_errors_of_a_nearly_perfect_model() -> None:
    # p0 = 0.005: an error adds log(0.055 / 0.005) = 2.4, each correct row takes 0.05 off; errors ~150 rows apart.
    gaps = np.random.default_rng(5).integers(100, 201, size=200)
    positions = np.cumsum(gaps)
    errors = np.zeros(20_000)
    errors[positions[positions < 20_000]] = 1.0
    assert 120 <= errors.sum() <= 150

    assert cusum_alarms(errors, 0.005, THRESHOLD) == []


def test_cusum_alarms_on_a_run_of_errors_of_a_nearly_perfect_model() -> None:
    # 7 errors in a row: 7 log 11 = 16.8 > 16.12 > 6 log 11 = 14.4
    errors = np.zeros(2_000)
    errors[1_000:1_007] = 1.0

    assert cusum_alarms(errors, 0.005, THRESHOLD) == [1_006]


# -- concept_check -------------------------------------------------------------------------------------------------


def test_a_flawless_small_holdout_is_not_a_rate_of_zero_to_the_detector() -> None:
    """No error in 114 held-out rows fits any rate up to ~2.3 %: errors at 1 % are healthy, not a change (against a
    rate of exactly zero, every error pushed the detector on and it alarmed); a lasting 10 % still alarms."""
    flawless = Performance("classification", (0, 1), 114, 0.0, 0.0, 0.0)
    healthy = judge(flawless, every(100, 2_000))
    assert healthy.status is Status.OK
    assert healthy.details.detector_alarms == 0
    assert judge(flawless, every(10, 2_000)).details.detector_alarms >= 1


def test_a_flawless_small_holdout_is_not_a_rate_known_to_be_zero_to_the_bound() -> None:
    """No error in 36 held-out rows fits rates up to ~8 %: 4 % errors over 250 labelled rows is no fall beyond doubt
    (the reference's noise was counted as nothing: p (1 - p) = 0, and the bound fired); 15 % is."""
    flawless = Performance("classification", (0, 1), 36, 0.0, 0.0, 0.0)

    assert judge(flawless, every(25, 250)).status is Status.OK
    assert judge(flawless, every(7, 250)).status is Status.ALERT


def test_labelled_rows_of_a_replayed_test_set_count_as_the_rows_they_are_worth() -> None:
    """A 54-row test set with 4 errors served again and again (7.4 %, as likely as 1 in 40 from a 2 % model): 250
    labelled rows hold them over and over (8.4 % here); they are worth ~45 independent rows (drift.repeats), and that
    is no fall beyond doubt from 2 % measured on 2,000 rows."""
    reference = Performance("classification", (0, 1), 2_000, 0.02, math.sqrt(0.02 * 0.98), 0.1)
    pool = np.zeros(54)
    pool[:4] = 1.0
    errors = pool[np.random.default_rng(0).integers(0, 54, 250)]

    def judged(worth: Callable[[int], float] | None) -> Status:
        return concept_check(reference, errors, errors, np.zeros(250), 250, 0, False, worth=worth).status

    assert judged(None) is Status.ALERT
    assert judged(lambda rows: rows / (1 + rows / 54)) is Status.OK


def test_the_detector_starts_from_a_rate_the_reference_rows_allow() -> None:
    seen: list[float] = []

    def detector(errors: np.ndarray, p0: float, threshold: float) -> list[int]:
        seen.append(p0)
        return cusum_alarms(errors, p0, threshold)

    for rows in (114, 10_000):
        reference = Performance("classification", (0, 1), rows, 0.04, math.sqrt(0.04 * 0.96), 0.1)
        concept_check(reference, every(25, 500), every(25, 500), np.zeros(500), 500, 0, False, detector=detector)
    assert 0.075 < seen[0] < 0.095  # 4 errors in 114 rows: up to ~8 % at 95 %
    assert 0.04 < seen[1] < 0.044  # 400 in 10,000: ~0.043


def test_without_a_reference_performance_concept_drift_is_not_judged() -> None:
    result = judge(None, every(5, 1_000))

    assert result.status is Status.OK
    assert result.summary == "Not judged: the reference has no performance (build it with y= and predictions=)."


def test_without_labels_concept_drift_is_not_judged(classifier_85: Performance) -> None:
    result = judge(classifier_85, np.zeros(0), labels_received=0)

    assert result.status is Status.OK
    assert result.summary == "Not judged: no labels received yet (POST /feedback)."
    assert (result.details.labels_received, result.details.labelled_rows, result.details.current) == (0, 0, None)


def test_fewer_labelled_rows_than_the_minimum_are_insufficient_data(classifier_85: Performance) -> None:
    result = judge(classifier_85, np.ones(MIN_LABELS - 1))

    assert result.status is Status.INSUFFICIENT_DATA
    assert result.summary == "99 labelled rows in the window; performance is judged from 100."


def test_performance_at_the_reference_level_is_ok(classifier_85: Performance) -> None:
    errors = (np.arange(1_000) % 20 < 3).astype(float)  # 3 errors in every 20 rows: the reference's 15 %

    result = judge(classifier_85, errors)

    assert result.status is Status.OK
    assert result.summary == "accuracy 0.85 over the last 1000 labelled rows (reference 0.85)."


def test_a_fall_in_accuracy_with_inputs_unchanged_is_likely_concept_drift(classifier_85: Performance) -> None:
    result = judge(classifier_85, np.tile([1.0, 1.0, 0.0, 0.0, 0.0], 200), inputs_drifted=False)

    assert result.status is Status.ALERT
    assert result.summary.startswith("accuracy fell to 0.6 (interval ")
    assert "from 0.85 over the last 1000 labelled rows" in result.summary
    assert result.summary.endswith(": performance fell while inputs look unchanged: likely concept drift.")


@pytest.mark.parametrize("inputs_drifted", [pytest.param(True, id="inputs-drifted"), pytest.param(None, id="inputs-not-judged")])
def test_a_fall_in_accuracy_is_not_called_concept_drift_unless_inputs_look_unchanged(
    classifier_85: Performance, inputs_drifted: bool | None
) -> None:
    result = judge(classifier_85, np.tile([1.0, 1.0, 0.0, 0.0, 0.0], 200), inputs_drifted=inputs_drifted)

    assert result.status is Status.ALERT
    assert "concept drift" not in result.summary


def test_a_recent_detector_alarm_without_a_significant_fall_is_a_warning() -> None:
    # 0.873 is within the confidence bound of 0.9, but 30 errors in a row alarm at row 969 + 23 = 992
    reference = Performance("classification", (0, 1), 5_000, 0.1, 0.3, 0.3)
    errors = np.concatenate([every(10, 970), np.ones(30)])

    result = judge(reference, errors)

    assert result.status is Status.WARN
    assert result.summary.startswith("accuracy fell to 0.873 (interval ")
    assert "from 0.9; the change detector alarmed at labelled row 992" in result.summary
    assert (result.details.detector_alarms, result.details.detector_last_alarm_row) == (1, 992)


def test_a_rising_mae_is_flagged(regressor_mae_1: Performance) -> None:
    result = judge(regressor_mae_1, np.tile([1.0, 2.0], 500))

    assert result.status is Status.ALERT
    assert result.summary.startswith("mae rose to 1.5 (interval ")
    assert "from 1 over the last 1000 labelled rows" in result.summary


def test_details_report_the_realized_and_reference_figures(regressor_mae_1: Performance) -> None:
    result = judge(regressor_mae_1, np.tile([1.0, 2.0], 500))

    details = result.details
    assert isinstance(details, ConceptDetails)
    assert (details.metric, details.reference, details.current) == ("mae", 1.0, 1.5)
    assert (details.loss, details.reference_loss, details.current_loss) == ("rmse", 1.118, 1.5811)  # sqrt 1.25, sqrt 2.5
    assert details.labelled_rows == 1_000
    assert details.detector_alarms == 0  # the change detector runs on classifiers' 0/1 errors only


def test_the_accuracy_interval_stays_within_0_and_1() -> None:
    reference = Performance("classification", (0, 1), 5_000, 0.005, math.sqrt(0.005 * 0.995), 0.03)

    result = judge(reference, np.zeros(1_000))

    assert result.status is Status.OK
    assert result.details.current == 1.0
    assert result.details.interval[1] == 1.0
    assert 0.98 < result.details.interval[0] < 1.0


# -- predictions that cannot be scored (NaN, missing) ------------------------------------------------------------------


@pytest.fixture(params=["in-memory", "sqlite-store"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    return tmp_path / "log.db" if request.param == "sqlite-store" else None


def labelled_health(monitor: Monitor, X: np.ndarray, predictions: list[Any], labels: list[Any]) -> CheckResult:
    for start in range(0, len(X), 50):
        rid = monitor.observe(X[start : start + 50], predictions[start : start + 50])
        monitor.flush()
        monitor.feedback(rid, labels[start : start + 50])
    return monitor.health().check("concept_drift")


def test_a_nan_prediction_does_not_hide_a_rising_mae(db: Path | None) -> None:
    rng = np.random.default_rng(21)
    X = rng.normal(size=(1000, 2))
    y = X.sum(axis=1)
    reference = Reference.from_data(X, y=y, predictions=y + rng.normal(0, 0.1, len(y)))  # MAE 0.08
    truth = rng.normal(size=(300, 2)).sum(axis=1)
    predictions: list[Any] = (truth + 5.0).tolist()  # the model is now 5 off ...
    predictions[123] = math.nan  # ... and once it answered NaN
    with Monitor(reference, db=db) as monitor:
        concept = labelled_health(monitor, rng.normal(size=(300, 2)), predictions, truth.tolist())

    assert isinstance(concept.details, ConceptDetails)
    assert concept.status is Status.ALERT
    assert (concept.details.current, concept.details.labelled_rows, concept.details.unscored_rows) == (5.0, 299, 1)
    assert "1 labelled row without a usable prediction (NaN or missing) left out" in concept.summary


def test_one_nan_probability_row_is_left_out_not_scored_as_column_zero(db: Path | None) -> None:
    rng = np.random.default_rng(22)
    X = rng.normal(size=(1000, 2))
    y = (X[:, 0] > 0).astype(int)
    P = np.c_[1 - y, y] * 0.9 + 0.05
    reference = Reference.from_data(X, y=np.where(rng.random(1000) < 0.97, y, 1 - y), predictions=P)
    labels = (rng.random(300) < 0.5).astype(int)
    flips = rng.random(300) < 0.03
    probabilities = (np.c_[1 - labels, labels] * 0.9 + 0.05)[:, :]
    probabilities[flips] = probabilities[flips][:, ::-1]  # 97 % right, like the reference
    predictions: list[Any] = probabilities.tolist()
    predictions[200] = [math.nan, math.nan]
    with Monitor(reference, db=db) as monitor:
        concept = labelled_health(monitor, rng.normal(size=(300, 2)), predictions, labels.tolist())

    assert isinstance(concept.details, ConceptDetails)
    assert concept.status is Status.OK, concept.summary
    assert concept.details.current == round(1 - flips[np.arange(300) != 200].mean(), 4)
    assert concept.details.unscored_rows == 1
