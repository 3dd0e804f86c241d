"""Estimated performance: how well the model is probably doing, from its outputs alone, before labels arrive.

For a classifier returning probabilities, each row's chance of being right is read off its confidence
(its largest probability), as NannyML's CBPE does, through what the reference says a row of that confidence
is worth (:mod:`guarded_serving.confidence`: calibrated on the reference's labels when it has them; without
labels the model's own confidences are taken at their word, and the report says the estimate is unverified).
The reference's own estimate is then its realized accuracy (labelled) or its mean confidence (not).

For a regressor there is no confidence; the analogue kept here is the reference's mean absolute error
per decile of the prediction: a window whose predictions move where the model erred more is estimated
to err more. It needs a labelled reference, and it says nothing when errors do not depend on the
prediction's level (homoscedastic noise): then it stays flat, neither alarming nor reassuring.

The check compares the window's estimate with the reference's: the difference of two means of bounded
per-row values, normal at these sizes, judged at its own share of the false-alarm budget
(:data:`ALPHA_ESTIMATE`) with a minimum effect (2 accuracy points, 10 % of the reference MAE). Confidences
cannot see a shift of the class mix (P(y | x) is what it changes), so a labelled classifier is also read
as one (:mod:`guarded_serving.labelshift`), each reading at half the share; the confidences' reading leaving its
interval is an alert when worse and trusted, the class mix's alone a warning. It never mixes in realized figures:
those are the ``concept_drift`` check's, from labels.

A reference built from the model's training rows (the one-liner's) has no profile: the model is overconfident there.
Once its performance baseline is adopted from served labels (:mod:`guarded_serving.baselines`), the profile of the
same labelled rows stands in, and everything the check says of it names it as served (``baseline``, "(served 0.731)",
"calibrated on served labels").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.stats import norm

from .confidence import ConfidenceProfile, row_scores
from .health import BaselineSource, CheckResult, Status
from .labelshift import ClassMixShift, LabelShift, ShiftReading

__all__ = ["ALPHA_ESTIMATE", "ConfidenceProfile", "EstimateDetails", "EstimateRows", "estimate_check", "moved_rows"]

ALPHA_ESTIMATE = 0.0005  # its share of the model-wide false-alarm budget per health check
_Z = float(norm.isf(ALPHA_ESTIMATE / 2))  # once: a scipy distribution call costs ~0.1 ms
_Z_EACH = float(norm.isf(ALPHA_ESTIMATE / 4))  # each of two readings (confidences, class mix) at half the share
MIN_CHANGE_ACCURACY = 0.02
MIN_CHANGE_MAE = 0.1  # relative to the reference MAE


@dataclass(frozen=True, eq=False)
class EstimateRows:
    """A window's outputs read row by row for the estimate, kept to move on with the window (a new request reads
    its own rows, not the window's 2,000 again): each row's expected error, whether it has a score (``kept``),
    and whether it is a finite row that is not a probability vector (``spoiling``: then the window's outputs
    are not confidences), and a classifier's predicted class (its largest probability's column; -1 without a
    score). Every figure is one row's, so the rows moved on are those read afresh, bit for bit."""

    kept: np.ndarray
    expected: np.ndarray
    spoiling: np.ndarray
    predicted: np.ndarray

    @classmethod
    def of(cls, profile: ConfidenceProfile, outputs: np.ndarray) -> EstimateRows | None:
        """The rows of ``outputs`` (rows x output columns), or None when their shape gives no score."""
        if not len(outputs):
            return cls(np.zeros(0, dtype=bool), np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.intp))
        read = row_scores(profile.task, outputs)
        if read is None:
            return None
        scores, spoiling, predicted = read
        return cls(np.isfinite(scores), profile.expected_errors(scores), spoiling, predicted)

    def moved(self, profile: ConfidenceProfile, departed: int, arrived: np.ndarray | None) -> EstimateRows | None:
        """These rows without the oldest ``departed``, with the ``arrived`` outputs' rows after them."""
        new = EstimateRows.of(profile, arrived) if arrived is not None else None
        if new is None:
            return None
        return EstimateRows(
            np.concatenate([self.kept[departed:], new.kept]),
            np.concatenate([self.expected[departed:], new.expected]),
            np.concatenate([self.spoiling[departed:], new.spoiling]),
            np.concatenate([self.predicted[departed:], new.predicted]),
        )


