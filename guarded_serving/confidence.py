"""What a reference says a model's outputs are worth: its confidences' calibration on the reference's labels.

A classifier's row is scored by its confidence (its largest probability) and a regressor's by its prediction. With
labels, the reference's rows are cut into ten bins of score, and each bin's error on the reference (1 - accuracy,
or absolute error) is what a row of that score is worth, a classifier's made non-increasing in confidence
(pool-adjacent-violators). Without labels a classifier's confidences are taken at their word. A labelled
classifier's profile also holds its reading under a shift of the class mix (:mod:`guarded_serving.labelshift`).
The check that judges a window with it is :mod:`guarded_serving.estimate`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.optimize import isotonic_regression

from .errors import InvalidReferenceError
from .labelshift import ClassMixShift, LabelShift, shift_from_json, shift_of
from .performance import Performance, binary_rows, class_indices, row_losses

__all__ = ["MIN_PROFILE_ROWS", "ConfidenceProfile", "profile_of", "row_scores"]

BINS = 10
MIN_PROFILE_ROWS = 100  # reference rows needed to profile confidences
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
    label_shift: LabelShift | ClassMixShift | None = None  # a labelled classifier's reading under a shift of the class mix

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
            "label_shift": self.label_shift.to_json() if self.label_shift is not None else None,
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
        shift = data.get("label_shift")  # absent from references saved before it was read
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
            label_shift=shift_from_json(shift) if shift else None,
        )


def _scores(task: str, predictions: Any) -> np.ndarray | None:
    """Per row: a classifier's largest probability (NaN where the row is not a probability vector),
    a regressor's prediction; None when there is no such score (some finite rows are not probabilities:
    these outputs are not confidences)."""
    read = row_scores(task, predictions)
    return None if read is None or read[1].any() else read[0]


def row_scores(task: str, outputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`_scores` row by row: each row's score (NaN where none), whether it spoils the window (a finite
    row that is not a probability vector: :func:`_scores` answers None for the whole window then), and a
    classifier's predicted class (its largest probability's column; -1 without a score). A classifier's one
    number per row is its second class's probability (:func:`~guarded_serving.performance.binary_rows`)."""
    try:
        array = np.asarray(outputs, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or len(array) == 0:
        return None
    if task == "regression":
        none = np.full(len(array), -1, dtype=np.intp)
        return (np.asarray(array[:, 0]), np.zeros(len(array), dtype=bool), none) if array.shape[1] == 1 else None
    if array.shape[1] == 1:  # a probability each when some is strictly between 0 and 1; else labels: no score
        with np.errstate(invalid="ignore"):
            if not ((array[:, 0] > 0.0) & (array[:, 0] < 1.0)).any():
                return None
        array = binary_rows(array[:, 0])
    with np.errstate(invalid="ignore"):
        finite = np.asarray(np.isfinite(array).all(axis=1))
        probability = finite & (array >= -1e-9).all(axis=1) & (np.abs(array.sum(axis=1) - 1) <= 1e-3)
    present = np.where(finite[:, None], array, 0.0)
    scores = np.where(probability, np.max(present, axis=1), np.nan)
    predicted = np.where(probability, np.argmax(present, axis=1), -1)
    return scores, finite & ~probability, predicted


def _isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit of ``values`` (scipy's pool adjacent violators)."""
    return np.asarray(isotonic_regression(values, weights=np.maximum(weights, 1e-12)).x)


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
    binary = performance is not None and performance.task == "classification" and len(performance.classes) == 2
    if binary and array.shape[1] == 1:  # one number per row: the second class's probability
        array = binary_rows(array[:, 0])
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
    profile = ConfidenceProfile.of(performance.task, kept, losses.error)
    if profile is None or performance.task != "classification":
        return profile
    truth = class_indices(performance.classes, labels)
    known = truth >= 0
    shift = shift_of(kept[known].argmax(axis=1), truth[known], len(performance.classes))
    return dataclasses.replace(profile, label_shift=shift)
