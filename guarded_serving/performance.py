"""Model performance: the task, per-row losses, and the reference's figures to compare against.

A classifier is judged on its error rate (1 - accuracy), with log loss (probabilities) reported; a
regressor on its absolute error (MAE), with RMSE reported. Per-row losses are what the concept
check's streaming detector and confidence bounds work on.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from .errors import ConfigurationError, Problem

__all__ = [
    "Performance",
    "RowLosses",
    "binary_rows",
    "check_class",
    "class_indices",
    "infer_task",
    "model_classes",
    "plain_matrix",
    "probability_classes",
    "row_losses",
    "training_fit_evidence",
]

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


def model_classes(predict: Any) -> tuple[Any, ...]:
    """The classes a classifier's method can return: its owner's ``classes_`` (scikit-learn's), or those of
    a Pipeline's last step; () for a plain function or a regressor. scikit-learn is never imported here."""
    owner = getattr(predict, "__self__", None)
    candidates = [owner]
    steps = getattr(owner, "steps", None)
    if isinstance(steps, list) and steps and isinstance(steps[-1], tuple):
        candidates.append(steps[-1][1])
    for candidate in candidates:
        classes = getattr(candidate, "classes_", None)
        if classes is not None and np.ndim(classes) == 1 and len(classes) >= 2:
            return tuple(np.asarray(classes, dtype=object).tolist())
    return ()


def probability_classes(outputs: Any) -> tuple[int, ...]:
    """For outputs that are class probabilities (rows of at least two values summing to 1), the column
    indices 0..k-1: the labels a function returning them can be judged against; else ()."""
    try:
        array = np.asarray(outputs, dtype=float)
    except (TypeError, ValueError):
        return ()
    if array.ndim != 2 or len(array) == 0 or not _is_probabilities(array):
        return ()
    return tuple(range(array.shape[1]))


def check_class(classes: Sequence[Any], label: Any) -> Problem | None:
    """None for a label among ``classes`` (a boolean only where the classes are booleans), else the problem."""
    bool_classes = any(isinstance(c, bool) for c in classes)
    if label in classes and (isinstance(label, bool) == bool_classes or not isinstance(label, bool)):
        return None
    return Problem(f"got {_as_json(label)[:40]}", f"one of the classes {_as_json(list(classes))}")


def _as_json(value: Any) -> str:
    """A label (or the classes) as the client writes it: ``null``, ``true``, ``"yes"``, a NaN/Infinity literal as
    written; Python's own words for what JSON cannot hold."""
    literal = getattr(value, "text", None)
    if isinstance(literal, str):
        return literal
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True, slots=True)
class RowLosses:
    """Per-row error (0/1 for classifiers, absolute error for regressors) and loss (log loss or squared error)
    of the rows that could be scored; ``unscored`` counts those left out: a prediction that is NaN, missing
    or of another shape (a regression label that is not a finite number, too). ``kept`` marks, row by row of
    those given, the ones scored (None: all): a position among the scored rows is not one among the rows given."""

    error: np.ndarray
    loss: np.ndarray
    unscored: int = 0
    kept: np.ndarray | None = None


def row_losses(
    task: Task, classes: Sequence[Any], outputs: Sequence[Any], labels: Sequence[Any], matrix: np.ndarray | None = None
) -> RowLosses:
    """Losses of predictions against labels, row by row (outputs as the model returned them). ``matrix``,
    when given, is :func:`plain_matrix` of the outputs (a caller that keeps it saves reading them again).

    A row without a usable prediction is left out and counted, never scored: one NaN must neither make the
    mean NaN (and a falling model look fine) nor turn a window of probabilities into labels.
    """
    outputs = outputs.tolist() if isinstance(outputs, np.ndarray) else list(outputs)
    if task == "regression":
        predicted = np.array([_number(_first(o)) for o in outputs], dtype=float)
        truth = np.array([_number(v) for v in labels], dtype=float)
        keep = np.isfinite(predicted) & np.isfinite(truth)
        error = np.abs(predicted[keep] - truth[keep])
        return RowLosses(error, error**2, int((~keep).sum()), keep)
    truth_idx = class_indices(classes, labels)
    probs = _probability_rows(outputs, len(classes), matrix)
    if probs is not None:
        keep = ~np.isnan(probs).any(axis=1)
        probs, truth_idx = probs[keep], truth_idx[keep]
        chosen = probs.argmax(axis=1)
        p_true = np.where(truth_idx >= 0, probs[np.arange(len(probs)), np.maximum(truth_idx, 0)], 0.0)
        error, loss = (chosen != truth_idx).astype(float), -np.log(np.clip(p_true, _EPS, 1.0))
        return RowLosses(error, loss, int((~keep).sum()), keep)
    answers = [_first(o) for o in outputs]
    present = np.array([not _missing(a) for a in answers], dtype=bool).reshape(-1)
    wrong = np.array([a != t for a, t, k in zip(answers, labels, present, strict=True) if k], dtype=float)
    return RowLosses(wrong, wrong, int((~present).sum()), present)


