"""The concept check's streaming change detector: a Bernoulli CUSUM of per-row errors, run afresh or moved on.

Concept drift runs the detector over the window's labelled rows at every health check, and after a new request
most of them are the rows it ran over last time, shifted: the oldest left, new ones came. Stepping through 2,000
rows in Python cost ~0.5 ms per check. The sum forgets its past whenever it is zero: from then on a run depends
only on the rows after it and on the baseline rate. :class:`CusumRun` therefore keeps where its sum was zero
(and the rates its alarms set), and :meth:`CusumRun.moved` steps only through what it must: the rows from the
window's new start until its sum is zero where the old run's was (same rate: from there the two runs are one),
and the rows after the old run's last zero before the rows that changed. Every step is the same float
operation in the same order as a fresh run's, so the alarms are the fresh run's, bit for bit.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CusumRun", "cusum_alarms"]

_CHUNK = 128  # rows converted to Python floats at a time


def _steps(rate: float) -> tuple[float, float]:
    up = min(max(2 * rate, rate + 0.05), 0.99)
    return math.log(up / rate), math.log((1 - up) / (1 - rate))


def _start(p0: float) -> float:
    return min(max(p0, 1e-4), 0.9)


@dataclass(frozen=True, slots=True)
class _Walk:
    """What stepping through some rows found: alarm rows, the rate after each, rows after which the sum was zero,
    and the row a walk that stopped early stopped after (its sum zero and its rate the old run's), else None."""

    alarms: list[int]
    bases: list[float]
    zeros: list[int]
    met: int | None = None


def _walk(errors: np.ndarray, first: int, base: float, threshold: float, meet: tuple[CusumRun, int] | None = None) -> _Walk:
    """Step the CUSUM through ``errors[first:]`` from a zero sum at rate ``base``. With ``meet`` (the old run and
    the old row of row 0), stop after a row where the sum is zero and the old run's was too, at the same rate."""
    alarms: list[int] = []
    bases: list[float] = []
    zeros: list[int] = []
    step_error, step_ok = _steps(base)
    total = 0.0
    since = first  # where the sum last left zero: the start of the suspected change
    old, shift = meet if meet is not None else (None, 0)
    # A chunk of rows at a time: a walk that meets the old run after a few rows converts only those to Python
    for start in range(first, len(errors), _CHUNK):
        values = errors[start : start + _CHUNK].tolist()  # Python floats: ~3x faster to step through than NumPy's
        old_zeros = old.zeros_among(start + shift, start + shift + len(values)) if old is not None else set()
        for i, e in enumerate(values, start):
            if total == 0.0:
                since = i
            total += step_error if e else step_ok
            if not total > 0.0:  # max(0.0, total) without a call per row (a NaN sum restarts at zero too)
                total = 0.0
            if total > threshold:
                alarms.append(i)
                observed = float(np.mean(errors[since : i + 1]))
                base = min(max(min(max(2 * base, base + 0.05), 0.99), observed), 0.9)
                bases.append(base)
                step_error, step_ok = _steps(base)
                total = 0.0
            if total == 0.0:
                zeros.append(i)
                if old is not None and i + shift in old_zeros and old.base_after(i + shift) == base:
                    return _Walk(alarms, bases, zeros, i)
    return _Walk(alarms, bases, zeros)


@dataclass(frozen=True, eq=False)
class CusumRun:
    """A CUSUM run over ``errors`` (0/1) against rate ``p0``: its ``alarms``, the rate each set (``bases``), and
    the rows after which its sum was zero (``zeros``, ascending)."""

    errors: np.ndarray
    p0: float
    threshold: float
    alarms: list[int]
    bases: list[float]
    zeros: np.ndarray

    @classmethod
    def of(cls, errors: np.ndarray, p0: float, threshold: float) -> CusumRun:
        walk = _walk(errors, 0, _start(p0), threshold)
        return cls(errors, p0, threshold, walk.alarms, walk.bases, np.array(walk.zeros, dtype=np.intp))

    def zeros_among(self, start: int, stop: int) -> set[int]:
        """The rows in ``start..stop-1`` after which the sum was zero."""
        zeros = self.zeros
        return set(zeros[int(np.searchsorted(zeros, start)) : int(np.searchsorted(zeros, stop))].tolist())

    def base_after(self, row: int) -> float:
        """The rate the sum runs at after ``row``'s step."""
        k = bisect.bisect_right(self.alarms, row)
        return self.bases[k - 1] if k else _start(self.p0)

    def moved(self, errors: np.ndarray, p0: float, threshold: float, departed: int) -> CusumRun:
        """The run over ``errors``, whose first rows may be this run's rows from ``departed`` on: the rows that are
        (equal values) are stepped through only until the two runs meet, and the rest from this run's last zero
        before them. Any ``departed`` gives the fresh run's answer; the right one gives it cheaply."""
        if p0 != self.p0 or threshold != self.threshold or not 0 <= departed < len(self.errors):
            return CusumRun.of(errors, p0, threshold)
        old = self.errors[departed:]
        same = min(len(old), len(errors))
        differ = np.flatnonzero(old[:same] != errors[:same])
        common = int(differ[0]) if len(differ) else same  # rows 0..common-1 are old rows departed.. (NaN: never)
        zeros = self.zeros
        hi = int(np.searchsorted(zeros, departed + common))  # old zeros before it: zeros[:hi]
        head = _walk(errors[:common], 0, _start(p0), threshold, (self, departed))
        if head.met is None:  # never met the old run: the head is the fresh run as far as it went
            if common == len(errors):
                return CusumRun(errors, p0, threshold, head.alarms, head.bases, np.array(head.zeros, dtype=np.intp))
            return CusumRun.of(errors, p0, threshold)
        met = head.met + departed  # in old rows; the old run from here to its last zero among the common rows
        last = int(zeros[hi - 1])
        a, b = bisect.bisect_right(self.alarms, met), bisect.bisect_right(self.alarms, last)
        tail = _walk(errors, last - departed + 1, self.base_after(last), threshold)
        middle = zeros[int(np.searchsorted(zeros, met, side="right")) : hi] - departed
        return CusumRun(
            errors,
            p0,
            threshold,
            head.alarms + [r - departed for r in self.alarms[a:b]] + tail.alarms,
            head.bases + self.bases[a:b] + tail.bases,
            np.concatenate([np.array(head.zeros, dtype=np.intp), middle, np.array(tail.zeros, dtype=np.intp)]),
        )


def cusum_alarms(errors: np.ndarray, p0: float, threshold: float) -> list[int]:
    """Indices where a Bernoulli CUSUM of ``errors`` (0/1) against rate ``p0`` alarms.

    The alternative is p1 = max(2 p0, p0 + 0.05). After an alarm the baseline becomes the error rate
    seen since the sum last left zero (at least p1) and the sum restarts, so a lasting change of any
    size gives one alarm; only a further rise alarms again.
    """
    return CusumRun.of(errors, p0, threshold).alarms
