"""The reference profile as numpy arrays, computed once when a monitor starts.

Everything a drift or quality check needs per feature (sorted samples, quantile functions, bin
edges, means and spreads, category codes) is laid out here so that a health computation is a few
vectorised operations over all features at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..reference import FeatureProfile
from .statistics import GRID, quantile_spread, quantiles

__all__ = ["Baseline"]

NUMERIC_METHODS = ("wasserstein", "ks", "psi", "js")
CATEGORICAL_METHODS = ("tv", "psi", "js")


@dataclass(frozen=True, eq=False)
class Baseline:
    """Arrays describing a set of features (a model's inputs, or its outputs)."""

    profiles: tuple[FeatureProfile, ...]
    names: tuple[str, ...]
    numeric: np.ndarray  # bool per feature
    num_idx: np.ndarray
    cat_idx: np.ndarray
    methods: tuple[str, ...]  # primary method per feature
    # numeric features (columns in num_idx order)
    sample: np.ndarray  # sorted samples, NaN padded (max sample x numeric features)
    sample_counts: np.ndarray
    ref_quantiles: np.ndarray  # GRID x numeric features
    mean: np.ndarray
    scale: np.ndarray  # reference std, floored away from zero
    has_spread: np.ndarray  # reference std > 0
    spread: np.ndarray  # robust spread of the reference quantile function
    minimum: np.ndarray
    maximum: np.ndarray
    edges: tuple[np.ndarray, ...]
    bin_props: tuple[np.ndarray, ...]
    bin_matrix: np.ndarray  # numeric features x most bins: bin_props padded with zeros
    # categorical features (in cat_idx order): code of each category; proportions with a last "unseen" slot
    codes: tuple[dict[Any, int], ...]
    cat_props: tuple[np.ndarray, ...]
    # every feature
    present: np.ndarray  # reference rows with a value
    missing_rate: np.ndarray
    top_share: np.ndarray
    singletons: np.ndarray

    @classmethod
    def from_profiles(cls, profiles: Sequence[FeatureProfile], methods: dict[str, str] | None = None) -> Baseline:
        profiles = tuple(profiles)
        methods = methods or {}
        numeric = np.array([p.kind == "numeric" for p in profiles], dtype=bool)
        num = [p for p in profiles if p.kind == "numeric"]
        cat = [p for p in profiles if p.kind == "categorical"]
        longest = max((len(p.sample) for p in num), default=1)
        sample = np.full((max(longest, 1), len(num)), np.nan)
        for j, p in enumerate(num):
            sample[: len(p.sample), j] = p.sample
        sample_counts = np.array([len(p.sample) for p in num], dtype=np.intp)
        std = np.array([p.std or 0.0 for p in num])
        mean = np.array([p.mean if p.mean is not None else np.nan for p in num])
        scale = np.where(std > 0, std, np.maximum(np.abs(np.nan_to_num(mean)) * 1e-6, 1e-12))
        spread = quantile_spread(quantiles(sample, sample_counts, GRID)) if num else np.zeros(0)
        chosen = []
        for p in profiles:
            default = "wasserstein" if p.kind == "numeric" else "tv"
            method = methods.get(p.name, default)
            allowed = NUMERIC_METHODS if p.kind == "numeric" else CATEGORICAL_METHODS
            if method not in allowed:
                from ..errors import ConfigurationError

                raise ConfigurationError(f"methods[{p.name!r}]", method, f"one of {list(allowed)} for a {p.kind} feature")
            chosen.append(method)
        return cls(
            profiles=profiles,
            names=tuple(p.name for p in profiles),
            numeric=numeric,
            num_idx=np.flatnonzero(numeric),
            cat_idx=np.flatnonzero(~numeric),
            methods=tuple(chosen),
            sample=sample,
            sample_counts=sample_counts,
            ref_quantiles=quantiles(sample, sample_counts, GRID),
            mean=mean,
            scale=scale,
            has_spread=(std > 0) & (spread > 0),
            spread=spread,
            minimum=np.array([p.minimum if p.minimum is not None else np.nan for p in num]),
            maximum=np.array([p.maximum if p.maximum is not None else np.nan for p in num]),
            edges=tuple(np.asarray(p.edges, dtype=float) for p in num),
            bin_props=tuple(np.asarray(p.proportions, dtype=float) for p in num),
            bin_matrix=_padded([np.asarray(p.proportions, dtype=float) for p in num]),
            codes=tuple({c: k for k, (c, _) in enumerate(p.categories)} for p in cat),
            cat_props=tuple(np.append(np.array([f for _, f in p.categories], dtype=float), 0.0) for p in cat),
            present=np.array([p.count * (1 - p.missing_rate) for p in profiles]),
            missing_rate=np.array([p.missing_rate for p in profiles]),
            top_share=np.array([p.top_share for p in profiles]),
            singletons=np.array([p.singletons for p in profiles], dtype=float),
        )

    def reference_sizes(self) -> np.ndarray:
        """Reference values each feature's statistics rest on (the sample size for numeric features)."""
        m = self.present.copy()
        for k, j in enumerate(self.num_idx):
            m[j] = min(self.present[j], self.sample_counts[k])
        return m

    @property
    def width(self) -> int:
        return len(self.names)

    @property
    def numeric_methods(self) -> tuple[str, ...]:
        return tuple(self.methods[j] for j in self.num_idx)

    @property
    def categorical_methods(self) -> tuple[str, ...]:
        return tuple(self.methods[j] for j in self.cat_idx)


def _padded(rows: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(rows), max((len(r) for r in rows), default=1)))
    for k, row in enumerate(rows):
        out[k, : len(row)] = row
    return out
