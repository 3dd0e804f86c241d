"""A correlated tabular world for the joint drift tests and bench/joint_null.py: a Gaussian copula.

Latent standard normals share a few factors (so features are correlated in groups) and are turned into normal,
lognormal, count, uniform and categorical columns, every fifth with 1-5 % missing values. A classifier's
probabilities depend on two complete normal features; a reference holds 5,000 rows with those probabilities and
labels drawn from them. Breaking the latent variables (a flipped loading, a shifted block of rows) changes
relations while every column keeps its distribution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr
from scipy.stats import binom

from guarded_serving import Reference

__all__ = ["World", "build_world", "grouped", "reference_of"]

REFERENCE_ROWS = 5_000
SHAPES = ("normal", "lognormal", "count", "normal", "categorical", "uniform", "normal", "count")
LEVELS = ("north", "south", "east", "west", "centre")
LEVEL_SHARES = (0.4, 0.25, 0.15, 0.12, 0.08)


@dataclass(frozen=True, eq=False)
class World:
    """Latent z = loadings @ factors + noise (each z standard normal), then a marginal per feature."""

    names: tuple[str, ...]
    shapes: tuple[str, ...]
    loadings: np.ndarray  # features x factors; each row's squared norm below 1
    missing: tuple[float, ...]
    model_inputs: tuple[int, int]

    @property
    def categorical(self) -> list[str]:
        return [n for n, s in zip(self.names, self.shapes, strict=True) if s == "categorical"]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def latent(self, rows: int, rng: np.random.Generator) -> np.ndarray:
        factors = rng.normal(size=(rows, self.loadings.shape[1]))
        own = np.sqrt(1 - (self.loadings**2).sum(axis=1))
        return np.asarray(factors @ self.loadings.T + rng.normal(size=(rows, len(self.names))) * own)

    def observe(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What clients send: an object array of floats (NaN when missing), counts, category names (None)."""
        table = np.empty(z.shape, dtype=object)
        u = ndtr(z)
        for j, shape in enumerate(self.shapes):
            if shape == "normal":
                column: Any = 50 + 12 * z[:, j]
            elif shape == "lognormal":
                column = np.exp(1.0 + 0.8 * z[:, j])
            elif shape == "count":
                column = binom.ppf(u[:, j], 20, 0.3).astype(int)
            elif shape == "uniform":
                column = -5 + 10 * u[:, j]
            else:
                cuts = np.cumsum(LEVEL_SHARES)[:-1]
                column = np.array(LEVELS, dtype=object)[np.searchsorted(cuts, u[:, j])]
            table[:, j] = column
            gone = rng.random(len(z)) < self.missing[j]
            table[gone, j] = None if shape == "categorical" else float("nan")
        return table

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        a, b = self.model_inputs
        p = 1 / (1 + np.exp(-(1.5 * z[:, a] - 1.0 * z[:, b] + 0.3)))
        return np.column_stack([1 - p, p])


def build_world(n_features: int, groups: list[tuple[list[int], float]], seed: int, avoid: tuple[int, ...] = ()) -> World:
    """``groups``: (features, loading) sharing a factor; features in no group are independent. Shapes cycle
    through SHAPES; every fifth feature has 1-5 % missing values; the model reads two complete normal
    features outside ``avoid``."""
    loadings = np.zeros((n_features, max(len(groups), 1)))
    for k, (members, loading) in enumerate(groups):
        loadings[members, k] = loading
    rng = np.random.default_rng(seed)
    shapes = tuple(SHAPES[(j + seed) % len(SHAPES)] for j in range(n_features))
    names = tuple(f"x{j:02d}_{s}" for j, s in enumerate(shapes))
    missing = tuple(float(rng.choice([0.01, 0.03, 0.05])) if j % 5 == 2 else 0.0 for j in range(n_features))
    inputs = [j for j, s in enumerate(shapes) if s == "normal" and missing[j] == 0 and j not in avoid]
    return World(names, shapes, loadings, missing, (inputs[0], inputs[1]))


@functools.cache
def grouped(n_features: int, seed: int) -> World:
    """Groups of 3 to 6 features sharing a factor (loadings 0.5-0.8), a quarter of the features on their own."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_features)
    groups, start = [], 0
    while start < 0.75 * n_features - 2:
        size = int(rng.integers(3, 7))
        groups.append(([int(j) for j in order[start : start + size]], float(rng.uniform(0.5, 0.8))))
        start += size
    return build_world(n_features, groups, seed)


@functools.cache
def reference_of(world: World, seed: int) -> Reference:
    rng = np.random.default_rng(seed)
    z = world.latent(REFERENCE_ROWS, rng)
    X = world.observe(z, rng)
    P = world.probabilities(z)
    y = (rng.random(REFERENCE_ROWS) < P[:, 1]).astype(int)
    return Reference.from_data(X, y=y, predictions=P, feature_names=list(world.names), categorical=world.categorical)