class _Results(Protocol):
    """Results kept on one window's contents, updated from how it moved (a :class:`~guarded_serving.monitor.memo.Generation`)."""

    def get(self, key: Hashable, compute: Callable[[], Any], update: Callable[[Any, Any], Any] | None = None) -> Any: ...


def moved_rows(
    profile: ConfidenceProfile | None, outputs: np.ndarray | None, same: _Results, baseline: BaselineSource | None = None
) -> Callable[[], EstimateRows | None] | None:
    """The reading of a window's outputs for :func:`estimate_check`: kept in ``same``, and moved on from the last
    window's when the window moved (``move.departed`` oldest rows left, ``move.arrived_outputs`` came); keyed by the
    profile and where it came from (``baseline``), so a reading by the reference's is never handed to a served one."""
    if profile is None or outputs is None:
        return None
    held = profile, outputs

    def rows() -> EstimateRows | None:
        return same.get(  # type: ignore[no-any-return]
            ("estimate_rows", baseline, profile),
            lambda: EstimateRows.of(*held),
            lambda last, move: last.moved(profile, move.departed, move.arrived_outputs),
        )

    return rows


@dataclass(frozen=True, slots=True)
class EstimateDetails:
    """``estimated`` is the window's estimate, ``reference`` the same estimate on the reference, and
    ``interval`` the range it stays in on healthy traffic; all estimates, none realized. ``trusted`` is
    False when the reference cannot vouch for the estimate (no labels, or confidences badly calibrated).
    ``baseline`` says where the profile came from, as other checks' do: the reference's rows (``held-out rows``,
    ``reference rows``), or ``served traffic`` when it is the labelled served rows the performance baseline was
    adopted from (``reference`` is then their figure, and the summary says "served")."""

    metric: str
    rows: int
    min_rows: int
    alpha: float
    estimated: float | None
    reference: float | None
    interval: tuple[float, float] | None
    basis: str
    trusted: bool
    reference_expected_accuracy: float | None = None
    reference_realized: float | None = None
    label_shift_estimated: float | None = None  # the reading under a shift of the class mix (labelled classifiers)
    label_shift_interval: tuple[float, float] | None = None
    baseline: BaselineSource | None = None


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def estimate_check(
    profile: ConfidenceProfile | None,
    outputs: np.ndarray | None,
    min_rows: int,
    rows: Callable[[], EstimateRows | None] | None = None,
    worth: Callable[[int], float] | None = None,
    baseline: BaselineSource | None = None,
    collecting: bool = False,
) -> CheckResult:
    """Judge the window's outputs (rows x output columns, as the window holds them) against the profile; ``rows``,
    when given, reads them as :meth:`EstimateRows.of` does (a caller may move the last window's reading on);
    ``worth``: what ``n`` of the window's rows are worth as independent ones when the stream repeats its rows.
    ``baseline``: where the profile came from (adopted from served traffic when it has a ``since``); ``collecting``:
    without a profile, whether one will come with the performance baseline adopted from served labels."""
    name = "estimated_performance"
    if profile is None or outputs is None:
        summary = "Not judged: the reference has no profile of the model's outputs with their errors" + (
            "; one comes with the performance baseline, from the labelled served rows it is adopted from (POST /feedback)."
            if collecting and outputs is not None
            else " (build it with predictions= on held-out rows, and their y=)."
        )
        return CheckResult(name, Status.OK, summary)
    served = baseline is not None and baseline.since is not None
    basis, caveat = _basis(profile, served)
    trusted = caveat is None

    def details(
        rows: int, estimated: float | None = None, interval: tuple[float, float] | None = None, mix: ShiftReading | None = None
    ) -> EstimateDetails:
        return EstimateDetails(
            metric=profile.metric,
            rows=rows,
            min_rows=min_rows,
            alpha=ALPHA_ESTIMATE,
            estimated=_r(estimated),
            reference=_r(profile.value(profile.mean)),
            interval=(round(interval[0], 4), round(interval[1], 4)) if interval else None,
            basis=basis,
            trusted=trusted,
            reference_expected_accuracy=_r(profile.expected_accuracy),
            reference_realized=_r(profile.value(profile.realized)) if profile.realized is not None else None,
            label_shift_estimated=_r(mix.estimated) if mix is not None else None,
            label_shift_interval=(round(mix.low, 4), round(mix.high, 4)) if mix is not None else None,
            baseline=baseline,
        )

    read = rows() if rows is not None else EstimateRows.of(profile, outputs)
    if read is None or read.spoiling.any():
        summary = "Not judged: the window's outputs are not class probabilities, so they give no confidence."
        return CheckResult(name, Status.OK, summary, details(0))
    expected = read.expected[read.kept]  # the expected errors of the rows with a score
    n = len(expected)
    if n < min_rows:
        summary = f"{n} rows with outputs in the window; performance is estimated from {min_rows}."
        return CheckResult(name, Status.INSUFFICIENT_DATA, summary, details(n))
    error = float(expected.mean())
    judged = worth(n) if worth is not None else n  # fewer independent rows when the stream repeats its rows
    se = math.sqrt(float(expected.var()) / judged + profile.std**2 / profile.rows)
    minimum = MIN_CHANGE_ACCURACY if profile.task == "classification" else MIN_CHANGE_MAE * max(profile.mean, 1e-12)
    bound = max((_Z if profile.label_shift is None else _Z_EACH) * se, minimum)
    low, high = sorted((profile.value(profile.mean - bound), profile.value(profile.mean + bound)))
    if profile.task == "classification":
        low, high = max(low, 0.0), min(high, 1.0)
    else:
        low = max(low, 0.0)
    estimate, reference = profile.value(error), profile.value(profile.mean)
    mix = _shift_reading(profile.label_shift, read, judged / n)
    info = details(n, estimate, (low, high), mix)
    digits = "{:.3f}" if profile.task == "classification" else "{:.3g}"
    against = "served" if served else "reference"
    band = f"{digits.format(low)}-{digits.format(high)} ({against} {digits.format(reference)}); {basis}"
    if served and baseline is not None:
        band += f"; {baseline.describe()}"
    note = f" {caveat}" if caveat else ""
    if abs(error - profile.mean) <= bound:
        summary = f"Estimated {profile.metric} {digits.format(estimate)} over the last {n} rows, within {band}"
        if mix is None or not mix.outside:
            return CheckResult(name, Status.OK, f"{summary}.{note}", info)
        verb = "fell" if mix.worse else "rose"
        summary += (
            f"; but the predicted classes' shares moved as a shift of the class mix moves them, and under one"
            f" accuracy {verb} to {mix.estimated:.3f}, outside {mix.low:.3f}-{mix.high:.3f}.{note}"
        )
        return CheckResult(name, Status.WARN, summary, info)
    worse = error > profile.mean
    verb = "fell" if worse == (profile.task == "classification") else "rose"
    status = Status.ALERT if worse and trusted else Status.WARN
    summary = f"Estimated {profile.metric} {verb} to {digits.format(estimate)} over the last {n} rows, outside {band}.{note}"
    return CheckResult(name, status, summary, info)


