"""Concept drift's work on the window's labelled rows, moved on from the last health check's.

After a new labelled request the labelled rows are mostly the last check's, shifted. Scoring them (each row's
error and loss) and running the change detector over them were computed on all 2,000 rows again at every
check (~1 ms together); :class:`RealizedRows` keeps the last scoring and detector run and moves them on:
the outputs' matrix says by how many rows the labelled rows moved (:func:`~guarded_serving.drift.moves.departed_rows`;
the scoring checks the labels too, the detector the errors), and what is computed is what a fresh computation answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ..cusum import CusumRun
from ..drift.moves import departed_rows
from ..performance import Performance, RowLosses, row_losses
from ..scored import ScoredRows
from .feedback import Labelled

__all__ = ["RealizedRows"]

Detector = Callable[[np.ndarray, float, float], list[int]]  # (errors, p0, threshold) -> alarm rows, as cusum_alarms


class RealizedRows:
    """The last labelled rows' scoring and change-detector run, moved on to the next ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._matrix: np.ndarray | None = None  # the outputs' matrix of the rows scored last
        self._scored: ScoredRows | None = None
        self._unscored = 0
        self._run: CusumRun | None = None

    def score(self, performance: Performance, labelled: Labelled) -> tuple[RowLosses, Detector]:
        """The labelled rows' losses, as :func:`~guarded_serving.performance.row_losses` answers, and the change
        detector to run on their errors (it answers as :func:`~guarded_serving.cusum.cusum_alarms`)."""
        matrix, classes = labelled.matrix, performance.classes
        with self._lock:
            last_matrix, last_scored, last_unscored = self._matrix, self._scored, self._unscored
        departed = departed_rows(last_matrix, matrix) if last_matrix is not None and matrix is not None else None
        scored, losses = None, None
        if (
            performance.task == "classification"
            and len(classes) >= 2
            and matrix is not None
            and matrix.shape == (len(labelled.outputs), len(classes))
        ):
            if last_scored is not None and departed is not None:
                scored = last_scored.moved(classes, matrix, labelled.labels, departed)
            else:
                scored = ScoredRows.of(classes, matrix, labelled.labels)
            losses = scored.losses()
        if losses is None:
            losses = row_losses(performance.task, classes, labelled.outputs, labelled.labels, matrix)
        # the errors' rows are the matrix's only when every row was scored, this time and the last
        shift = departed if not losses.unscored and not last_unscored else None
        with self._lock:
            self._matrix, self._scored, self._unscored = matrix, scored, losses.unscored
        return losses, lambda errors, p0, threshold: self._alarms(errors, p0, threshold, shift)

    def _alarms(self, errors: np.ndarray, p0: float, threshold: float, departed: int | None) -> list[int]:
        with self._lock:
            last = self._run
        run = last.moved(errors, p0, threshold, departed) if last is not None and departed is not None else None
        run = run or CusumRun.of(errors, p0, threshold)
        with self._lock:
            self._run = run
        return run.alarms