def _first(output: Any) -> Any:
    """A prediction's single value: the value itself, or the only value of a one-value row."""
    return output[0] if isinstance(output, (list, tuple)) and len(output) == 1 else output


def _number(value: Any) -> float:
    """A finite number as a float, NaN for anything else (missing, NaN, text, a row of several values)."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else math.nan
    return math.nan


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)) or isinstance(value, (list, dict))


def _class_index(classes: Sequence[Any], label: Any) -> int:
    """The label's position among the classes, -1 for a label that is not one (an error, as any wrong answer)."""
    try:
        return classes.index(label) if label in classes else -1
    except TypeError:  # an unhashable or incomparable value
        return -1


def class_indices(classes: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """Each label's position among the classes (see :func:`_class_index`), looked up once per distinct label."""
    try:
        index = {label: _class_index(classes, label) for label in set(labels)}
    except TypeError:  # an unhashable label: one by one
        return np.array([_class_index(classes, v) for v in labels], dtype=np.intp).reshape(-1)
    return np.fromiter(map(index.__getitem__, labels), dtype=np.intp, count=len(labels))


def binary_rows(probabilities: np.ndarray) -> np.ndarray:
    """A binary classifier's one number per row, the probability of its second class (``predict_proba(X)[:, 1]``,
    a sigmoid, XGBoost's and LightGBM's binary objectives), as rows of both classes' probabilities [1 - p, p]."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    return np.column_stack([1 - p, p])


def _single_probabilities(outputs: Sequence[Any], matrix: np.ndarray | None) -> np.ndarray | None:
    """:func:`binary_rows` of outputs of one number each (or a list of one), NaN rows where the number is missing
    or outside [0, 1]; None unless most are inside and some strictly between 0 and 1 (all 0 or 1: labels)."""
    if matrix is not None and matrix.shape == (len(outputs), 1):
        p = np.array(matrix[:, 0], dtype=np.float64)
    else:
        first = _first(outputs[0]) if len(outputs) else None
        if not isinstance(first, (int, float, np.number)) or isinstance(first, bool):  # rows of several values, labels
            return None
        p = np.array([_number(_first(o)) for o in outputs], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(p) & (p >= 0.0) & (p <= 1.0)
        if 2 * int(inside.sum()) <= len(p) or not ((p[inside] > 0.0) & (p[inside] < 1.0)).any():
            return None
    return binary_rows(np.where(inside, p, np.nan))


def _probability_rows(outputs: Sequence[Any], classes: int, matrix: np.ndarray | None = None) -> np.ndarray | None:
    """The outputs as class probabilities (one row per output, NaN rows where a prediction is not one),
    or None when they are not probabilities: most rows of ``classes`` numbers must each sum to 1 (with two
    classes, or a number in [0, 1] each: the probability of the second class)."""
    if classes < 2:
        return None
    if classes == 2 and (single := _single_probabilities(outputs, matrix)) is not None:
        return single
    if matrix is None or matrix.shape != (len(outputs), classes) or not len(outputs):
        matrix = plain_matrix(outputs, classes)  # the usual window: every row a list of numbers, checked at once
    if matrix is not None:
        usable = np.isfinite(matrix).all(axis=1) & (matrix >= -1e-9).all(axis=1)
        usable &= np.abs(matrix.sum(axis=1) - 1.0) <= 1e-3
        return np.where(usable[:, None], matrix, np.nan) if 2 * int(usable.sum()) > len(outputs) else None
    probs = np.full((len(outputs), classes), np.nan)
    shaped = 0
    for i, output in enumerate(outputs):
        if isinstance(output, (list, tuple)) and len(output) == classes:
            shaped += 1
            values = np.array([_number(v) for v in output])
            if np.isfinite(values).all() and (values >= -1e-9).all() and abs(values.sum() - 1.0) <= 1e-3:
                probs[i] = values
    usable = int((~np.isnan(probs).any(axis=1)).sum())
    return probs if shaped and 2 * usable > shaped else None


def plain_matrix(outputs: Sequence[Any], width: int | None = None) -> np.ndarray | None:
    """The outputs as a float matrix when every one is a list of ints and floats (no bool, no None) of one
    length (``width``, when given), else None: what the scoring reads them as, one pass over the numbers
    (~3x faster than ``np.array`` of the lists)."""
    if not outputs:
        return None
    if width is None:
        lengths = set(map(len, outputs)) if set(map(type, outputs)) == {list} else set()
        if len(lengths) != 1:
            return None
        (width,) = lengths
    if not _plain_rows(outputs, width):
        return None
    flat = itertools.chain.from_iterable(outputs)
    return np.fromiter(flat, dtype=float, count=len(outputs) * width).reshape(len(outputs), width)


def _plain_rows(outputs: Sequence[Any], classes: int) -> bool:
    """Every output a list of ``classes`` ints and floats (no bool, no None): what :func:`_number` keeps
    as they are, so that one array conversion reads them as the row-by-row loop does."""
    # map() of builtins over the rows, not set comprehensions: the same sets, ~4x faster for 2,000 rows
    return (
        len(outputs) > 0
        and set(map(type, outputs)) == {list}
        and set(map(len, outputs)) == {classes}
        and set(map(type, itertools.chain.from_iterable(outputs))) <= {float, int}
    )


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
        if not losses.error.size:  # no row could be scored: NaN says "unknown" without numpy's empty-slice warnings
            return cls(task=task, classes=classes, rows=len(labels), error_mean=math.nan, error_std=math.nan, loss_mean=math.nan)
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
        return check_class(self.classes, label)

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
# A model that gives most rows a probability of exactly 1 and is right on every one of them predicts no error, so the
# test above cannot read it; but that is how fully grown trees without bootstrap (ExtraTrees' default) score their
# own training rows: every row in a pure leaf of every tree. Measured (tests/test_training_evidence.py's world):
# ExtraTrees gave 100 % of its training rows a probability of 1, 0.1-4 % of held-out rows; a random forest 1-14 %
# and 0-5 %; boosting, logistic regression, 15 nearest neighbours at most 10 %; a 1-nearest neighbour 100 % of both,
# wrong on 25-50 % of held-out rows. Never wrong on 99 % of 100 rows or more, sure of each: the training rows'. (At
# 90 %, an easy world's genuine holdout was taken for training rows: 15 neighbours agreed, rightly, on 95 % of them.)
_SURE_SHARE = 0.99
_SURE_MIN_ROWS = 100
# Yet a 200-tree forest on held-out digits made a twelfth of the errors its probabilities predicted (10 of 118; extra
# trees on wine and digits alike). A model is surer of its fitted rows: that forest's mean confidence was 0.90 there,
# 0.74 on the held-out rows. Rows under the fitted rows' mean by this much and this many standard errors are not them.
_LESS_SURE = 0.02
_LESS_SURE_Z = 4.0


def _less_sure(confidence: np.ndarray, fitted: Callable[[], Any] | None) -> bool:
    """Whether the model is clearly less sure of the rows of ``confidence`` than of rows it was fitted on."""
    if fitted is None:
        return False
    outputs = _as_outputs(fitted())
    if not _is_probabilities(outputs) or len(outputs) < 2 or len(confidence) < 2:
        return False
    theirs = outputs.astype(float).max(axis=1)
    gap = float(theirs.mean() - confidence.mean())
    spread = math.sqrt(float(theirs.var(ddof=1)) / len(theirs) + float(confidence.var(ddof=1)) / len(confidence))
    return gap >= _LESS_SURE and gap >= _LESS_SURE_Z * spread


def training_fit_evidence(
    performance: Performance, predictions: Any, labels: Sequence[Any], fitted: Callable[[], Any] | None = None
) -> str | None:
    """Why these rows look like the model's training rows (a sentence), or None.

    Compares the errors a classifier made on the rows with the number its own probabilities predict,
    ``sum(1 - max p)`` (a Poisson-binomial count with variance ``sum(p (1 - p))``): realized accuracy far
    above the predicted one means the rows are easier for the model than new ones, as the rows it was
    fitted on are. So are 99 % of the rows given a probability of exactly 1 and never wrong (see
    ``_SURE_SHARE``). Needs class probabilities; regressors and class labels give no such evidence.
    ``fitted``: the model's probabilities on rows it was fitted on, when they can be had (asked for only when the
    errors alone point to training rows): rows it is clearly less sure of are not those (see ``_LESS_SURE``).
    """
    outputs = _as_outputs(predictions)
    if performance.task != "classification" or not _is_probabilities(outputs) or outputs.shape[1] != len(performance.classes):
        return None
    probs = outputs.astype(float)
    confidence = probs.max(axis=1)
    expected = float((1 - confidence).sum())
    errors = row_losses(performance.task, performance.classes, predictions, labels).error
    sure = confidence >= 1.0
    rows = len(probs)
    scored = len(errors) == rows  # a row without a usable prediction is left out of the errors: not aligned then
    if scored and rows >= _SURE_MIN_ROWS and sure.mean() >= _SURE_SHARE and not errors[sure].any():
        return (
            f"{int(sure.sum())} of these {rows} rows given a probability of 1 and none of them wrong, as a model"
            " scores the rows it memorised (a forest of fully grown trees without bootstrap, each row in a pure leaf)"
        )
    if expected < _FIT_MIN_EXPECTED:
        return None
    observed = float(errors.sum())
    z = (expected - observed) / math.sqrt(max(float((confidence * (1 - confidence)).sum()), 1e-12))
    if observed > _FIT_RATIO * expected or z < norm.isf(_FIT_LEVEL) or _less_sure(confidence, fitted):
        return None
    return (
        f"accuracy {1 - observed / rows:.3f} on these {rows} rows, while the model's own probabilities predict"
        f" {1 - expected / rows:.3f} ({observed:.0f} errors where {expected:.0f} were expected, z = {z:.1f})"
    )
