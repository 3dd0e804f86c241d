"""A classifier's labelled rows scored row by row, kept so that a window moved on scores only its new rows.

Concept drift scores the window's labelled rows at every health check: each row's error (the most probable
class is not the label) and log loss, from the outputs' probability matrix. After a new request most rows
are the last check's, shifted: scoring 2,000 rows again cost ~0.5 ms, the ~100 new ones a tenth of that. Each
row's figures depend on that row alone, by the same element-wise operations however many rows are scored at
once, so the figures kept and shifted are those a fresh scoring computes, bit for bit (``RowLosses`` equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .performance import RowLosses, class_indices

__all__ = ["ScoredRows"]

_EPS = 1e-15  # as row_losses clips probabilities


def _bits(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix, dtype=np.float64).view(np.uint64)


@dataclass(frozen=True, eq=False)
class ScoredRows:
    """Rows of class probabilities (``matrix``, one column per class) with their ``labels``, scored: whether a
    row is a probability vector (``usable``), its 0/1 ``error`` and its log ``loss`` (meaningless where not usable)."""

    classes: tuple[Any, ...]
    matrix: np.ndarray
    labels: list[Any]
    usable: np.ndarray
    error: np.ndarray
    loss: np.ndarray

    @classmethod
    def of(cls, classes: tuple[Any, ...], matrix: np.ndarray, labels: list[Any]) -> ScoredRows:
        usable, error, loss = _score(classes, matrix, labels)
        return cls(classes, matrix, labels, usable, error, loss)

    def moved(self, classes: tuple[Any, ...], matrix: np.ndarray, labels: list[Any], departed: int) -> ScoredRows:
        """The rows ``matrix`` and ``labels``, whose first ones may be this one's from ``departed`` on: when they are
        (the same values, bit for bit, and equal labels), only the rows after them are scored; else all are."""
        kept = min(len(self.matrix) - departed, len(matrix))
        if (
            classes != self.classes
            or departed < 0
            or kept <= 0
            or matrix.shape[1:] != self.matrix.shape[1:]
            or not np.array_equal(_bits(self.matrix[departed : departed + kept]), _bits(matrix[:kept]))
            or self.labels[departed : departed + kept] != labels[:kept]
        ):
            return ScoredRows.of(classes, matrix, labels)
        usable, error, loss = _score(classes, matrix[kept:], labels[kept:])
        end = departed + kept
        return ScoredRows(
            classes,
            matrix,
            labels,
            np.concatenate([self.usable[departed:end], usable]),
            np.concatenate([self.error[departed:end], error]),
            np.concatenate([self.loss[departed:end], loss]),
        )

    def losses(self) -> RowLosses | None:
        """What :func:`~guarded_serving.performance.row_losses` answers for these rows when most of them are
        probability vectors (it scores those and leaves the others out); None when they are not."""
        n = len(self.matrix)
        usable = int(self.usable.sum())
        if not n or 2 * usable <= n:
            return None
        if usable == n:
            return RowLosses(self.error, self.loss, 0)
        return RowLosses(self.error[self.usable], self.loss[self.usable], n - usable, self.usable)


def _score(classes: Sequence[Any], matrix: np.ndarray, labels: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's usability, error and loss, as row_losses computes them for a row it keeps."""
    truth = class_indices(classes, labels)
    usable = np.isfinite(matrix).all(axis=1) & (matrix >= -1e-9).all(axis=1)
    usable &= np.abs(matrix.sum(axis=1) - 1.0) <= 1e-3
    error = (matrix.argmax(axis=1) != truth).astype(float)
    p_true = np.where(truth >= 0, matrix[np.arange(len(matrix)), np.maximum(truth, 0)], 0.0)
    return usable, error, -np.log(np.clip(p_true, _EPS, 1.0))
