"""The window laid out once for every check, and how checks round the figures they report."""

from __future__ import annotations

import math
import typing as t
from dataclasses import dataclass

import numpy as np

from ..health import Status
from .baseline import Baseline

__all__ = ["WindowColumns", "rounded", "rounded_all", "significant", "verdict"]

# A window that moved by more rows than this share of it, or that holds fewer numeric values than SMALL, is sorted
# afresh (numpy's sort then costs no more than taking values out and merging others in).
MOVED_AT_MOST = 1 / 8
SMALL = 16_384
MERGED_BY_SORT = 32  # values a row from which a merge is a stable sort of the two runs (see _merged)


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
        return _laid_out(matrix, base)

    def moved(self, matrix: np.ndarray, left: np.ndarray, arrived: np.ndarray, base: Baseline) -> WindowColumns:
        """:meth:`of` ``matrix``: the window these columns lay out, once its ``left`` oldest rows went and the
        ``arrived`` rows were appended (both in the window's feature order).

        Each sorted row keeps its order: the values that left are taken out and those that came merged in, the
        same numbers as sorting afresh (equal values in either order; NaN last). Sorting 64 x 2,000 values cost
        ~2.3-2.8 ms on a machine whose numpy sorts doubles without SIMD; this ~0.3 ms after a one-row request and
        ~1.0 ms after a 100-row one. A window that moved by much, a small one, or columns that are not the old
        window's lay-out (their values not where the rows that left say) are laid out afresh."""
        num = base.num_idx
        rows, width = matrix.shape[0], len(num)
        gone_rows, came_rows = left.shape[0], arrived.shape[0]
        if (
            self.numeric.shape != (width, self.rows)
            or rows != self.rows - gone_rows + came_rows
            or width * rows < SMALL
            or gone_rows + came_rows > MOVED_AT_MOST * rows
        ):
            return _laid_out(matrix, base)
        every = width == base.width
        gone, came = _sorted_rows(left if every else left[:, num]), _sorted_rows(arrived if every else arrived[:, num])
        if gone_rows == came_rows == 1:  # a one-row request in a full window: one value out and one in per row
            numeric = _swapped(self.numeric, gone[:, 0], came[:, 0])
        else:
            kept = _without(self.numeric, gone)
            numeric = None if kept is None else _merged(kept, came)
        if numeric is None:
            return _laid_out(matrix, base)
        if every:
            return WindowColumns(rows, _present(numeric), numeric, numeric[:0])
        return _with_categorical(np.array(matrix[:, base.cat_idx].T, order="C"), numeric, base)


def _laid_out(matrix: np.ndarray, base: Baseline) -> WindowColumns:
    """:meth:`WindowColumns.of`, sorting every numeric column."""
    by_feature = np.array(matrix.T, order="C")  # always a copy: the window's arrays may be shared or read-only
    if len(base.num_idx) == base.width:  # numbers only (a model's outputs, most tables): no scatter, no gather
        by_feature.sort(axis=1)  # in place: this function's own copy
        return WindowColumns(matrix.shape[0], _present(by_feature), by_feature, by_feature[:0])
    numeric = by_feature[base.num_idx]
    numeric.sort(axis=1)  # in place: this function's own copy
    return _with_categorical(by_feature[base.cat_idx], numeric, base)


def _with_categorical(categorical: np.ndarray, numeric: np.ndarray, base: Baseline) -> WindowColumns:
    present = np.empty(base.width, dtype=np.intp)
    present[base.num_idx] = _present(numeric)
    present[base.cat_idx] = (~np.isnan(categorical)).sum(axis=1)
    return WindowColumns(numeric.shape[1], present, numeric, categorical)


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    """A few window rows as sorted rows per feature (features x rows)."""
    out = np.array(rows.T, dtype=np.float64, order="C")
    out.sort(axis=1)
    return out


def _places(sorted_rows: np.ndarray, values: np.ndarray, side: t.Literal["left", "right"]) -> np.ndarray:
    """Where each value of a row of ``values`` goes in the same sorted row: ``searchsorted`` row by row (the array's
    method: numpy's function dispatch cost as much as the search, ~2 us a row)."""
    places = [row.searchsorted(v, side) for row, v in zip(sorted_rows, values, strict=True)]
    return np.array(places, dtype=np.intp).reshape(values.shape)


