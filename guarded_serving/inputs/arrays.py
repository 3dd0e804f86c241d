"""Per-row summaries of fixed-shape tensors (images, spectrograms, any array per row), watched as features.

A tensor per row has too many values to watch one by one, and most of them mean nothing alone. What breaks in
production changes a few things every row shares, so each row is summarised in a handful of numbers that the
calibrated drift engine then judges like numeric features (their names are what the report shows):

- ``mean`` and ``spread`` (standard deviation) of the row's values: brightness, contrast, a new scale
  (0-255 served to a model trained on 0-1);
- ``saturated_low`` and ``saturated_high``: the share of values at (or beyond) the reference's minimum and
  maximum, kept only when the reference itself saturates (at least 0.1 % of its values sit there, as in
  clipped images); clipping, an over-exposed camera, added noise lifting the zero background;
- ``edges_rows`` and ``edges_columns``: mean absolute difference between neighbouring values along the two
  spatial axes (blur, noise, sharpening; a rotation by 90° swaps them);
- ``projection_1`` ... ``projection_8``: a fixed seeded random projection of the whole row
  (:mod:`~guarded_serving.inputs.projection`), which keeps a little of every value's position, so a rotated,
  flipped or shifted image moves them, and changes in their relations reach the joint drift check.

Spatial axes: the two axes of a 2-D row; for 3-D rows, the last two when the first looks like channels
(1, 3 or 4 of them, and the last is not), else the first two (height, width, channels). A 1-D row has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError, InvalidReferenceError
from .projection import DIMENSIONS, SEED, RandomProjection

__all__ = ["SATURATION_SHARE", "TensorSummary", "spatial_axes"]

SATURATION_SHARE = 0.001  # the reference's share of values at its min (max) for that end to be watched
CHANNELS = (1, 3, 4)


def spatial_axes(shape: Sequence[int]) -> tuple[int, ...]:
    """The axes of one row (not counting the batch axis) along which neighbouring values are compared."""
    if len(shape) <= 1:
        return (0,) if shape and shape[0] > 1 else ()
    if len(shape) == 3 and shape[0] in CHANNELS and shape[-1] not in CHANNELS:
        return (1, 2)
    return (0, 1)


@dataclass(frozen=True, slots=True)
class TensorSummary:
    """Summaries of rows of ``shape``, fitted on the reference's rows (see the module docstring)."""

    shape: tuple[int, ...]
    low: float | None  # the reference's minimum, when it saturates there
    high: float | None
    dimensions: int = DIMENSIONS
    seed: int = SEED
    projection: RandomProjection = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "projection", RandomProjection(int(np.prod(self.shape)), self.dimensions, self.seed))

    @classmethod
    def fit(cls, reference: Any, dimensions: int = DIMENSIONS, seed: int = SEED) -> TensorSummary:
        """From the reference's rows: an array of rows x shape (at least 2 rows, finite numbers)."""
        array = np.asarray(reference)
        if array.ndim < 2 or array.shape[0] < 2:
            raise ConfigurationError("reference", f"an array of shape {array.shape}", "rows x a tensor shape, 2 rows or more")
        if array.dtype.kind not in "biuf":
            raise ConfigurationError("reference", f"an array of {array.dtype}", "an array of numbers")
        values = array.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise ConfigurationError("reference", "a tensor with NaN or infinite values", "finite numbers")
        lo, hi = float(values.min()), float(values.max())
        low = lo if (values <= lo).mean() >= SATURATION_SHARE and lo < hi else None
        high = hi if (values >= hi).mean() >= SATURATION_SHARE and lo < hi else None
        return cls(tuple(int(s) for s in array.shape[1:]), low, high, dimensions, seed)

    @property
    def names(self) -> tuple[str, ...]:
        names = ["mean", "spread"]
        if self.low is not None:
            names.append("saturated_low")
        if self.high is not None:
            names.append("saturated_high")
        names += ["edges_rows", "edges_columns"][: len(spatial_axes(self.shape))]
        return (*names, *self.projection.names)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """rows x shape (already validated) -> rows x len(names), float64."""
        values = np.asarray(rows, dtype=np.float64)
        flat = values.reshape(len(values), -1)
        parts = [flat.mean(axis=1), flat.std(axis=1)]
        if self.low is not None:
            parts.append((flat <= self.low).mean(axis=1))
        if self.high is not None:
            parts.append((flat >= self.high).mean(axis=1))
        for axis in spatial_axes(self.shape):
            change = np.abs(np.diff(values, axis=axis + 1))
            parts.append(change.reshape(len(values), -1).mean(axis=1))
        columns = np.column_stack(parts) if parts else np.zeros((len(values), 0))
        return np.hstack([columns, self.projection(flat)])

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "low": self.low, "high": self.high, "dimensions": self.dimensions, "seed": self.seed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSummary:
        try:
            shape = tuple(int(s) for s in data["shape"])
            low = None if data.get("low") is None else float(data["low"])
            high = None if data.get("high") is None else float(data["high"])
            return cls(shape, low, high, int(data.get("dimensions", DIMENSIONS)), int(data.get("seed", SEED)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidReferenceError(f"tensor summary: expected shape, low, high, dimensions and seed, got {data!r}") from exc
