"""Estimated performance: how well the model is probably doing, from its outputs alone, before labels arrive.

For a classifier returning probabilities, each row's chance of being right is read off its confidence
(its largest probability), as NannyML's CBPE does. Confidences are not always honest, so when the
reference has labels they are recalibrated on them: the reference's rows are cut into ten bins of
confidence, each bin's accuracy on the reference is what a row of that confidence is worth, made
non-decreasing in confidence (pool-adjacent-violators). Without labels the model's own confidences are
taken at their word, and the report says the estimate is unverified. The reference's own estimate is
then its realized accuracy (labelled) or its mean confidence (not).

For a regressor there is no confidence; the analogue kept here is the reference's mean absolute error
per decile of the prediction: a window whose predictions move where the model erred more is estimated
to err more. It needs a labelled reference, and it says nothing when errors do not depend on the
prediction's level (homoscedastic noise): then it stays flat, neither alarming nor reassuring.

The check compares the window's estimate with the reference's: the difference of two means of bounded
per-row values, normal at these sizes, judged at its own share of the false-alarm budget
(:data:`ALPHA_ESTIMATE`) with a minimum effect (2 accuracy points, 10 % of the reference MAE). It never
mixes in realized figures: those are the ``concept_drift`` check's, from labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from scipy.optimize import isotonic_regression
from scipy.stats import norm

from .errors import InvalidReferenceError
from .health import CheckResult, Status
from .performance import Performance, row_losses

__all__ = ["ALPHA_ESTIMATE", "ConfidenceProfile", "EstimateDetails", "EstimateRows", "estimate_check", "moved_rows"]

ALPHA_ESTIMATE = 0.0005  # its share of the model-wide false-alarm budget per health check
_Z = float(norm.isf(ALPHA_ESTIMATE / 2))  # once: a scipy distribution call costs ~0.1 ms
BINS = 10
MIN_PROFILE_ROWS = 100  # reference rows needed to profile confidences
MIN_CHANGE_ACCURACY = 0.02
MIN_CHANGE_MAE = 0.1  # relative to the reference MAE
MISCALIBRATED = 0.05  # expected minus realized accuracy on the reference beyond which raw confidences are not trusted
VERSION = 1
Task = Literal["classification", "regression"]


@dataclass(frozen=True, slots=True)
class ConfidenceProfile:
    """What the reference says a row's outputs are worth.

    ``edges`` cut the score (a classifier's largest probability, a regressor's prediction) into bins and
    ``errors`` is each bin's expected error (1 - accuracy, or absolute error); both empty for a classifier
    without labels, whose expected error is 1 - its confidence. ``mean`` and ``std`` are the reference's
    expected error per row and its spread; ``expected_accuracy`` a classifier's mean confidence on the
    reference and ``realized`` its realized error, when labelled.
    """

    task: Task
    rows: int
    edges: tuple[float, ...]
    errors: tuple[float, ...]
    mean: float
    std: float
    labelled: bool
    expected_accuracy: float | None = None
    realized: float | None = None

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "mae"

    def value(self, error: float) -> float:
        """An error rate as the metric reported: accuracy for a classifier, MAE for a regressor."""
        return 1 - error if self.task == "classification" else error

    @property
    def miscalibration(self) -> float | None:
        """Mean confidence minus realized accuracy on the reference, when both are known and the gap is
        beyond its noise (three standard errors) and at least :data:`MISCALIBRATED`; else None."""
        if self.expected_accuracy is None or self.realized is None:
            return None
        gap = self.expected_accuracy - (1 - self.realized)
        noise = 3 * math.sqrt(max(self.realized * (1 - self.realized), 1 / self.rows) / self.rows)
        return gap if abs(gap) >= max(MISCALIBRATED, noise) else None

    @classmethod
    def of(cls, task: str, predictions: Any, errors: np.ndarray | None = None) -> ConfidenceProfile | None:
        """The profile of a model's outputs on the reference rows, ``errors`` their realized per-row errors
        (0/1 or absolute) when labelled. None when the outputs give no score (a classifier returning labels)
        or fewer than :data:`MIN_PROFILE_ROWS` rows have one."""
        scores = _scores(task, predictions)
        if scores is None:
            return None
        usable = np.isfinite(scores)
        if errors is not None:
            usable &= np.isfinite(errors)
        if usable.sum() < MIN_PROFILE_ROWS or (task == "regression" and errors is None):
            return None
        scores = scores[usable]
        expected = float(scores.mean()) if task == "classification" else None
        if errors is None:
            per_row = 1 - scores
            return cls("classification", len(scores), (), (), float(per_row.mean()), float(per_row.std()), False, expected)
        errors = np.asarray(errors, dtype=np.float64)[usable]
        edges = np.unique(np.quantile(scores, np.linspace(0, 1, BINS + 1)[1:-1], method="lower"))
        edges = edges[edges > scores.min()]
        bins = np.searchsorted(edges, scores, side="right")
        counts = np.bincount(bins, minlength=len(edges) + 1).astype(np.float64)
        means = np.bincount(bins, weights=errors, minlength=len(edges) + 1) / np.maximum(counts, 1)
        if task == "classification":  # a more confident row is never worth less: errors non-increasing
            means = -_isotonic(-means, counts)
        per_row = means[bins]
        return cls(
            task,  # type: ignore[arg-type]
            len(scores),
            tuple(float(e) for e in edges),
            tuple(float(m) for m in means),
            float(per_row.mean()),
            float(per_row.std()),
            True,
            expected,
            float(errors.mean()),
        )

    def expected_errors(self, scores: np.ndarray) -> np.ndarray:
        """Each row's expected error from its score."""
        if not self.labelled:
            return np.asarray(1 - scores)
        return np.asarray(self.errors)[np.searchsorted(np.asarray(self.edges), scores, side="right")]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "task": self.task,
            "rows": self.rows,
            "edges": list(self.edges),
            "errors": list(self.errors),
            "mean": self.mean,
            "std": self.std,
            "labelled": self.labelled,
            "expected_accuracy": self.expected_accuracy,
            "realized": self.realized,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfidenceProfile:
        if data.get("version") != VERSION:
            raise InvalidReferenceError(
                f"confidence profile version {data.get('version')!r} is not supported; this library reads version {VERSION}"
            )
        task = data["task"]
        if task not in ("classification", "regression"):
            raise InvalidReferenceError(f"confidence profile: task must be 'classification' or 'regression', got {task!r}")
        edges = tuple(float(e) for e in data.get("edges", ()))
        errors = tuple(float(e) for e in data.get("errors", ()))
        labelled = bool(data["labelled"])
        if labelled and len(errors) != len(edges) + 1:
            raise InvalidReferenceError(f"confidence profile: {len(errors)} bin errors for {len(edges)} edges; expected one more")
        expected, realized = data.get("expected_accuracy"), data.get("realized")
        return cls(
            task=task,
            rows=int(data["rows"]),
            edges=edges,
            errors=errors,
            mean=float(data["mean"]),
            std=float(data["std"]),
            labelled=labelled,
            expected_accuracy=None if expected is None else float(expected),
            realized=None if realized is None else float(realized),
        )


