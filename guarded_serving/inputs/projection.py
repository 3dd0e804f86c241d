"""A fixed, seeded random projection of a flattened tensor to a few coordinates.

Per-row summaries (mean, spread, edges) see what changes a whole image at once; a change in *where* the
values are (a rotated or flipped image, a shifted crop, a channel swapped) can keep them all. A random
projection keeps a little of every pixel's position: each coordinate is a fixed random linear combination of
all values, so a rearrangement of the pixels moves the coordinates' distributions (their spread, their
correlations) while each pixel's own distribution may stay. The coordinates are watched like numeric
features, and their relations by the joint drift check.

The matrix is drawn from ``seed`` and the row's size when needed, never stored: a reference saves the seed.
No centring is needed: every check the coordinates go through ignores a constant offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DIMENSIONS", "SEED", "RandomProjection"]

DIMENSIONS = 8
SEED = 20261201


@dataclass(frozen=True, slots=True)
class RandomProjection:
    """``size`` values per row (a flattened tensor) to ``dimensions`` coordinates, through a Gaussian matrix
    drawn from ``seed`` and scaled by 1/sqrt(size) (so coordinates keep the values' order of magnitude)."""

    size: int
    dimensions: int = DIMENSIONS
    seed: int = SEED
    matrix: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng((self.seed, self.size))
        matrix = rng.standard_normal((self.size, self.dimensions)) / math.sqrt(self.size)
        object.__setattr__(self, "matrix", matrix)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"projection_{k + 1}" for k in range(self.dimensions))

    def __call__(self, flat: np.ndarray) -> np.ndarray:
        """rows x size (float) -> rows x dimensions."""
        return np.asarray(flat @ self.matrix, dtype=np.float64)