def _without(sorted_rows: np.ndarray, gone: np.ndarray) -> np.ndarray | None:
    """Each sorted row with one occurrence of each value of the same row of ``gone`` (sorted) taken out; None when
    one of them is not where it should be (the rows are not the ones those values left)."""
    width, n = sorted_rows.shape
    count = gone.shape[1]
    if count == 0:
        return sorted_rows
    at = _places(sorted_rows, gone, "left")
    if count > 1:  # equal values left: the first, second... of their run in the row
        same = np.zeros(gone.shape, dtype=bool)
        later, earlier = gone[:, 1:], gone[:, :-1]
        same[:, 1:] = (later == earlier) | (np.isnan(later) & np.isnan(earlier))
        if same.any():  # (continuous values seldom repeat: then each is where the search put it)
            index = np.broadcast_to(np.arange(count), gone.shape)
            at += index - np.maximum.accumulate(np.where(same, 0, index), axis=1)
    if not (at < n).all():
        return None
    flat = (at + np.arange(0, width * n, n)[:, None]).ravel()
    values = sorted_rows.ravel()
    if not np.array_equal(values[flat], gone.ravel(), equal_nan=True):
        return None
    keep = np.ones(width * n, dtype=bool)
    keep[flat] = False
    return values[keep].reshape(width, n - count)


def _swapped(sorted_rows: np.ndarray, gone: np.ndarray, came: np.ndarray) -> np.ndarray | None:
    """Each sorted row with its value of ``gone`` taken out and its value of ``came`` put in (one each per row);
    None when a row does not hold its value of ``gone``.

    :func:`_without` then :func:`_merged` for one value each pass twice over every value with a mask (taking out,
    then placing): ~0.52 ms for 64 rows of 2,000. Here both places are found by one search per row, the rows are
    copied once and, in each, only the values between the two places move by one: ~0.35 ms."""
    width, n = sorted_rows.shape
    keys = np.stack((gone, came), axis=1)
    # Both places on the left of equal values: the new value then goes where the row less the old one has it.
    places = np.array([row.searchsorted(pair) for row, pair in zip(sorted_rows, keys, strict=True)], dtype=np.intp)
    out_at = places[:, 0]
    if not (out_at < n).all() or not np.array_equal(sorted_rows[np.arange(width), out_at], gone, equal_nan=True):
        return None
    out = sorted_rows.copy()
    moves = zip(out, sorted_rows, out_at.tolist(), places[:, 1].tolist(), came.tolist(), strict=True)
    for new_row, old_row, a, b, value in moves:
        if b > a:  # the new value goes after the old one's place: the values between move down one
            new_row[a : b - 1] = old_row[a + 1 : b]
            new_row[b - 1] = value
        else:  # at or before it: the values between move up one
            new_row[b + 1 : a + 1] = old_row[b:a]
            new_row[b] = value
    return out


def _merged(kept: np.ndarray, came: np.ndarray) -> np.ndarray:
    """Each sorted row of ``kept`` with the same row of ``came`` (sorted) merged in.

    Many values (more than MERGED_BY_SORT a row): the two rows side by side, sorted by numpy's stable sort, a
    timsort that finds the two sorted runs and merges them in one pass (NaN last, as in both runs): 64 rows of
    1,900 + 100 values in ~0.27 ms against ~0.55 ms placing each value by ``searchsorted``, whose cost grows with
    the values placed; a few values are placed."""
    width, n = kept.shape
    count = came.shape[1]
    if count == 0:
        return kept
    if count > MERGED_BY_SORT:
        out = np.concatenate((kept, came), axis=1)
        out.sort(axis=1, kind="stable")
        return out
    total = n + count
    at = _places(kept, came, "right") + np.arange(count) + np.arange(0, width * total, total)[:, None]
    arrived = np.zeros(width * total, dtype=bool)
    arrived[at.ravel()] = True
    out = np.empty(width * total)
    out[arrived] = came.ravel()
    out[~arrived] = kept.ravel()
    return out.reshape(width, total)


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
