"""The window laid out once for every check, and how checks round the figures they report."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..health import Status
from .baseline import Baseline

__all__ = ["WindowColumns", "rounded", "rounded_all", "significant", "verdict"]


def rounded(x: float | np.floating | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), digits)


def rounded_all(values: np.ndarray) -> list[float | None]:
    """:func:`rounded` of every value (4 digits), the same numbers, without a Python ``round`` per value.

    ``np.round`` scales by 10^4, rounds to an integer and divides back: the division gives the float nearest to
    the decimal, as ``round`` does, so the two agree unless the scaled value sits within its own rounding error
    (at most ``|x| 10^4 2^-53``) of a half, where the product may have crossed it or made a tie that is not one:
    those few go through ``round``, as do values past 10^15 (their own rounding, and x 10^4 may overflow). A value
    that is not finite becomes None.
    """
    x = np.asarray(values, dtype=float)
    finite = np.isfinite(x)
    if not finite.all():
        some = rounded_all(np.where(finite, x, 0.0))
        for k in np.flatnonzero(~finite).tolist():
            some[k] = None
        return some
    big = float(np.abs(x).max()) if x.size else 0.0
    if big >= 1e15:
        return [round(v, 4) for v in x.tolist()]
    scaled = x * 1e4
    whole = np.rint(scaled)
    shown: list[float | None] = (whole / 1e4).tolist()  # np.round(x, 4), without its checks
    for k in np.flatnonzero(np.abs(scaled - whole) >= 0.5 - (big * 1e-11 + 1e-9)).tolist():
        shown[k] = round(float(x[k]), 4)
    return shown


def significant(p: float | None) -> float | None:
    """A p-value to three significant digits (a tiny one stays tiny, not 0)."""
    return None if p is None or not math.isfinite(p) else float(f"{p:.3g}")


def verdict(reasons: list[str], severe: bool) -> tuple[bool, Status]:
    """A feature's verdict from what was found: drifted when anything was, an alert when any of it was severe."""
    drifted = bool(reasons)
    return drifted, Status.ALERT if drifted and severe else Status.WARN if drifted else Status.OK


@dataclass(frozen=True, eq=False)
class WindowColumns:
    """A window laid out once for all checks: one contiguous row per feature, numeric ones sorted
    (missing values, NaN, sort last), and the count of present values per feature."""

    rows: int
    present: np.ndarray  # per feature
    numeric: np.ndarray  # numeric features x rows, each sorted
    categorical: np.ndarray  # categorical features x rows, codes as in the window

    @classmethod
    def of(cls, matrix: np.ndarray, base: Baseline) -> WindowColumns:
        by_feature = np.array(matrix.T, order="C")  # always a copy: the window's arrays may be shared or read-only
        if len(base.num_idx) == base.width:  # numbers only (a model's outputs, most tables): no scatter, no gather
            by_feature.sort(axis=1)  # in place: this function's own copy
            return cls(matrix.shape[0], _present(by_feature), by_feature, by_feature[:0])
        numeric = by_feature[base.num_idx]
        numeric.sort(axis=1)  # in place: this function's own copy
        categorical = by_feature[base.cat_idx]
        present = np.empty(base.width, dtype=np.intp)
        present[base.num_idx] = _present(numeric)
        present[base.cat_idx] = (~np.isnan(categorical)).sum(axis=1)
        return cls(matrix.shape[0], present, numeric, categorical)


def _present(sorted_rows: np.ndarray) -> np.ndarray:
    """Present values per sorted row (NaN sorts last): the row's length where its last value is a number, so only
    rows with a missing value are counted (counting all of them cost ~0.1 ms for 64 x 2,000 values)."""
    rows, width = sorted_rows.shape
    present = np.full(rows, width, dtype=np.intp)
    if width:
        gappy = np.flatnonzero(np.isnan(sorted_rows[:, -1]))
        if len(gappy):
            present[gappy] = np.count_nonzero(~np.isnan(sorted_rows[gappy]), axis=1)
    return present