def _shift_reading(shift: LabelShift | ClassMixShift | None, read: EstimateRows, worth: float) -> ShiftReading | None:
    """The window's reading under a shift of the class mix (classifiers with a labelled reference), judged at half
    the check's false-alarm share, its rows counted at what they are ``worth`` as independent ones."""
    if shift is None:
        return None
    return shift.read(read.predicted[read.kept], ALPHA_ESTIMATE / 2, worth)


def _basis(profile: ConfidenceProfile, served: bool = False) -> tuple[str, str | None]:
    """How the estimate was made, and what keeps it from being trusted (None when nothing does); ``served``: the
    profile is of the labelled served rows the performance baseline was adopted from, not the reference's."""
    rows = "served rows'" if served else "reference's"
    if profile.task == "regression":
        return f"from the {rows} MAE per decile of the prediction", None
    if not profile.labelled:
        return "from the model's own confidences", "Unverified: the reference has no labels to check them against."
    on = "served labels" if served else "the reference's labels"
    gap = profile.miscalibration
    if gap is None:
        return f"from confidences calibrated on {on}", None
    expected, realized = profile.expected_accuracy or 0.0, 1 - (profile.realized or 0.0)
    where = "the served rows" if served else "the reference"
    caveat = (
        f"Not trusted: the model's confidences are badly calibrated on {where} (mean {expected:.3f},"
        f" accuracy {realized:.3f}), so the estimate rests on their recalibration."
    )
    return f"from confidences recalibrated on {on}", caveat
