"""Acceptance tests for concept drift: a changed P(y | X) is flagged from labels alone, stationary labels stay quiet.

A seeded world stands in for production: inputs X ~ N(0, I) with 4 features, labels y ~ Bernoulli(sigmoid(w . x)),
and a model that predicts the class probabilities with the true w. The reference is 5,000 fresh rows with their labels
and the model's predictions. Labels are fed back right after each prediction, 50 rows at a time.

The criteria asserted are the concept check's acceptance bar:

- concept drift (P(y | X) changes, P(X) does not): flagged within 500 labelled rows of the switch, data_drift stays
  ok throughout, and the summary calls it likely concept drift;
- stationary labels: at least 99 % of health checks leave concept_drift unflagged, both for a model with about 85 %
  accuracy and for a nearly perfect one (error rate below 1 %), whose rare errors must not each raise an alarm.

Traces are cached per stream, so the several tests reading one run pay for it once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from guarded_serving import Monitor, Reference

REFERENCE_ROWS = 5_000
WINDOW = 1_000
BATCH = 50  # rows per observe() and per feedback()
FLAGGED = frozenset({"warn", "alert"})

WEIGHTS = np.array([3.0, -1.5, 1.0, 0.5])  # about 85 % accuracy
SWAPPED = WEIGHTS * np.array([-1.0, 1.0, 1.0, 1.0])  # the strongest feature's effect changes sign
STREAMS = {"85-percent-accurate": WEIGHTS, "nearly-perfect": 25 * WEIGHTS}

STABLE_ROWS = 2_000  # before the switch
SWITCHED_ROWS = 1_000  # after it, with a health check every BATCH labelled rows
DETECTION_LIMIT = 500  # labelled rows after the switch by which concept drift must be flagged

STATIONARY_ROWS = 20_000
STATIONARY_CHECK_EVERY = 250  # labelled rows between two health checks


def draw(rng: np.random.Generator, rows: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(rows, 4))
    y = (rng.random(rows) < probabilities(X, weights)[:, 1]).astype(int)
    return X, y


def probabilities(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-X @ weights))
    return np.column_stack([1 - p, p])


def reference_for(rng: np.random.Generator, weights: np.ndarray) -> Reference:
    X, y = draw(rng, REFERENCE_ROWS, weights)
    return Reference.from_data(X, y=y, predictions=probabilities(X, weights))


def serve(monitor: Monitor, rng: np.random.Generator, world: np.ndarray, model: np.ndarray) -> None:
    """One batch: the model predicts, the world's labels come back right away."""
    X, y = draw(rng, BATCH, world)
    request_id = monitor.observe(X, probabilities(X, model))
    monitor.feedback(request_id, y.tolist())


@dataclass(frozen=True)
class Check:
    labelled_after_switch: int
    concept: str
    concept_summary: str
    data: str


@dataclass(frozen=True)
class DriftTrace:
    before_switch: str  # concept_drift status at the switch
    checks: tuple[Check, ...]  # every BATCH labelled rows after it

    def first_flagged(self) -> Check | None:
        return next((c for c in self.checks if c.concept in FLAGGED), None)


@functools.cache
def drift_trace() -> DriftTrace:
    rng = np.random.default_rng(2_024)
    monitor = Monitor(reference_for(rng, WEIGHTS), window=WINDOW)
    for _ in range(STABLE_ROWS // BATCH):
        serve(monitor, rng, WEIGHTS, WEIGHTS)
    before = monitor.health().check("concept_drift").status.value
    checks = []
    for batch in range(1, SWITCHED_ROWS // BATCH + 1):
        serve(monitor, rng, SWAPPED, WEIGHTS)
        report = monitor.health()
        concept = report.check("concept_drift")
        checks.append(Check(batch * BATCH, concept.status.value, concept.summary, report.check("data_drift").status.value))
    return DriftTrace(before, tuple(checks))


@functools.cache
def stationary_statuses(stream: str) -> tuple[str, ...]:
    weights = STREAMS[stream]
    rng = np.random.default_rng(sorted(STREAMS).index(stream) + 1)
    monitor = Monitor(reference_for(rng, weights), window=WINDOW)
    statuses = []
    for batch in range(1, STATIONARY_ROWS // BATCH + 1):
        serve(monitor, rng, weights, weights)
        if batch * BATCH % STATIONARY_CHECK_EVERY == 0:
            statuses.append(monitor.health().check("concept_drift").status.value)
    return tuple(statuses)


# -- the world is what it claims ----------------------------------------------------------------------------------


def test_the_model_is_about_85_percent_accurate() -> None:
    performance = reference_for(np.random.default_rng(1), WEIGHTS).performance

    assert performance is not None
    assert 0.83 <= 1 - performance.error_mean <= 0.88


def test_the_nearly_perfect_model_errs_on_fewer_than_1_percent_of_reference_rows() -> None:
    performance = reference_for(np.random.default_rng(2), STREAMS["nearly-perfect"]).performance

    assert performance is not None
    assert 0 < performance.error_mean < 0.01


# -- concept drift --------------------------------------------------------------------------------------------------


def test_concept_drift_is_not_flagged_before_the_switch() -> None:
    assert drift_trace().before_switch == "ok"


def test_concept_drift_is_flagged_within_500_labelled_rows_of_the_switch() -> None:
    first = drift_trace().first_flagged()

    assert first is not None, [c.concept for c in drift_trace().checks]
    print(f"concept drift flagged {first.concept} {first.labelled_after_switch} labelled rows after the switch")
    assert first.labelled_after_switch <= DETECTION_LIMIT


def test_concept_drift_stays_flagged_once_the_switch_has_lasted() -> None:
    later = [c.concept for c in drift_trace().checks if c.labelled_after_switch > DETECTION_LIMIT]

    assert set(later) <= FLAGGED


def test_data_drift_stays_ok_while_only_the_concept_changes() -> None:
    assert [c.data for c in drift_trace().checks] == ["ok"] * len(drift_trace().checks)


def test_the_summary_calls_it_likely_concept_drift() -> None:
    first = drift_trace().first_flagged()

    assert first is not None
    assert "likely concept drift" in first.concept_summary


# -- stationary labels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_stationary_labels_leave_concept_drift_unflagged(stream: str) -> None:
    statuses = stationary_statuses(stream)
    flagged = sum(s in FLAGGED for s in statuses)

    print(f"{stream}: concept_drift flagged in {flagged} of {len(statuses)} checks")
    assert len(statuses) == STATIONARY_ROWS // STATIONARY_CHECK_EVERY
    assert flagged <= 0.01 * len(statuses)
