"""Model performance: the task, per-row losses, and the reference's figures to compare against.

A classifier is judged on its error rate (1 - accuracy), with log loss (probabilities) reported; a
regressor on its absolute error (MAE), with RMSE reported. Per-row losses are what the concept
check's streaming detector and confidence bounds work on.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from .errors import ConfigurationError, Problem

__all__ = ["Performance", "RowLosses", "infer_task", "row_losses", "training_fit_evidence"]

Task = Literal["classification", "regression"]
_EPS = 1e-15


def _as_outputs(predictions: Any) -> np.ndarray:
    array = np.asarray(predictions, dtype=object)
    return array.reshape(-1, 1) if array.ndim == 1 else array


def _is_probabilities(outputs: np.ndarray) -> bool:
    try:
        values = outputs.astype(float)
    except (TypeError, ValueError):
        return False
    return bool(values.shape[1] >= 2 and np.all(values >= -1e-9) and np.allclose(values.sum(axis=1), 1.0, atol=1e-3))


def infer_task(y: Sequence[Any], predictions: Any) -> Task:
    """Classification when the outputs are class probabilities or labels drawn from y's values;
    regression when y is numeric with many distinct values."""
    outputs = _as_outputs(predictions)
    if _is_probabilities(outputs):
        return "classification"
    labels = [v for v in y if v is not None]
    if any(isinstance(v, (str, bool)) for v in labels):
        return "classification"
    distinct = set(labels)
    integral = all(float(v).is_integer() for v in distinct)
    return "classification" if integral and len(distinct) <= 20 else "regression"


@dataclass(frozen=True, slots=True)
class RowLosses:
    """Per-row error (0/1 for classifiers, absolute error for regressors) and loss (log loss or squared error)."""

    error: np.ndarray
    loss: np.ndarray


def row_losses(task: Task, classes: Sequence[Any], outputs: Sequence[Any], labels: Sequence[Any]) -> RowLosses:
    """Losses of predictions against labels, row by row (outputs as the model returned them)."""
    out = _as_outputs(outputs)
    if task == "regression":
        predicted = out[:, 0].astype(float)
        truth = np.asarray(labels, dtype=float)
        error = np.abs(predicted - truth)
        return RowLosses(error, error**2)
    index = {c: k for k, c in enumerate(classes)}
    truth_idx = np.array([index.get(v, -1) for v in labels])
    if _is_probabilities(out) and out.shape[1] == len(classes):
        probs = out.astype(float)
        chosen = probs.argmax(axis=1)
        p_true = np.where(truth_idx >= 0, probs[np.arange(len(probs)), np.maximum(truth_idx, 0)], 0.0)
        return RowLosses((chosen != truth_idx).astype(float), -np.log(np.clip(p_true, _EPS, 1.0)))
    predicted = out[:, 0]
    wrong = np.array([p != t for p, t in zip(predicted.tolist(), labels, strict=True)], dtype=float)
    return RowLosses(wrong, wrong)


@dataclass(frozen=True, slots=True)
class Performance:
    """The reference's performance: what realized performance is compared with."""

    task: Task
    classes: tuple[Any, ...]
    rows: int
    error_mean: float  # error rate (classification) or MAE (regression)
    error_std: float
    loss_mean: float  # log loss (classification with probabilities), else error rate; MSE (regression)

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "mae"

    def metric_value(self, error_mean: float) -> float:
        return 1 - error_mean if self.task == "classification" else error_mean

    @property
    def loss_name(self) -> str:
        return "log_loss" if self.task == "classification" else "rmse"

    def loss_value(self, loss_mean: float) -> float:
        return loss_mean if self.task == "classification" else math.sqrt(loss_mean)

    @classmethod
    def from_data(cls, y: Any, predictions: Any, task: Task | None = None) -> Performance:
        labels = list(np.asarray(y, dtype=object).reshape(-1))
        labels = [v.item() if isinstance(v, np.generic) else v for v in labels]
        if task is not None and task not in ("classification", "regression"):
            raise ConfigurationError("task", task, "'classification', 'regression' or None (inferred)")
        task = task or infer_task(labels, predictions)
        classes: tuple[Any, ...] = ()
        if task == "classification":
            classes = tuple(sorted(set(labels), key=lambda v: (str(type(v)), v)))  # scikit-learn orders classes_ so
        losses = row_losses(task, classes, predictions, labels)
        return cls(
            task=task,
            classes=classes,
            rows=len(labels),
            error_mean=float(losses.error.mean()),
            error_std=float(losses.error.std()),
            loss_mean=float(losses.loss.mean()),
        )

    def check_label(self, label: Any) -> Problem | None:
        """None for a label this task accepts, else what is wrong with it."""
        shown = getattr(label, "text", None) or repr(label)[:40]  # a NaN/Infinity literal shows as written
        if self.task == "regression":
            if (
                isinstance(label, (int, float))
                and not isinstance(label, bool)
                and -sys.float_info.max <= label <= sys.float_info.max
            ):
                return None
            return Problem(f"got {shown}", "a finite number")
        bool_classes = any(isinstance(c, bool) for c in self.classes)
        if label in self.classes and (isinstance(label, bool) == bool_classes or not isinstance(label, bool)):
            return None
        return Problem(f"got {shown}", f"one of the classes {list(self.classes)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "rows": self.rows,
            "error_mean": self.error_mean,
            "error_std": self.error_std,
            "loss_mean": self.loss_mean,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Performance:
        return cls(
            task=data["task"],
            classes=tuple(data.get("classes", ())),
            rows=int(data["rows"]),
            error_mean=float(data["error_mean"]),
            error_std=float(data["error_std"]),
            loss_mean=float(data["loss_mean"]),
        )


# A model's confidences on rows it never saw predict its error count; on the rows it was fitted on, a model
# that memorises them (a forest of fully grown trees, bagging, a nearest neighbour) errs far less than they
# say. Both the evidence and the effect must be strong: 1 chance in 10,000 for a calibrated model on fresh
# rows, and at most a tenth of the errors predicted. Averaged models are often underconfident on fresh rows
# (measured: a 60-tree forest on held-out digits makes a fifth of the errors its probabilities predict),
# but a tenth is memorisation. Boosting and other models fitted to their own probabilities are not told
# apart this way: guard() marks the outputs it profiles on training data as such instead.
_FIT_LEVEL = 1e-4
_FIT_RATIO = 0.1
_FIT_MIN_EXPECTED = 5.0  # expected errors below this cannot tell either way


def training_fit_evidence(performance: Performance, predictions: Any, labels: Sequence[Any]) -> str | None:
    """Why these rows look like the model's training rows (a sentence), or None.

    Compares the errors a classifier made on the rows with the number its own probabilities predict,
    ``sum(1 - max p)`` (a Poisson-binomial count with variance ``sum(p (1 - p))``): realized accuracy far
    above the predicted one means the rows are easier for the model than new ones, as the rows it was
    fitted on are. Needs class probabilities; regressors give no such evidence.
    """
    outputs = _as_outputs(predictions)
    if performance.task != "classification" or not _is_probabilities(outputs) or outputs.shape[1] != len(performance.classes):
        return None
    probs = outputs.astype(float)
    confidence = probs.max(axis=1)
    expected = float((1 - confidence).sum())
    if expected < _FIT_MIN_EXPECTED:
        return None
    observed = float(row_losses(performance.task, performance.classes, predictions, labels).error.sum())
    z = (expected - observed) / math.sqrt(max(float((confidence * (1 - confidence)).sum()), 1e-12))
    if observed > _FIT_RATIO * expected or z < norm.isf(_FIT_LEVEL):
        return None
    rows = len(probs)
    return (
        f"accuracy {1 - observed / rows:.3f} on these {rows} rows, while the model's own probabilities predict"
        f" {1 - expected / rows:.3f} ({observed:.0f} errors where {expected:.0f} were expected, z = {z:.1f})"
    )
