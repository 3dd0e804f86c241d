"""The window laid out once for every check, and how checks round the figures they report."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..health import Status
from .baseline import Baseline

__all__ = ["WindowColumns", "rounded", "significant", "verdict"]


def rounded(x: float | np.floating | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), digits)


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
        numeric = by_feature if len(base.num_idx) == base.width else by_feature[base.num_idx]
        numeric.sort(axis=1)  # in place: both are this function's own copies
        categorical = by_feature[base.cat_idx]
        present = np.empty(base.width, dtype=np.intp)
        present[base.num_idx] = (~np.isnan(numeric)).sum(axis=1)
        present[base.cat_idx] = (~np.isnan(categorical)).sum(axis=1)
        return cls(matrix.shape[0], present, numeric, categorical)
