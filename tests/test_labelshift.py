"""Estimated performance under a shift of the class mix: an imbalanced binary classifier whose positives go from 5 %
to 12 % of traffic (P(x | y) unchanged) loses accuracy while its confidences barely move; the estimate's
label-shift reading must leave its interval before any label arrives, and stay inside on healthy traffic.

The world: six normal features, the first three shifted by 1.2 for positives; a logistic regression trained on
5,000 rows, the reference its probabilities on 5,000 held-out rows with their labels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from guarded_serving import Monitor, Reference
from guarded_serving.confidence import profile_of
from guarded_serving.errors import InvalidReferenceError
from guarded_serving.estimate import ALPHA_ESTIMATE
from guarded_serving.labelshift import MIN_CLASS_ROWS, ClassMixShift, LabelShift, ShiftReading, shift_from_json, shift_of
from guarded_serving.performance import Performance

WINDOW = 2_000
CHECK_EVERY = 250
FLAGGED = frozenset({"warn", "alert"})


def world(rng: np.random.Generator, rows: int, positives: float) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(rows) < positives).astype(int)
    X = rng.normal(size=(rows, 6))
    X[:, :3] += 1.2 * y[:, None]
    return X, y


@functools.cache
def model_and_reference(seed: int) -> tuple[LogisticRegression, Reference]:
    rng = np.random.default_rng(seed)
    model = LogisticRegression().fit(*world(rng, 5_000, 0.05))
    X, y = world(rng, 5_000, 0.05)
    return model, Reference.from_data(X, y=y, predictions=model.predict_proba(X))


def timeline(
    model: LogisticRegression, reference: Reference, healthy: np.ndarray, shifted: np.ndarray, y: np.ndarray
) -> tuple[list[dict], float]:
    """The estimate check every 250 rows of ``shifted`` after a window of ``healthy`` rows; the accuracy realized on
    the last window of them."""
    monitor = Monitor(reference, window=WINDOW)
    monitor.observe(healthy, model.predict_proba(healthy))
    P = model.predict_proba(shifted)
    checks = []
    for start in range(0, len(shifted), CHECK_EVERY):
        monitor.observe(shifted[start : start + CHECK_EVERY], P[start : start + CHECK_EVERY])
        check = monitor.health().to_json()["checks"]["estimated_performance"]
        checks.append({**check, "after": start + CHECK_EVERY})  # rows of shifted traffic so far
    return checks, float((P[-WINDOW:].argmax(axis=1) == y[-WINDOW:]).mean())


def checks_after(seed: int, positives: float) -> tuple[list[dict], float]:
    """:func:`timeline` of 4,000 rows at ``positives``."""
    model, reference = model_and_reference(seed)
    rng = np.random.default_rng(seed + 100)
    healthy, _ = world(rng, WINDOW, 0.05)
    return timeline(model, reference, healthy, *world(rng, 2 * WINDOW, positives))


def test_more_positives_move_the_label_shift_reading_out_within_one_window() -> None:
    checks, realized = checks_after(0, 0.12)
    _, reference = model_and_reference(0)
    assert reference.confidence is not None
    assert reference.confidence.label_shift is not None

    timeline = ", ".join(f"{c['after']}:{c['status']}:{c['estimated']}/{c.get('label_shift_estimated')}" for c in checks)
    first = next((c for c in checks if c["status"] in FLAGGED), None)
    assert first is not None, timeline
    assert first["after"] <= WINDOW, timeline
    low, _high = first["label_shift_interval"]
    assert first["label_shift_estimated"] < low, first
    assert "shift of the class mix" in first["summary"]
    assert "fell to" in first["summary"]
    # What the reading is for: the confidences stayed inside their interval while accuracy fell.
    assert first["interval"][0] <= first["estimated"] <= first["interval"][1], first
    later = [c for c in checks if c["after"] >= WINDOW]
    assert all(c["status"] in FLAGGED for c in later), timeline
    # and the reading says about how much (its own noise: ~0.01 from the window's count, more from the reference's)
    assert later[-1]["label_shift_estimated"] == pytest.approx(realized, abs=0.04), (later[-1], realized)
    assert realized < reference.confidence.label_shift.accuracy - 0.03


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_healthy_imbalanced_traffic_keeps_the_estimate_inside(seed: int) -> None:
    checks, _ = checks_after(seed, 0.05)

    flagged = [c["summary"] for c in checks if c["status"] in FLAGGED]
    assert not flagged, flagged
    assert all(c["label_shift_interval"][0] <= c["label_shift_estimated"] <= c["label_shift_interval"][1] for c in checks)


def healthy_readings(draw: Callable[[int], tuple[np.ndarray, np.ndarray]], classes: int) -> list[ShiftReading]:
    """The readings of 200 healthy windows of 2,000 rows against each of 20 references of 5,000 (``draw(rows)``:
    predicted and true classes), those that give one."""
    readings = []
    for _ in range(20):
        shift = shift_of(*draw(5_000), classes)
        if shift is None:
            continue
        for _ in range(200):
            predicted, _ = draw(WINDOW)
            reading = shift.read(predicted, ALPHA_ESTIMATE / 2)
            assert reading is not None
            readings.append(reading)
    return readings


def test_the_exact_test_keeps_rare_predicted_positives_within_budget() -> None:
    """A weak model on 2 % positives predicts ~5 positives in 5,000 reference rows and ~2 in a window of 2,000:
    a normal interval on such counts flagged ~1.5 % of healthy windows (60 times its share); the exact test must
    not. 20 references x 200 windows, predicted positive when x > the Bayes boundary."""
    rng = np.random.default_rng(7)

    def draw(rows: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(rows) < 0.02).astype(int)
        x = rng.normal(size=rows) + 1.5 * y
        return (x > 0.75 + np.log(49) / 1.5).astype(int), y

    readings = healthy_readings(draw, 2)
    flagged, judged = sum(r.outside for r in readings), len(readings)
    assert judged >= 3_000
    assert flagged <= 2, f"{flagged} of {judged} healthy windows flagged; budget {ALPHA_ESTIMATE / 2:.2%}"


def test_the_line_meets_the_reference_accuracy_at_its_own_share() -> None:
    rng = np.random.default_rng(3)
    truth = (rng.random(3_000) < 0.1).astype(int)
    predicted = np.where(rng.random(3_000) < 0.8, truth, 1 - truth)
    shift = LabelShift.of(predicted, truth, 2)

    assert shift is not None
    assert shift.accuracy == pytest.approx(float((predicted == truth).mean()), abs=1e-12)
    assert shift.at(shift.positives, shift.rows) == pytest.approx(shift.accuracy, abs=1e-12)
    assert LabelShift.from_json(shift.to_json()) == shift


@pytest.mark.parametrize(
    ("predicted", "truth", "classes"),
    [
        pytest.param(np.zeros(300, dtype=int), np.arange(300) % 2, 2, id="positives-never-predicted"),
        pytest.param(np.arange(300) % 2, (np.arange(300) < MIN_CLASS_ROWS - 1).astype(int), 2, id="too-few-positives"),
        pytest.param(np.arange(300) % 3, np.arange(300) % 3, 3, id="three-classes"),
        pytest.param(np.arange(300) % 2, (np.arange(300) // 2) % 2, 2, id="predictions-independent-of-class"),
    ],
)
def test_no_reading_where_the_reference_cannot_give_one(predicted: np.ndarray, truth: np.ndarray, classes: int) -> None:
    assert LabelShift.of(predicted, truth, classes) is None


def test_a_reference_saved_before_the_reading_loads_without_it() -> None:
    _, reference = model_and_reference(0)
    saved = reference.to_json()
    assert saved["confidence"]["label_shift"]["positives"] > 0
    del saved["confidence"]["label_shift"]

    loaded = Reference.from_json(saved)

    assert loaded.confidence is not None
    assert loaded.confidence.label_shift is None
    assert Reference.from_json(reference.to_json()).confidence == reference.confidence


def test_labels_outside_the_classes_are_left_out_of_the_line() -> None:
    rng = np.random.default_rng(5)
    y = np.array(["no", "yes"])[(rng.random(1_000) < 0.2).astype(int)]
    p = np.where(y == "yes", 0.8, 0.2)
    probabilities = np.column_stack([1 - p, p])
    labels = y.astype(object)
    labels[:50] = "maybe"
    performance = Performance("classification", ("no", "yes"), 1_000, 0.0, 0.0, 0.0)

    profile = profile_of(probabilities, performance, labels)

    assert profile is not None
    assert profile.label_shift is not None
    assert profile.label_shift.rows == 950
    assert profile.label_shift.accuracy == pytest.approx(1.0)


# --- three classes or more --------------------------------------------------------------------------------------
# The world: three classes (60 / 25 / 15 %), six normal features, the second class shifted by 1.0 on the first
# two, the third on the next two; a logistic regression trained on 5,000 rows, the reference its probabilities on
# 5,000 held-out rows with their labels. The shifted mix: 30 / 25 / 45 %, more of the class it confuses most.

MIX = (0.6, 0.25, 0.15)


def three_classes(rng: np.random.Generator, rows: int, mix: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    y = rng.choice(3, rows, p=mix)
    X = rng.normal(size=(rows, 6))
    X[:, :2] += 1.0 * (y == 1)[:, None]
    X[:, 2:4] += 1.0 * (y == 2)[:, None]
    return X, y


@functools.cache
def three_class_model(seed: int) -> tuple[LogisticRegression, Reference]:
    rng = np.random.default_rng(seed)
    model = LogisticRegression().fit(*three_classes(rng, 5_000, MIX))
    X, y = three_classes(rng, 5_000, MIX)
    return model, Reference.from_data(X, y=y, predictions=model.predict_proba(X))


def three_class_checks(seed: int, mix: tuple[float, ...]) -> tuple[list[dict], float]:
    """:func:`timeline` of 4,000 rows of the three-class world at ``mix``."""
    model, reference = three_class_model(seed)
    rng = np.random.default_rng(seed + 100)
    healthy, _ = three_classes(rng, WINDOW, MIX)
    return timeline(model, reference, healthy, *three_classes(rng, 2 * WINDOW, mix))


def test_a_three_class_model_s_shifted_mix_moves_the_reading_out_within_one_window() -> None:
    checks, realized = three_class_checks(0, (0.3, 0.25, 0.45))
    _, reference = three_class_model(0)
    assert reference.confidence is not None
    shift = reference.confidence.label_shift
    assert isinstance(shift, ClassMixShift)

    timeline = ", ".join(f"{c['after']}:{c['status']}:{c['estimated']}/{c.get('label_shift_estimated')}" for c in checks)
    first = next((c for c in checks if c["status"] in FLAGGED), None)
    assert first is not None, timeline
    assert first["after"] <= WINDOW // 2, timeline
    assert first["label_shift_estimated"] < first["label_shift_interval"][0], first
    assert "shift of the class mix" in first["summary"]
    assert "fell to" in first["summary"]
    assert first["interval"][0] <= first["estimated"] <= first["interval"][1], first  # the confidences did not see it
    later = [c for c in checks if c["after"] >= first["after"]]
    assert all(c["status"] in FLAGGED for c in later), timeline
    assert later[-1]["label_shift_estimated"] == pytest.approx(realized, abs=0.05), (later[-1], realized)
    assert realized < shift.accuracy - 0.1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_healthy_three_class_traffic_keeps_the_estimate_inside(seed: int) -> None:
    checks, _ = three_class_checks(seed, MIX)

    assert not [c["summary"] for c in checks if c["status"] in FLAGGED]
    assert all(c["label_shift_interval"][0] <= c["label_shift_estimated"] <= c["label_shift_interval"][1] for c in checks)


def test_a_rarely_predicted_class_keeps_the_three_class_reading_within_budget() -> None:
    """A third class of 2 % that a weak model predicts ~8 times in 5,000 reference rows and ~3 in a window of
    2,000: its weight in the plane is huge (-30), and the normal interval alone flagged ~1 % of healthy windows (40
    times the reading's share of the budget); the class-by-class exact tests must keep it within. 20 references x
    200 windows."""
    rng = np.random.default_rng(8)

    def draw(rows: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(3, rows, p=[0.7, 0.28, 0.02])
        x = rng.normal(size=rows) + 1.2 * (y == 1) + 2.5 * (y == 2)
        return np.digitize(x, [0.6, 4.0]), y

    readings = healthy_readings(draw, 3)
    flagged, judged = sum(r.outside for r in readings), len(readings)
    beyond_the_interval = sum(not r.low <= r.estimated <= r.high for r in readings)
    assert judged >= 3_000
    assert beyond_the_interval >= 10  # the hard case: the interval alone would flag
    assert flagged <= 2, f"{flagged} of {judged} healthy windows flagged; budget {ALPHA_ESTIMATE / 2:.2%}"


def test_the_three_class_plane_meets_the_reference_accuracy_at_its_own_shares() -> None:
    rng = np.random.default_rng(4)
    truth = rng.choice(3, 3_000, p=[0.5, 0.3, 0.2])
    predicted = np.where(rng.random(3_000) < 0.75, truth, rng.integers(0, 3, 3_000))
    shift = shift_of(predicted, truth, 3)

    assert isinstance(shift, ClassMixShift)
    assert shift.accuracy == pytest.approx(float((predicted == truth).mean()), abs=1e-12)
    reading = shift.reading(np.array(shift.predicted), ALPHA_ESTIMATE / 2)
    assert reading.estimated == pytest.approx(shift.accuracy, abs=1e-12)
    assert not reading.outside
    assert shift_from_json(shift.to_json()) == shift
    _, reference = three_class_model(0)
    assert Reference.from_json(reference.to_json()).confidence == reference.confidence


@pytest.mark.parametrize(
    ("predicted", "truth", "classes"),
    [
        pytest.param(np.arange(300) % 2, np.arange(300) % 3, 3, id="a-class-never-predicted"),
        pytest.param(np.arange(300) % 3, np.minimum(np.arange(300) // (MIN_CLASS_ROWS - 1), 2), 3, id="too-few-rows"),
        pytest.param(np.arange(300) % 3, (np.arange(300) // 3) % 3, 3, id="predictions-independent-of-class"),
        pytest.param(np.arange(300) % 2, np.arange(300) % 2, 2, id="two-classes"),
    ],
)
def test_no_three_class_reading_where_the_reference_cannot_give_one(
    predicted: np.ndarray, truth: np.ndarray, classes: int
) -> None:
    assert ClassMixShift.of(predicted, truth, classes) is None


def test_a_saved_three_class_reading_that_does_not_add_up_is_refused() -> None:
    document = {"rows": 100, "predicted": [50, 30, 10], "weights": [1.0, 1.0, 1.0], "accuracy": 0.8, "spread": 0.3}

    with pytest.raises(InvalidReferenceError, match=r"\[50, 30, 10\] reference rows predicted per class of 100"):
        shift_from_json(document)
