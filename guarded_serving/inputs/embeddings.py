"""Per-row summaries of embedding vectors (a model's input, or its own representation), watched as features.

An embedding's coordinates mean nothing alone, but together they say where a row sits. Each row becomes:

- its coordinates, when there are at most :data:`MAX_COORDINATES` of them (``dim_0`` ... ``dim_63``), else a
  fixed seeded random projection to that many (``projection_1`` ...): the per-feature checks see a shift or
  a rescaling along them, and the joint drift check a change in how they move together;
- ``norm``, its Euclidean length: a scale change, a normalisation added or dropped upstream;
- ``distance``, its Mahalanobis distance to the reference's mean over those coordinates (whitened by the
  reference's covariance): a shift in any direction, including one spread thinly over many coordinates
  (a mean shift in a 5-dimensional subspace), a wider or narrower cloud.

All three are judged by the calibrated drift engine, at the model's false-alarm budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError, InvalidReferenceError
from .projection import SEED, RandomProjection

__all__ = ["MAX_COORDINATES", "EmbeddingSummary"]

MAX_COORDINATES = 64
RIDGE = 1e-6  # relative to the mean variance: a degenerate direction (a constant coordinate) stays invertible


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddingSummary:
    """Summaries of vectors of ``size`` values, fitted on the reference's (see the module docstring)."""

    size: int
    mean: np.ndarray  # of the watched coordinates
    whitening: np.ndarray  # coordinates x coordinates: centred coordinates @ whitening has identity covariance
    seed: int = SEED
    projection: RandomProjection | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        projected = RandomProjection(self.size, MAX_COORDINATES, self.seed) if self.size > MAX_COORDINATES else None
        object.__setattr__(self, "projection", projected)

    @classmethod
    def fit(cls, reference: Any, seed: int = SEED) -> EmbeddingSummary:
        """From the reference's vectors: rows x size numbers, finite, more rows than coordinates."""
        array = np.asarray(reference)
        if array.ndim != 2 or array.dtype.kind not in "biuf":
            raise ConfigurationError("reference", f"an array of shape {array.shape} ({array.dtype})", "rows x embedding numbers")
        values = array.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise ConfigurationError("reference", "embeddings with NaN or infinite values", "finite numbers")
        size = int(values.shape[1])
        coordinates = min(size, MAX_COORDINATES)
        if len(values) <= 2 * coordinates:
            raise ConfigurationError("reference", f"{len(values)} embeddings", f"more than {2 * coordinates} rows")
        watched = RandomProjection(size, MAX_COORDINATES, seed)(values) if size > MAX_COORDINATES else values
        mean = watched.mean(axis=0)
        covariance = np.cov(watched, rowvar=False).reshape(coordinates, coordinates)
        covariance += np.eye(coordinates) * RIDGE * max(float(np.trace(covariance)) / coordinates, 1e-12)
        whitening = np.linalg.inv(np.linalg.cholesky(covariance)).T
        return cls(size, mean, whitening, seed)

    @property
    def names(self) -> tuple[str, ...]:
        coordinates = self.projection.names if self.projection is not None else tuple(f"dim_{k}" for k in range(self.size))
        return (*coordinates, "norm", "distance")

    def __call__(self, rows: np.ndarray, reference: bool = False) -> np.ndarray:
        """rows x size (already validated) -> rows x len(names), float64.

        ``reference``: ``rows`` are the very rows the summary was fitted on. Their distances to a mean and
        covariance fitted on themselves are short (for 3,000 rows of 64 dimensions the squared distance
        averages 64, a new row's 65.5), and a window of 2,000 healthy rows was flagged in 78 of 80 checks; each
        is then the distance it would have to a fit that left it out (exact, by Sherman-Morrison)."""
        values = np.asarray(rows, dtype=np.float64).reshape(len(rows), self.size)
        watched = self.projection(values) if self.projection is not None else values
        whitened = (watched - self.mean) @ self.whitening
        norm = np.sqrt(np.einsum("ij,ij->i", values, values))
        squared = np.einsum("ij,ij->i", whitened, whitened)
        if reference:
            squared = _left_out(squared, len(values))
        return np.column_stack([watched, norm, np.sqrt(squared)])

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "mean": self.mean.tolist(), "whitening": self.whitening.tolist(), "seed": self.seed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmbeddingSummary:
        try:
            size = int(data["size"])
            mean = np.asarray(data["mean"], dtype=np.float64)
            whitening = np.asarray(data["whitening"], dtype=np.float64)
            coordinates = min(size, MAX_COORDINATES)
            if mean.shape != (coordinates,) or whitening.shape != (coordinates, coordinates):
                raise ValueError("shapes")
            return cls(size, mean, whitening, int(data.get("seed", SEED)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidReferenceError(
                f"embedding summary: expected size, mean and whitening of matching shapes, got keys {sorted(data)}"
            ) from exc


def _left_out(squared: np.ndarray, n: int) -> np.ndarray:
    """Squared Mahalanobis distances of the ``n`` rows a mean and covariance were fitted on, turned into each row's
    distance to the mean and covariance of the other n - 1 rows: with a = d^2 / (n - 1) and c = n / (n - 1), the
    left-out distance is (n - 2) c^2 a / (1 - c a) (the row's share of the scatter matrix removed by Sherman-Morrison)."""
    if n < 4:
        return squared
    a = squared / (n - 1)
    c = n / (n - 1)
    return (n - 2) * c * c * a / np.maximum(1.0 - c * a, 1e-12)
