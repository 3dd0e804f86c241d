"""Rows that are arrays of one fixed shape (a tensor or an embedding per row): parsing, checking, logging.

A request's rows arrive as nested JSON lists. The whole batch is converted at once when it fits (the common
case costs one ``np.asarray``); otherwise each row is checked alone, so the 4xx names every refused row with
what it was and the shape expected: ``row 3, feature 'tensor': got an array of shape (8, 7); expected an
array of shape (8, 8) of numbers``.

The reference's element type decides what a value may be: a float reference takes any finite number up to
10^9 times its largest magnitude (at least 1), as a tabular feature does (1e300 sent to a float32 model is
infinity inside it); an integer one (``uint8`` pixels) takes whole numbers within its range; the model gets
the rows stacked in the reference's type.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigurationError, InputError, Problem
from ..validation import describe as describe_value
from ..validation import magnitude_limit
from .kind import check_rows

__all__ = ["LOGGED_VALUES", "ArrayRows", "ShapedKind"]

LOGGED_VALUES = 4096  # a row with more values is logged as its shape and summary, not its values


@dataclass(frozen=True, slots=True)
class ArrayRows:
    """Rows of ``shape`` holding ``dtype`` values; ``field`` is how the row is named in errors and logs;
    ``limit``: the largest magnitude a float value may have (infinite for a reference saved without it)."""

    field: str
    shape: tuple[int, ...]
    dtype: str
    limit: float = math.inf

    @classmethod
    def of_reference(cls, field: str, data: Any, where: str = "reference", min_dims: int = 1) -> tuple[ArrayRows, np.ndarray]:
        """The rows of a reference (an array, or a list of equal-shaped arrays) and the stacked array."""
        array = _stacked(data, where)
        if array.ndim < min_dims + 1 or array.shape[0] == 0:
            raise ConfigurationError(
                where, f"an array of shape {array.shape}", f"rows of {min_dims}-D arrays or more, one per row"
            )
        if array.dtype.kind not in "biuf":
            raise ConfigurationError(where, f"an array of {array.dtype}", "numbers (a tensor per row)")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            row = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0])
            raise ConfigurationError(f"{where} row {row}", "NaN or infinite values", "finite numbers")
        dtype = "int64" if array.dtype.kind == "b" else str(array.dtype)
        limit = magnitude_limit(float(array.min()), float(array.max())) if array.dtype.kind == "f" else math.inf
        return cls(field, tuple(int(s) for s in array.shape[1:]), dtype, limit), array.astype(dtype, copy=False)

    def state(self) -> dict[str, Any]:
        """What a kind saves of its rows besides their shape: the element type and the magnitude limit."""
        return {"dtype": self.dtype, **({"limit": self.limit} if math.isfinite(self.limit) else {})}

    @classmethod
    def from_state(cls, field: str, shape: tuple[int, ...], state: dict[str, Any]) -> ArrayRows:
        """The rows a kind saved with :meth:`state` (a KeyError, TypeError or ValueError when it is not that)."""
        limit = float(state.get("limit", math.inf))
        if not limit > 0:
            raise ValueError(f"limit {limit}")
        return cls(field, shape, str(np.dtype(state["dtype"])), limit)

    def expected(self) -> str:
        kind = "whole numbers" if np.dtype(self.dtype).kind in "iu" else "numbers"
        return f"an array of shape {self.shape} of {kind} ({self.dtype})"

    def items(self, data: Any, where: str) -> list[np.ndarray]:
        """Held-out or reference data as a list of rows, checked against this shape."""
        array = _stacked(data, where)
        if array.shape[1:] != self.shape:
            raise ConfigurationError(where, f"rows of shape {array.shape[1:]}", f"rows of shape {self.shape}, as the reference's")
        return list(array.astype(self.dtype, copy=False))

    def parse(self, rows: list[Any]) -> list[np.ndarray]:
        """A request's rows as arrays of the reference's type (an InputError naming each refused row)."""
        fast = self._batch(rows)
        if fast is not None:
            return list(fast)
        check_rows(rows, self._problem)
        raise InputError([Problem("rows that could not be stacked", self.expected())], status=422)  # pragma: no cover

    def _batch(self, rows: list[Any]) -> np.ndarray | None:
        try:
            array = np.asarray(rows)
        except (ValueError, TypeError):
            return None
        if array.shape != (len(rows), *self.shape) or array.dtype.kind not in "iuf":
            return None
        return self._cast(array)

    def _cast(self, array: np.ndarray) -> np.ndarray | None:
        target = np.dtype(self.dtype)
        if target.kind == "f":
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                return None
            if array.size and max(-float(array.min()), float(array.max())) > self.limit:
                return None
            return array.astype(target, copy=False)
        if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
            return None
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            return None
        return array.astype(target)

    def _problem(self, row: int, value: Any) -> Problem | None:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            array = None
        if array is not None and array.ndim == 0:
            return Problem(f"got {describe_value(value)}", self.expected(), row=row, feature=self.field, kind="type")
        if array is not None and array.dtype.kind == "O" and array.shape == self.shape:  # a null, a string among numbers
            flat = array.reshape(-1).tolist()
            k = next((k for k, v in enumerate(flat) if not _is_number(v)), -1)
            if k < 0:  # numbers only, one of them an integer too large for any machine type (10**400)
                k = max(range(len(flat)), key=lambda i: abs(flat[i]))
                beyond = _beyond(np.dtype(self.dtype), self.limit)
                got = f"got {describe_value(flat[k])} at position {_position(self.shape, k)}, {beyond}"
            else:
                got = f"got {describe_value(flat[k])} at position {_position(self.shape, k)}"
            return Problem(got, self.expected(), row=row, feature=self.field, kind="type")
        if array is None or array.dtype.kind == "O":
            return Problem("got nested lists of unequal lengths", self.expected(), row=row, feature=self.field, kind="type")
        if array.shape != self.shape:
            return Problem(f"got an array of shape {array.shape}", self.expected(), row=row, feature=self.field, kind="type")
        if array.dtype.kind not in "iuf":
            return Problem(f"got an array of {_what(array)}", self.expected(), row=row, feature=self.field, kind="type")
        if self._cast(array) is None:
            bad = _first_bad(array, np.dtype(self.dtype), self.limit)
            return Problem(f"got {bad}", self.expected(), row=row, feature=self.field, kind="type")
        return None

    def logged(self, items: Sequence[np.ndarray], redact: Collection[str]) -> list[Any]:
        """Each row's values (JSON lists), or None when its field is redacted; a row of more than
        :data:`LOGGED_VALUES` values is logged as its shape, mean and spread."""
        if self.field in redact:
            return [None] * len(items)
        size = int(np.prod(self.shape))
        if size <= LOGGED_VALUES:
            return [item.tolist() for item in items]
        return [
            {"shape": list(self.shape), "mean": float(item.mean()), "std": float(item.std()), "omitted": f"{size} values"}
            for item in items
        ]


class ShapedKind:
    """What the kinds of fixed-shape rows (tensor, embedding) share: one field, rows parsed and checked by
    :class:`ArrayRows`, and the model given them stacked. A kind adds how a row is described, logged and worded."""

    name: ClassVar[str]

    def __init__(self, rows: ArrayRows) -> None:
        self.rows = rows

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.rows.field,)

    def items(self, data: Any, where: str = "reference") -> list[Any]:
        return self.rows.items(data, where)

    def parse(self, rows: list[Any], allow_missing: bool) -> list[Any]:
        return self.rows.parse(rows)

    def model_input(self, items: list[Any]) -> Any:
        return np.stack(items)


def _stacked(data: Any, where: str) -> np.ndarray:
    try:
        return np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(where, "rows of different shapes", "rows of one fixed shape") from exc


def _what(array: np.ndarray) -> str:
    return {"U": "strings", "S": "bytes", "M": "dates", "b": "true/false values"}.get(array.dtype.kind, str(array.dtype))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _first_bad(array: np.ndarray, target: np.dtype[Any], limit: float = math.inf) -> str:
    flat = array.reshape(-1)
    if flat.dtype.kind == "f":
        bad = ~np.isfinite(flat)
        if bad.any():
            return f"{flat[np.flatnonzero(bad)[0]]} at position {_position(array.shape, int(np.flatnonzero(bad)[0]))}"
    if target.kind == "f":
        k = int(np.flatnonzero(np.abs(flat) > limit)[0])
        return f"{flat[k]:.3g} at position {_position(array.shape, k)}, {_beyond(target, limit)}"
    if flat.dtype.kind == "f" and target.kind in "iu":
        k = int(np.flatnonzero(flat != np.round(flat))[0]) if (flat != np.round(flat)).any() else -1
        if k >= 0:
            return f"{flat[k]} at position {_position(array.shape, k)}"
    info = np.iinfo(target)
    k = int(np.flatnonzero((flat < info.min) | (flat > info.max))[0])
    return f"{flat[k]} at position {_position(array.shape, k)}, {_beyond(target, limit)}"


def _beyond(target: np.dtype[Any], limit: float) -> str:
    """How a value too large for the reference is worded: its type's range, or the magnitude limit of its floats."""
    if target.kind in "iu":
        info = np.iinfo(target)
        return f"outside {info.min}..{info.max}"
    if not math.isfinite(limit):  # a reference saved before the limit: the type's own range
        return f"beyond what {target} holds (at most ±{float(np.finfo(target).max):.3g})"
    return f"far beyond the reference's values (at most ±{limit:.3g}: 10^9 times its largest magnitude)"


def _position(shape: tuple[int, ...], k: int) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(k, shape))
