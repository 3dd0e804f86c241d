"""A classifier's accuracy read as a shift of the class mix, from its predicted classes alone (label shift).

The confidence-based estimate (:mod:`guarded_serving.estimate`) rests on P(y | x) staying what it was: a row is
worth what rows of its confidence were worth on the reference. A shift of the class mix (P(x | y) unchanged, the
classes' shares changed) breaks exactly that. Measured on imbalanced binary classifiers (logistic regression, naive
Bayes, a tree), positives going from 5 % to 11 % of traffic cost 4-5 accuracy points while the confidence estimate
moved 0.3-0.5: the extra positives look like the reference's positives, and many are confidently called negative.

Under such a shift a window's predicted-class shares are ``mu = M q``, where ``M[i, j]`` is the reference's
P(predicted i | class j) and ``q`` the window's class mix (black-box shift estimation, Lipton, Wang and Smola,
ICML 2018). Its accuracy is ``sum_j q_j M[j, j]``, so ``a . mu`` with ``a = M^-T diag(M)``: for two classes a
straight line in the share of rows predicted positive, equal to the reference's realized accuracy at the
reference's share.

When is the share's move more than chance? Not by a normal approximation: an imbalanced model predicts few
positives (5-20 in a window), and a normal interval on so few flagged 4-60 times its share of the budget on
simulated healthy windows (a reference of 5,000 rows, windows of 200-2,000, 2-5 % positives). The window's and
the reference's positive counts are compared exactly instead: given their sum, the window's is binomial with the
window's share of the rows (the conditional test of two Poisson rates). The counts it accepts for a window of
``n`` rows are computed once per ``n`` and mapped to accuracies: that is the interval. A reading is flagged when
the count is outside them and the accuracy at least 2 points from the reference's.

With three classes or more (:class:`ClassMixShift`) the reading is the same ``a . mu``, a plane in the predicted
classes' shares. Whether the mix moved is told class by class by the same exact test, each at its share of the
budget (one class's count against all others'), and the accuracy's interval is a normal one around the
reference's (the multinomial variance of ``a . mu``, the window's and the reference's); a reading is flagged when
a class's count is outside what its test accepts and the accuracy outside its interval and at least 2 points off.
A class with fewer than :data:`MIN_CLASS_ROWS` reference rows, or a model that never predicts a class on the
reference: no such reading. This reading and the confidence one disagree when the shift is
of the inputs (P(y | x) unchanged: the confidences are right) or of the class mix (this one is): the check
reports both and says which moved.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom, norm

from .errors import InvalidReferenceError

__all__ = ["MIN_CHANGE", "MIN_CLASS_ROWS", "ClassMixShift", "LabelShift", "ShiftReading", "shift_from_json", "shift_of"]

MIN_CLASS_ROWS = 20  # reference rows per class for its column of the confusion matrix
MIN_CHANGE = 0.02  # accuracy points a reading must move to be flagged, as the confidence estimate's


@dataclass(frozen=True, slots=True)
class ShiftReading:
    """A window's accuracy under a shift of the class mix, the range it stays in on healthy traffic, and
    whether it left it (downwards: ``worse``)."""

    estimated: float
    low: float
    high: float
    outside: bool
    worse: bool


@dataclass(frozen=True, slots=True)
class LabelShift:
    """A binary classifier's reference: its rows, those predicted positive (the second output column), and the
    line from the share predicted positive to accuracy (``accuracy`` at the reference's own share)."""

    rows: int
    positives: int
    intercept: float  # accuracy at a share of 0 predicted positive
    slope: float  # accuracy gained per unit of share predicted positive
    accuracy: float

    @classmethod
    def of(cls, predicted: np.ndarray, truth: np.ndarray, classes: int) -> LabelShift | None:
        """The line from the reference's predicted and true class indices (0 or 1, same length); None when there
        are more than two classes, a class has fewer than :data:`MIN_CLASS_ROWS` rows, or one is never predicted."""
        predicted, truth = np.asarray(predicted, dtype=np.intp), np.asarray(truth, dtype=np.intp)
        if classes != 2 or len(predicted) != len(truth) or not len(truth) or not np.isin(truth, (0, 1)).all():
            return None
        per_class = np.bincount(truth, minlength=2)
        positives = int(np.count_nonzero(predicted == 1))
        if per_class.min() < MIN_CLASS_ROWS or positives in (0, len(predicted)):
            return None
        joint = np.bincount(predicted * 2 + truth, minlength=4).reshape(2, 2)
        confusion = joint / per_class[None, :]  # P(predicted i | class j)
        if abs(np.linalg.det(confusion)) < 1e-6:  # predicted positive as often for both classes: no line
            return None
        a = np.linalg.solve(confusion.T, np.diag(confusion))
        share = positives / len(predicted)
        return cls(len(truth), positives, float(a[0]), float(a[1] - a[0]), float(a[0] + (a[1] - a[0]) * share))

    def at(self, positives: int, rows: int) -> float:
        """The accuracy a window of ``rows`` with ``positives`` predicted positive has under a shift of the class mix."""
        return self.intercept + self.slope * positives / max(rows, 1)

    def reading(self, positives: int, rows: int, alpha: float) -> ShiftReading:
        """The window's reading, judged at ``alpha`` (two-sided)."""
        low_count, high_count = _accepted(self.positives, self.rows, rows, alpha)
        ends = sorted((self.at(low_count, rows), self.at(high_count, rows)))
        low = max(min(ends[0], self.accuracy - MIN_CHANGE), 0.0)
        high = min(max(ends[1], self.accuracy + MIN_CHANGE), 1.0)
        estimated = self.at(positives, rows)
        moved = not low_count <= positives <= high_count and abs(estimated - self.accuracy) > MIN_CHANGE
        return ShiftReading(estimated, low, high, moved, estimated < self.accuracy)

    def read(self, predicted: np.ndarray, alpha: float, worth: float = 1.0) -> ShiftReading | None:
        """:meth:`reading` of a window's predicted class indices; None when they are not two classes'. ``worth``: the
        share of its rows they are worth as independent ones (a stream that repeats its rows: drift.repeats)."""
        if not len(predicted) or predicted.max() > 1:  # outputs of another width
            return None
        positives, rows = (round(c * worth) for c in (int(np.count_nonzero(predicted == 1)), len(predicted)))
        return self.reading(positives, max(rows, 1), alpha)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "positives": self.positives,
            "intercept": self.intercept,
            "slope": self.slope,
            "accuracy": self.accuracy,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelShift:
        rows, positives = int(data["rows"]), int(data["positives"])
        if not 0 < positives < rows:
            raise InvalidReferenceError(
                f"label shift: {positives} of {rows} reference rows predicted positive; expected some, not all"
            )
        return cls(rows, positives, float(data["intercept"]), float(data["slope"]), float(data["accuracy"]))


@dataclass(frozen=True, slots=True)
class ClassMixShift:
    """A classifier of three classes or more: its reference rows, those predicted as each class, the weights that
    turn the predicted classes' shares into accuracy under a shift of the class mix (``accuracy`` at the
    reference's own shares), and the spread of that accuracy per row (its multinomial standard deviation)."""

    rows: int
    predicted: tuple[int, ...]  # reference rows predicted as each class
    weights: tuple[float, ...]
    accuracy: float
    spread: float

    @classmethod
    def of(cls, predicted: np.ndarray, truth: np.ndarray, classes: int) -> ClassMixShift | None:
        """The reading from the reference's predicted and true class indices (same length); None for fewer than
        three classes, a class with fewer than :data:`MIN_CLASS_ROWS` rows, or one never predicted."""
        predicted, truth = np.asarray(predicted, dtype=np.intp), np.asarray(truth, dtype=np.intp)
        if classes < 3 or len(predicted) != len(truth) or not len(truth):
            return None
        if (truth < 0).any() or (truth >= classes).any() or (predicted < 0).any() or (predicted >= classes).any():
            return None
        per_class = np.bincount(truth, minlength=classes)
        counts = np.bincount(predicted, minlength=classes)
        if per_class.min() < MIN_CLASS_ROWS or counts.min() == 0:
            return None
        joint = np.bincount(predicted * classes + truth, minlength=classes * classes).reshape(classes, classes)
        confusion = joint / per_class[None, :]  # P(predicted i | class j)
        if np.linalg.cond(confusion) > 1e6:  # some classes predicted alike: no plane
            return None
        weights = np.linalg.solve(confusion.T, np.diag(confusion))
        shares = counts / len(predicted)
        accuracy = float(weights @ shares)
        spread = math.sqrt(max(float(weights**2 @ shares) - accuracy**2, 0.0))
        return cls(len(truth), tuple(counts.tolist()), tuple(weights.tolist()), accuracy, spread)

    def reading(self, counts: np.ndarray, alpha: float) -> ShiftReading:
        """The reading of a window whose rows were predicted as each class ``counts`` times, judged at ``alpha``."""
        rows = int(counts.sum())
        estimated = float(np.asarray(self.weights) @ counts) / max(rows, 1)
        half = _z(alpha) * self.spread * math.sqrt(1 / max(rows, 1) + 1 / self.rows)
        each = alpha / len(self.predicted)
        accepted = (_accepted(reference, self.rows, rows, each) for reference in self.predicted)
        mix_moved = any(not least <= c <= most for c, (least, most) in zip(counts.tolist(), accepted, strict=True))
        low = max(min(self.accuracy - half, self.accuracy - MIN_CHANGE), 0.0)
        high = min(max(self.accuracy + half, self.accuracy + MIN_CHANGE), 1.0)
        outside = mix_moved and not low <= estimated <= high
        return ShiftReading(estimated, low, high, outside, estimated < self.accuracy)

    def read(self, predicted: np.ndarray, alpha: float, worth: float = 1.0) -> ShiftReading | None:
        """:meth:`reading` of a window's predicted class indices; None when they are not this model's classes'.
        ``worth``: as :meth:`LabelShift.read`'s."""
        classes = len(self.predicted)
        if not len(predicted) or predicted.max() >= classes:
            return None
        counts = np.bincount(predicted, minlength=classes)
        return self.reading(counts if worth == 1.0 else np.round(counts * worth).astype(np.intp), alpha)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "predicted": list(self.predicted),
            "weights": list(self.weights),
            "accuracy": self.accuracy,
            "spread": self.spread,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClassMixShift:
        rows, predicted, weights = int(data["rows"]), [int(c) for c in data["predicted"]], [float(w) for w in data["weights"]]
        if len(predicted) < 3 or len(weights) != len(predicted) or min(predicted) <= 0 or sum(predicted) != rows:
            raise InvalidReferenceError(
                f"label shift: {predicted} reference rows predicted per class of {rows}; expected three classes or"
                " more, each predicted, adding up to the rows, and a weight per class"
            )
        return cls(rows, tuple(predicted), tuple(weights), float(data["accuracy"]), float(data["spread"]))


def shift_of(predicted: np.ndarray, truth: np.ndarray, classes: int) -> LabelShift | ClassMixShift | None:
    """The reading under a shift of the class mix a reference gives (see :class:`LabelShift`, :class:`ClassMixShift`)."""
    return LabelShift.of(predicted, truth, classes) if classes == 2 else ClassMixShift.of(predicted, truth, classes)


def shift_from_json(data: Mapping[str, Any]) -> LabelShift | ClassMixShift:
    """A reading saved by ``to_json``: of three classes or more when it names what was predicted per class."""
    return ClassMixShift.from_json(data) if "predicted" in data else LabelShift.from_json(data)


@functools.lru_cache(maxsize=8)
def _z(alpha: float) -> float:
    return float(norm.isf(alpha / 2))


@functools.lru_cache(maxsize=128)
def _accepted(reference_positives: int, reference_rows: int, rows: int, alpha: float) -> tuple[int, int]:
    """The fewest and most positives a window of ``rows`` may predict and not differ from the reference's share
    at ``alpha`` (two-sided), by the exact conditional test: given both counts' sum, the window's is binomial with
    the window's share of all rows. Once per window size (~0.3 ms for 2,000 rows)."""
    counts = np.arange(rows + 1)
    total = counts + reference_positives
    share = rows / (rows + reference_rows)
    tails = np.minimum(binom.sf(counts - 1, total, share), binom.cdf(counts, total, share))
    accepted = np.flatnonzero(2 * tails > alpha)
    if not len(accepted):  # not met: the counts near the expected one are always accepted
        return 0, rows
    return int(accepted[0]), int(accepted[-1])
