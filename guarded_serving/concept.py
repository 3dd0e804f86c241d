"""Concept drift: realized performance on labelled rows against the reference's.

Two complementary judgements over the newest labelled rows (in prediction order):

* **Realized performance with a confidence bound.** The window's error (1 - accuracy, or MAE) is
  compared with the reference's; the check fires only when the one-sided lower confidence bound of
  the difference exceeds a minimum effect, so a handful of labels never decides anything.
* **A streaming change detector** (a CUSUM of the per-row error against the reference's rate,
  tuned to detect a doubling of the error rate or 5 more points, whichever is larger). It catches a
  sudden drop within a few hundred labels, and, unlike DDM, does not re-alarm on every error of a
  nearly perfect model: each error adds log(p1/p0), each correct row subtracts a little, and only a
  run of errors too unlikely under the reference's rate crosses the threshold. After an alarm it
  restarts from the error rate it saw, so a lasting drop is one alarm, not one per row.

Both are recomputed from stored labels at every health check, so every worker answers the same (after a new
request the per-row scores and the detector's run are moved on from the last check's, with the answers of a
fresh computation: ``scored.py``, ``cusum.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from .cusum import cusum_alarms
from .health import BaselineSource, CheckResult, Status
from .performance import Performance

__all__ = ["ConceptDetails", "concept_check", "cusum_alarms"]

ALPHA_CONCEPT = 0.002
# The confidence bound's share of the model-wide false-alarm budget per health check (with data drift 0.4 %,
# prediction drift 0.15 %, data quality 0.25 %, joint drift and the estimate 0.05 % each: 1 % together); the
# CUSUM's false alarms are far rarer.
ALPHA_CONCEPT_BOUND = 0.001
MIN_LABELS = 100
MIN_ERROR_RISE = 0.02  # accuracy points (classification) ...
MIN_RELATIVE_RISE = 0.1  # ... or 10 % of the reference MAE (regression)
CUSUM_HORIZON = 20_000  # rows over which a false alarm should be rarer than ALPHA_CONCEPT
_Z = float(norm.isf(ALPHA_CONCEPT_BOUND))  # once: a scipy distribution call costs ~0.1 ms per health check
_Z_DETECTOR = float(norm.isf(0.05))  # the reference rate's upper bound the change detector starts from


@dataclass(frozen=True, slots=True)
class ConceptDetails:
    labels_received: int
    labels_replaced: int
    labelled_rows: int
    label_delay_p50_s: float | None
    label_delay_max_s: float | None
    metric: str
    reference: float | None
    current: float | None
    interval: tuple[float, float] | None
    loss: str
    reference_loss: float | None
    current_loss: float | None
    detector_alarms: int
    detector_last_alarm_row: int | None
    baseline: BaselineSource | None = None
    unscored_rows: int = 0  # labelled rows left out: their prediction was NaN or missing


def concept_check(
    reference: Performance | None,
    errors: np.ndarray,
    losses: np.ndarray,
    delays: np.ndarray,
    labels_received: int,
    labels_replaced: int,
    inputs_drifted: bool | None,
    unscored: int = 0,
    baseline: BaselineSource | None = None,
    detector: Callable[[np.ndarray, float, float], list[int]] = cusum_alarms,
    worth: Callable[[int], float] | None = None,
) -> CheckResult:
    """Judge labelled rows (oldest first) against the reference performance (``baseline`` says what it is).
    ``errors`` and ``losses`` are the rows that could be scored; ``unscored`` labelled rows had no usable
    prediction and are named. Realized figures only: the estimate from the model's outputs is the
    ``estimated_performance`` check's. ``detector`` finds the change detector's alarms as :func:`cusum_alarms`
    does (a caller may move its last run on instead). ``worth``: what ``n`` labelled rows are worth as independent
    ones, when the stream repeats its rows (drift.repeats: a replayed test set repeats its errors too)."""
    n = len(errors)

    def details(
        current: float | None = None, interval: tuple[float, float] | None = None, alarms: list[int] | None = None
    ) -> ConceptDetails:
        metric = reference.metric if reference else "accuracy"
        return ConceptDetails(
            labels_received=labels_received,
            labels_replaced=labels_replaced,
            labelled_rows=n,
            label_delay_p50_s=round(float(np.median(delays)), 3) if len(delays) else None,
            label_delay_max_s=round(float(np.max(delays)), 3) if len(delays) else None,
            metric=metric,
            reference=round(reference.metric_value(reference.error_mean), 4) if reference else None,
            current=round(current, 4) if current is not None else None,
            interval=(round(interval[0], 4), round(interval[1], 4)) if interval else None,
            loss=reference.loss_name if reference else "log_loss",
            reference_loss=round(reference.loss_value(reference.loss_mean), 4) if reference else None,
            current_loss=round(reference.loss_value(float(losses.mean())), 4) if reference and n else None,
            detector_alarms=len(alarms or []),
            detector_last_alarm_row=(alarms[-1] if alarms else None),
            baseline=baseline if reference else None,
            unscored_rows=unscored,
        )

    if reference is None:
        summary = "Not judged: the reference has no performance (build it with y= and predictions=)."
        return CheckResult("concept_drift", Status.OK, summary, details())
    if labels_received == 0:
        return CheckResult("concept_drift", Status.OK, "Not judged: no labels received yet (POST /feedback).", details())
    left_out = ""
    if unscored:
        rows = "row" if unscored == 1 else "rows"
        left_out = f"; {unscored} labelled {rows} without a usable prediction (NaN or missing) left out"
    if n < MIN_LABELS:
        summary = f"{n} labelled rows in the window; performance is judged from {MIN_LABELS}{left_out}."
        return CheckResult("concept_drift", Status.INSUFFICIENT_DATA, summary, details())
    mean = float(errors.mean())
    # One-sided confidence bound on (window error - reference error); the reference's own noise counts too.
    z = _Z
    judged = worth(n) if worth is not None else n
    m = max(reference.rows, 1)
    var_window = float(errors.var()) if reference.task == "regression" else max(mean * (1 - mean), 1 / judged)
    # a reference without an error is not a rate known to be zero: at least one error's worth of noise, as the window
    var_ref = (
        reference.error_std**2
        if reference.task == "regression"
        else max(reference.error_mean * (1 - reference.error_mean), 1 / m)
    )
    se = math.sqrt(var_window / judged + var_ref / m)
    rise = mean - reference.error_mean
    lower = rise - z * se
    minimum = MIN_ERROR_RISE if reference.task == "classification" else MIN_RELATIVE_RISE * max(reference.error_mean, 1e-12)
    worse = lower > 0 and rise >= minimum
    current = reference.metric_value(mean)
    half = z * se
    interval = (reference.metric_value(mean + half), reference.metric_value(mean - half))
    upper_bound = 1.0 if reference.task == "classification" else math.inf
    interval = (max(min(interval), 0.0), min(max(interval), upper_bound))
    alarms: list[int] = []
    if reference.task == "classification":
        threshold = math.log(CUSUM_HORIZON / ALPHA_CONCEPT)
        alarms = detector(errors, _detector_rate(reference.error_mean, reference.rows), threshold)
    recent_alarm = bool(alarms) and alarms[-1] >= n - MIN_LABELS * 5
    info = details(current, interval, alarms)
    name = reference.metric
    ref_value = reference.metric_value(reference.error_mean)
    against = "served" if baseline is not None and baseline.since is not None else "reference"
    if not worse and not recent_alarm:
        summary = f"{name} {current:.3g} over the last {n} labelled rows ({against} {ref_value:.3g}){left_out}."
        return CheckResult("concept_drift", Status.OK, summary, info)
    status = Status.ALERT if worse else Status.WARN
    verb = "fell" if reference.task == "classification" else "rose"
    summary = f"{name} {verb} to {current:.3g} (interval {interval[0]:.3g}-{interval[1]:.3g}) from {ref_value:.3g}"
    summary += " (served)" if against == "served" else ""
    summary += f" over the last {n} labelled rows" if worse else f"; the change detector alarmed at labelled row {alarms[-1]}"
    if inputs_drifted is False:
        summary += ": performance fell while inputs look unchanged: likely concept drift"
    return CheckResult("concept_drift", status, summary + left_out + ".", info)


def _detector_rate(error_mean: float, rows: int) -> float:
    """The error rate the change detector runs against: the reference's, raised to the upper end of its own
    one-sided 95 % interval (Wilson's). The detector's budget holds for a known rate; a rate measured on a small
    held-out set is not one (4 errors in 114 rows is 0.035, and any rate up to 0.07 fits them), and a set with no
    error is not a rate of zero, against which every error is an alarm. On 10,000 reference rows it moves 0.10 to
    0.105."""
    n = max(rows, 1)
    z2 = _Z_DETECTOR**2
    centre = error_mean + z2 / (2 * n)
    spread = _Z_DETECTOR * math.sqrt(error_mean * (1 - error_mean) / n + z2 / (4 * n * n))
    return min((centre + spread) / (1 + z2 / n), 1.0)
