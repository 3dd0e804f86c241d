"""Acceptance tests for estimated performance: before any label arrives, a shift that costs accuracy moves the
estimate out of its interval, and healthy traffic keeps it inside.

A seeded world stands in for production: three classes in two informative features plus two noise features,
class 0 far from the others, classes 1 and 2 overlapping. The model returns the exact posterior under the
reference's class mix (so it is calibrated there); the reference holds 5,000 rows with the model's probabilities
and labels. No label is ever fed back: everything here is judged from the outputs alone.

- a class-prior shift (from 50/25/25 % to 10/45/45 %, P(x | y) unchanged) brings more rows of the hard classes;
- a covariate shift brings rows near the boundary between classes 1 and 2, where the model is unsure (P(y | x)
  unchanged, so the model stays calibrated and its estimate should match the accuracy it really has there);
- healthy traffic of the reference's world, health every 250 rows over 20,000 rows, windows of 500 and 2,000.

A regressor whose noise grows with |x| stands in for the regression analogue (the reference's MAE per decile of
the prediction); a model whose confidences are sharpened and a reference without labels show when the estimate
cannot be taken at its word.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from guarded_serving import Monitor, Reference

REFERENCE_ROWS = 5_000
CHECK_EVERY = 250
BATCH = 50
FLAGGED = frozenset({"warn", "alert"})
WINDOWS = (500, 2000)
MEANS = np.array([[-3.0, 0.0], [1.0, 0.0], [2.2, 0.5]])
PRIORS = np.array([0.5, 0.25, 0.25])
SHIFTED_PRIORS = np.array([0.1, 0.45, 0.45])


def posterior(X: np.ndarray, priors: np.ndarray = PRIORS, sharpen: float = 1.0) -> np.ndarray:
    """The model: P(class | x) for unit-variance classes around MEANS, under ``priors``; ``sharpen`` > 1 makes it
    overconfident."""
    logits = -0.5 * ((X[:, None, :2] - MEANS[None]) ** 2).sum(axis=2) + np.log(priors)
    p = np.exp(sharpen * (logits - logits.max(axis=1, keepdims=True)))
    return np.asarray(p / p.sum(axis=1, keepdims=True))


def by_class(rng: np.random.Generator, rows: int, priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = rng.choice(3, size=rows, p=priors)
    X = np.column_stack([MEANS[y] + rng.normal(size=(rows, 2)), rng.normal(size=(rows, 2))])
    return X, y


def near_the_boundary(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs between classes 1 and 2, labels from the world's own P(y | x): a covariate shift."""
    X = np.column_stack([rng.normal(1.6, 0.4, rows), rng.normal(0.25, 0.6, rows), rng.normal(size=(rows, 2))])
    truth = posterior(X)
    y = (rng.random(rows)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    return X, y


def three_class_reference(sharpen: float = 1.0, labelled: bool = True) -> Reference:
    """The world's reference: 5,000 rows of seed 1 under the reference's class mix, with the model's posterior."""
    X, y = by_class(np.random.default_rng(1), REFERENCE_ROWS, PRIORS)
    return Reference.from_data(X, y=y if labelled else None, predictions=posterior(X, sharpen=sharpen))


@dataclass(frozen=True)
class Check:
    rows: int
    status: str
    summary: str
    estimated: float | None
    interval: tuple[float, float] | None


def stream(monitor: Monitor, X: np.ndarray, P: np.ndarray) -> list[Check]:
    checks = []
    for start in range(0, len(X), CHECK_EVERY):
        for lo in range(start, start + CHECK_EVERY, BATCH):
            monitor.observe(X[lo : lo + BATCH], P[lo : lo + BATCH])
        check = monitor.health().check("estimated_performance")
        interval = check.details.interval
        checks.append(Check(start + CHECK_EVERY, check.status.value, check.summary, check.details.estimated, interval))
    return checks


@functools.cache
def healthy(window: int) -> list[Check]:
    rng = np.random.default_rng(window)
    X, _ = by_class(rng, 20_000, PRIORS)
    return stream(Monitor(three_class_reference(), window=window), X, posterior(X))


@functools.cache
def shifted(kind: str, window: int) -> tuple[list[Check], float]:
    """One healthy window, then 4,000 shifted rows; the checks after the switch and the realized accuracy."""
    rng = np.random.default_rng((window, len(kind)))
    monitor = Monitor(three_class_reference(), window=window)
    X, _ = by_class(rng, window, PRIORS)
    stream(monitor, X, posterior(X))
    X, y = by_class(rng, 4_000, SHIFTED_PRIORS) if kind == "prior" else near_the_boundary(rng, 4_000)
    P = posterior(X)
    return stream(monitor, X, P), float((P.argmax(axis=1) == y).mean())


@pytest.mark.parametrize("window", WINDOWS, ids=[f"window{w}" for w in WINDOWS])
def test_healthy_traffic_keeps_the_estimate_inside_its_interval(window: int) -> None:
    checks = healthy(window)

    outside = [c for c in checks if c.status in FLAGGED]

    assert len(outside) <= 0.01 * len(checks), [c.summary for c in outside[:3]]
    assert checks[-1].summary.startswith("Estimated accuracy 0.")
    assert "within" in checks[-1].summary


@pytest.mark.parametrize("kind", ["prior", "covariate"])
@pytest.mark.parametrize("window", WINDOWS, ids=[f"window{w}" for w in WINDOWS])
def test_a_costly_shift_moves_the_estimate_out_of_its_interval_within_one_window(kind: str, window: int) -> None:
    checks, _ = shifted(kind, window)

    first = next((c for c in checks if c.status == "alert"), None)

    timeline = ", ".join(f"{c.rows}:{c.status}:{c.estimated}" for c in checks)
    assert first is not None, f"{kind} shift never moved the estimate out: {timeline}"
    assert first.rows <= window, timeline
    assert first.interval is not None
    assert first.estimated is not None
    assert first.estimated < first.interval[0]
    assert "fell to" in first.summary
    assert "outside" in first.summary


@pytest.mark.parametrize("kind", ["prior", "covariate"])
def test_the_estimate_stays_out_once_the_window_is_all_shifted(kind: str) -> None:
    checks, _ = shifted(kind, 2000)

    later = [c.status for c in checks if c.rows >= 2000]

    assert set(later) == {"alert"}, later


def test_under_a_covariate_shift_the_estimate_matches_the_realized_accuracy() -> None:
    checks, realized = shifted("covariate", 2000)

    estimated = checks[-1].estimated

    assert estimated is not None
    print(f"covariate shift: estimated accuracy {estimated:.3f}, realized {realized:.3f}")
    assert abs(estimated - realized) <= 0.03


def test_a_badly_calibrated_model_is_said_not_to_be_trusted() -> None:
    monitor = Monitor(three_class_reference(sharpen=3.0), window=1000)
    X, _ = by_class(np.random.default_rng(7), 1000, PRIORS)
    monitor.observe(X, posterior(X, sharpen=3.0))

    check = monitor.health().check("estimated_performance")

    assert check.status.value == "ok"
    assert check.details.trusted is False
    assert check.details.reference_expected_accuracy > check.details.reference_realized + 0.05
    assert "badly calibrated on the reference" in check.summary
    assert abs(check.details.estimated - check.details.reference_realized) <= 0.03  # recalibrated on the labels


def test_without_labels_the_estimate_trusts_the_model_and_says_so() -> None:
    monitor = Monitor(three_class_reference(labelled=False), window=1000)
    X, _ = by_class(np.random.default_rng(8), 1000, PRIORS)
    monitor.observe(X, posterior(X))

    check = monitor.health().check("estimated_performance")

    assert check.status.value == "ok"
    assert check.details.trusted is False
    assert check.details.basis == "from the model's own confidences"
    assert check.summary.endswith("Unverified: the reference has no labels to check them against.")


def test_an_untrusted_estimate_warns_instead_of_alerting() -> None:
    monitor = Monitor(three_class_reference(labelled=False), window=500)
    X, _ = near_the_boundary(np.random.default_rng(9), 500)
    monitor.observe(X, posterior(X))

    check = monitor.health().check("estimated_performance")

    assert check.status.value == "warn"
    assert "fell to" in check.summary


# -- the regression analogue -------------------------------------------------------------------------------------


def noisy_line(rng: np.random.Generator, rows: int, centre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """y = 2x + noise whose spread grows with |x|; the model predicts 2x."""
    x = rng.normal(centre, 1.0, rows)
    return x.reshape(-1, 1), 2 * x + rng.normal(size=rows) * (0.2 + np.abs(x))


@functools.cache
def regression_run(centre: float) -> list[Check]:
    rng = np.random.default_rng(int(10 * centre) + 3)
    X, y = noisy_line(rng, REFERENCE_ROWS)
    monitor = Monitor(Reference.from_data(X, y=y, predictions=2 * X[:, 0]), window=1000)
    X, _ = noisy_line(rng, 6_000, centre)
    return stream(monitor, X, 2 * X[:, 0])


def test_a_regressor_moving_where_it_errs_more_raises_its_estimated_mae() -> None:
    checks = regression_run(2.5)

    first = next((c for c in checks if c.status == "alert"), None)

    timeline = [(c.rows, c.status) for c in checks]
    assert first is not None, timeline
    assert first.rows <= 1000, timeline
    assert first.summary.startswith("Estimated mae rose to ")
    assert "from the reference's MAE per decile of the prediction" in first.summary


def test_a_healthy_regressor_keeps_its_estimated_mae_inside() -> None:
    checks = regression_run(0.0)

    assert all(c.status == "ok" for c in checks if c.rows >= 1000), [c.summary for c in checks if c.status != "ok"][:3]