def _scores(task: str, predictions: Any) -> np.ndarray | None:
    """Per row: a classifier's largest probability (NaN where the row is not a probability vector),
    a regressor's prediction; None when there is no such score (some finite rows are not probabilities:
    these outputs are not confidences)."""
    read = _row_scores(task, predictions)
    return None if read is None or read[1].any() else read[0]


@dataclass(frozen=True, eq=False)
class EstimateRows:
    """A window's outputs read row by row for the estimate, kept to move on with the window (a new request reads
    its own rows, not the window's 2,000 again): each row's expected error, whether it has a score (``kept``),
    and whether it is a finite row that is not a probability vector (``spoiling``: then the window's outputs
    are not confidences). Every figure is one row's, so the rows moved on are those read afresh, bit for bit."""

    kept: np.ndarray
    expected: np.ndarray
    spoiling: np.ndarray

    @classmethod
    def of(cls, profile: ConfidenceProfile, outputs: np.ndarray) -> EstimateRows | None:
        """The rows of ``outputs`` (rows x output columns), or None when their shape gives no score."""
        if not len(outputs):
            return cls(np.zeros(0, dtype=bool), np.zeros(0), np.zeros(0, dtype=bool))
        read = _row_scores(profile.task, outputs)
        if read is None:
            return None
        scores, spoiling = read
        return cls(np.isfinite(scores), profile.expected_errors(scores), spoiling)

    def moved(self, profile: ConfidenceProfile, departed: int, arrived: np.ndarray | None) -> EstimateRows | None:
        """These rows without the oldest ``departed``, with the ``arrived`` outputs' rows after them."""
        new = EstimateRows.of(profile, arrived) if arrived is not None else None
        if new is None:
            return None
        return EstimateRows(
            np.concatenate([self.kept[departed:], new.kept]),
            np.concatenate([self.expected[departed:], new.expected]),
            np.concatenate([self.spoiling[departed:], new.spoiling]),
        )


