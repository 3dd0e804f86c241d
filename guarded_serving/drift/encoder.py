"""Rows as the window's numbers: a :class:`~guarded_serving.drift.window.Chunk`'s matrix, from rows in feature order.

A numeric value is kept as it is, a category becomes its reference code, an unseen category
:data:`~guarded_serving.drift.window.UNSEEN` (its name counted, up to MAX_UNSEEN_NAMES per feature), a missing
value NaN, and a value of the wrong type NaN, counted as a type error. Plain values (a served request's, checked
by validation) are converted a column or a table at once; anything else is looked at one value at a time.
"""

from __future__ import annotations

import itertools
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .baseline import Baseline
from .window import UNSEEN

__all__ = ["Encoder", "output_rows"]

MAX_UNSEEN_NAMES = 20  # distinct unseen categories remembered per feature and chunk
_PLAIN_NUMBERS = frozenset({float, int, type(None)})
_TEXT = frozenset({str})
_PLAIN_CATEGORIES = frozenset({str, int, bool})  # hashable, never missing (a float may be NaN)


def _name(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:60]


def _single(j: int) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    return lambda row: (row[j],)


class Encoder:
    """Turns rows (lists in feature order) into the numeric matrix of a chunk."""

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self.width = baseline.width
        self.all_numeric = bool(baseline.numeric.all())
        # (feature index, category -> code, whether every category is text: then a number is a wrong type, not a new
        # category; "1" in the reference and 1 served would read as 100 % unseen under fingerprints that hide why)
        self._columns = [
            (int(j), baseline.codes[k], all(isinstance(c, str) for c in baseline.codes[k]))
            for k, j in enumerate(baseline.cat_idx)
        ]
        self._num_idx = [int(j) for j in baseline.num_idx]
        # a row's numeric values as a tuple (one value too), for the mixed table's numbers at once
        self._take_numeric: Callable[[Sequence[Any]], tuple[Any, ...]] | None = (
            None
            if not self._num_idx
            else operator.itemgetter(*self._num_idx)
            if len(self._num_idx) > 1
            else _single(self._num_idx[0])
        )

    def encode(self, rows: Sequence[Sequence[Any]], unseen: dict[int, dict[str, int]], errors: dict[int, int]) -> np.ndarray:
        n = len(rows)
        if self.all_numeric:
            # numpy would silently turn "3" and True into numbers: only plain numbers take the fast path
            if all(_PLAIN_NUMBERS.issuperset(map(type, row)) for row in rows):
                try:
                    return np.array(rows, dtype=np.float64).reshape(n, self.width)
                except (TypeError, ValueError):  # rows of the wrong length
                    pass
            return self._slow_numeric(rows, errors)
        matrix = np.empty((n, self.width), dtype=np.float64)
        if not self._numbers(rows, matrix):
            self._numbers_one_by_one(rows, matrix, errors)
        for j, codes, text in self._columns:
            column = [row[j] for row in rows]
            if not _coded(column, codes, text, matrix, j):
                _categories_one_by_one(column, j, codes, text, matrix, unseen, errors)
        return matrix

    def _numbers(self, rows: Sequence[Sequence[Any]], matrix: np.ndarray) -> bool:
        """The numeric columns of a mixed table at once, when every value there is a plain number or None (a
        served request's rows, checked): False, having written nothing, for any other value (or a row too short).
        Value by value, a 64-row request of 18 numbers and 2 categories took ~0.5 ms; at once, ~0.05."""
        take = self._take_numeric
        if take is None:
            return True
        try:
            values = [take(row) for row in rows]
        except IndexError:
            return False
        if not _PLAIN_NUMBERS.issuperset(map(type, itertools.chain.from_iterable(values))):
            return False
        try:
            matrix[:, self._num_idx] = np.array(values, dtype=np.float64).reshape(len(rows), len(self._num_idx))
        except (OverflowError, ValueError):  # an integer beyond a double: counted one by one
            return False
        return True

    def _numbers_one_by_one(self, rows: Sequence[Sequence[Any]], matrix: np.ndarray, errors: dict[int, int]) -> None:
        for j in self._num_idx:
            for i, row in enumerate(rows):
                v = row[j]
                if v is None:
                    matrix[i, j] = np.nan
                elif isinstance(v, numbers.Real) and not isinstance(v, bool):
                    matrix[i, j] = v
                else:
                    matrix[i, j] = np.nan
                    errors[j] = errors.get(j, 0) + 1

    def _slow_numeric(self, rows: Sequence[Sequence[Any]], errors: dict[int, int]) -> np.ndarray:
        matrix = np.full((len(rows), self.width), np.nan)
        for i, row in enumerate(rows):
            for j in range(min(len(row), self.width)):
                v = row[j]
                if isinstance(v, numbers.Real) and not isinstance(v, bool):
                    matrix[i, j] = v
                elif v is not None:
                    errors[j] = errors.get(j, 0) + 1
        return matrix


def _coded(column: list[Any], codes: Mapping[Any, int], text: bool, matrix: np.ndarray, j: int) -> bool:
    """A categorical column's codes written at once when every value is a known category of a plain type (text
    where the reference's categories are all text): False, having written nothing, when any value needs a look
    of its own (missing, unseen, of the wrong type, unhashable)."""
    if not (_TEXT if text else _PLAIN_CATEGORIES).issuperset(map(type, column)):
        return False
    found = list(map(codes.get, column))
    if None in found:
        return False
    matrix[:, j] = found
    return True


def _categories_one_by_one(
    column: list[Any],
    j: int,
    codes: Mapping[Any, int],
    text: bool,
    matrix: np.ndarray,
    unseen: dict[int, dict[str, int]],
    errors: dict[int, int],
) -> None:
    for i, v in enumerate(column):
        if v is None or (isinstance(v, float) and v != v):
            matrix[i, j] = np.nan
            continue
        if text and isinstance(v, numbers.Number):  # bool too: True where the reference had "True"
            matrix[i, j] = np.nan
            errors[j] = errors.get(j, 0) + 1
            continue
        try:
            code = codes.get(v)
        except TypeError:  # an unhashable value (a list, a dict): a wrong type, not a category
            matrix[i, j] = np.nan
            errors[j] = errors.get(j, 0) + 1
            continue
        if code is None:
            matrix[i, j] = UNSEEN
            names = unseen.setdefault(j, {})
            key = _name(v)
            if key in names or len(names) < MAX_UNSEEN_NAMES:
                names[key] = names.get(key, 0) + 1
        else:
            matrix[i, j] = code


def output_rows(outputs: Sequence[Any], width: int) -> list[list[Any]]:
    """Predictions as rows of ``width`` values (a scalar per row becomes a one-value row)."""
    rows = []
    for value in outputs:
        if isinstance(value, (list, tuple)):
            rows.append(list(value)[:width] if len(value) >= width else [*value, *([None] * (width - len(value)))])
        else:
            rows.append([value] + [None] * (width - 1))
    return rows