class _Results(Protocol):
    """Results kept on one window's contents, updated from how it moved (a :class:`~guarded_serving.monitor.memo.Generation`)."""

    def get(self, key: Hashable, compute: Callable[[], Any], update: Callable[[Any, Any], Any] | None = None) -> Any: ...


def moved_rows(
    profile: ConfidenceProfile | None, outputs: np.ndarray | None, same: _Results
) -> Callable[[], EstimateRows | None] | None:
    """The reading of a window's outputs for :func:`estimate_check`: kept in ``same``, and moved on from the last
    window's when the window moved (``move.departed`` oldest rows left, ``move.arrived_outputs`` came)."""
    if profile is None or outputs is None:
        return None
    held = profile, outputs

    def rows() -> EstimateRows | None:
        return same.get(  # type: ignore[no-any-return]
            ("estimate_rows", profile),
            lambda: EstimateRows.of(*held),
            lambda last, move: last.moved(profile, move.departed, move.arrived_outputs),
        )

    return rows


def _row_scores(task: str, outputs: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_scores` row by row: each row's score (NaN where none) and whether it spoils the window (a finite
    row that is not a probability vector: :func:`_scores` answers None for the whole window then)."""
    try:
        array = np.asarray(outputs, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or len(array) == 0:
        return None
    if task == "regression":
        return (np.asarray(array[:, 0]), np.zeros(len(array), dtype=bool)) if array.shape[1] == 1 else None
    if array.shape[1] < 2:
        return None
    with np.errstate(invalid="ignore"):
        finite = np.asarray(np.isfinite(array).all(axis=1))
        probability = finite & (array >= -1e-9).all(axis=1) & (np.abs(array.sum(axis=1) - 1) <= 1e-3)
    scores = np.where(probability, np.max(np.where(finite[:, None], array, 0.0), axis=1), np.nan)
    return scores, finite & ~probability


def _isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit of ``values`` (scipy's pool adjacent violators)."""
    return np.asarray(isotonic_regression(values, weights=np.maximum(weights, 1e-12)).x)


@dataclass(frozen=True, slots=True)
class EstimateDetails:
    """``estimated`` is the window's estimate, ``reference`` the same estimate on the reference, and
    ``interval`` the range it stays in on healthy traffic; all estimates, none realized. ``trusted`` is
    False when the reference cannot vouch for the estimate (no labels, or confidences badly calibrated)."""

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


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def estimate_check(
    profile: ConfidenceProfile | None,
    outputs: np.ndarray | None,
    min_rows: int,
    rows: Callable[[], EstimateRows | None] | None = None,
) -> CheckResult:
    """Judge the window's outputs (rows x output columns, as the window holds them) against the profile; ``rows``,
    when given, reads them as :meth:`EstimateRows.of` does (a caller may move the last window's reading on)."""
    name = "estimated_performance"
    if profile is None or outputs is None:
        summary = (
            "Not judged: the reference has no profile of the model's outputs with their errors"
            " (build it with predictions= on held-out rows, and their y=)."
        )
        return CheckResult(name, Status.OK, summary)
    basis, caveat = _basis(profile)
    trusted = caveat is None

    def details(rows: int, estimated: float | None = None, interval: tuple[float, float] | None = None) -> EstimateDetails:
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
    se = math.sqrt(float(expected.var()) / n + profile.std**2 / profile.rows)
    minimum = MIN_CHANGE_ACCURACY if profile.task == "classification" else MIN_CHANGE_MAE * max(profile.mean, 1e-12)
    bound = max(_Z * se, minimum)
    low, high = sorted((profile.value(profile.mean - bound), profile.value(profile.mean + bound)))
    if profile.task == "classification":
        low, high = max(low, 0.0), min(high, 1.0)
    else:
        low = max(low, 0.0)
    estimate, reference = profile.value(error), profile.value(profile.mean)
    info = details(n, estimate, (low, high))
    digits = "{:.3f}" if profile.task == "classification" else "{:.3g}"
    band = f"{digits.format(low)}-{digits.format(high)} (reference {digits.format(reference)}); {basis}"
    note = f" {caveat}" if caveat else ""
    if abs(error - profile.mean) <= bound:
        summary = f"Estimated {profile.metric} {digits.format(estimate)} over the last {n} rows, within {band}.{note}"
        return CheckResult(name, Status.OK, summary, info)
    worse = error > profile.mean
    verb = "fell" if worse == (profile.task == "classification") else "rose"
    status = Status.ALERT if worse and trusted else Status.WARN
    summary = f"Estimated {profile.metric} {verb} to {digits.format(estimate)} over the last {n} rows, outside {band}.{note}"
    return CheckResult(name, status, summary, info)


def _basis(profile: ConfidenceProfile) -> tuple[str, str | None]:
    """How the estimate was made, and what keeps it from being trusted (None when nothing does)."""
    if profile.task == "regression":
        return "from the reference's MAE per decile of the prediction", None
    if not profile.labelled:
        return "from the model's own confidences", "Unverified: the reference has no labels to check them against."
    gap = profile.miscalibration
    if gap is None:
        return "from confidences calibrated on the reference's labels", None
    expected, realized = profile.expected_accuracy or 0.0, 1 - (profile.realized or 0.0)
    caveat = (
        f"Not trusted: the model's confidences are badly calibrated on the reference (mean {expected:.3f},"
        f" accuracy {realized:.3f}), so the estimate rests on their recalibration."
    )
    return "from confidences recalibrated on the reference's labels", caveat


def profile_of(predictions: Any, performance: Performance | None, y: Any = None) -> ConfidenceProfile | None:
    """The profile for a reference's ``predictions``: labelled from ``y`` when ``performance`` scored them
    (a classifier's probabilities one per class), else from bare probabilities; None when they give none.
    Rows without a usable prediction or label are left out, so that each row's score meets its own error."""
    if predictions is None:
        return None
    try:
        array = np.asarray(predictions, dtype=np.float64)
    except (TypeError, ValueError):  # labels, not numbers: no score to read
        return None
    array = array.reshape(len(array), -1)
    if performance is None or y is None or (performance.task == "classification" and array.shape[1] != len(performance.classes)):
        return ConfidenceProfile.of("classification", array)
    labels = [v.item() if isinstance(v, np.generic) else v for v in np.asarray(y, dtype=object).reshape(-1)]
    keep: np.ndarray = np.asarray(np.isfinite(array).all(axis=1))
    if performance.task == "regression":
        keep &= np.array([isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in labels])
    kept = array[keep]
    labels = [v for v, k in zip(labels, list(keep), strict=True) if k]
    losses = row_losses(performance.task, performance.classes, kept.tolist(), labels)
    if losses.unscored or len(losses.error) != len(kept):
        return ConfidenceProfile.of("classification", array) if performance.task == "classification" else None
    return ConfidenceProfile.of(performance.task, kept, losses.error)
