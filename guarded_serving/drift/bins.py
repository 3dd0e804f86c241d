"""Reference bins: how encoded rows fall in the reference's bins of each feature, as counts.

The Prometheus exporter counts every row this way, so that the rows of many replicas can be added up
and compared with the reference's shares of the same bins (fleet-wide PSI and total variation in
PromQL). Counting is a few vectorised passes per feature over rows already encoded for the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..profiles import FeatureProfile
from .baseline import Baseline

__all__ = ["MAX_CATEGORY_BINS", "OTHER", "FeatureBins", "by_feature"]

MAX_CATEGORY_BINS = 20  # the reference's most common categories get a bin each; the rest share OTHER
OTHER = "__other__"


@dataclass(frozen=True, eq=False)
class FeatureBins:
    """How rows of one set of features (a model's inputs, or its outputs) fall in the reference's bins.

    Numeric features use the reference's quantile bins (bin ``k`` holds values from edge ``k-1`` up
    to edge ``k``, ``"0"`` everything below the first edge); categorical features a bin per common
    category (its text) and ``__other__`` for the rest and for unseen ones.
    """

    source: str
    features: tuple[tuple[int, str, tuple[str, ...], np.ndarray], ...]  # (column, name, bin labels, reference shares)
    edges: dict[int, np.ndarray]  # numeric column -> edges
    lookup: dict[int, np.ndarray]  # categorical column -> bin of each code (the last entry: unseen)

    @classmethod
    def of(cls, baseline: Baseline, source: str, skip: Iterable[str] = ()) -> FeatureBins:
        skipped = set(skip)
        features = []
        edges: dict[int, np.ndarray] = {}
        lookup: dict[int, np.ndarray] = {}
        for j, profile in enumerate(baseline.profiles):
            if profile.name in skipped:
                continue
            if profile.kind == "numeric":
                if not profile.proportions:  # no value in the reference: nothing to compare with
                    continue
                edges[j] = np.asarray(profile.edges, dtype=float)
                labels = tuple(str(k) for k in range(len(profile.proportions)))
                features.append((j, profile.name, labels, np.asarray(profile.proportions, dtype=float)))
                continue
            texts = [str(c)[:64] for c, _ in profile.categories[:MAX_CATEGORY_BINS]]
            names = list(dict.fromkeys([*texts, OTHER]))  # categories whose text coincides share a bin
            index = {name: k for k, name in enumerate(names)}
            codes = [index[texts[c]] if c < len(texts) else index[OTHER] for c in range(len(profile.categories))]
            lookup[j] = np.array([*codes, index[OTHER]], dtype=np.intp)  # code -1 (unseen) reads the last entry
            shares = np.bincount(lookup[j][:-1], weights=[f for _, f in profile.categories], minlength=len(names))
            features.append((j, profile.name, tuple(names), shares))
        return cls(source, tuple(features), edges, lookup)

    def shares_of(self, profiles: Iterable[FeatureProfile]) -> dict[str, np.ndarray]:
        """Another profile of the same features (a baseline adopted from served traffic) on these bins:
        its sample of values counted in the numeric bins, its category shares in the categorical ones."""
        by_name = {p.name: p for p in profiles}
        out: dict[str, np.ndarray] = {}
        for j, name, labels, _ in self.features:
            profile = by_name.get(name)
            if profile is None:
                continue
            if j in self.edges:
                values = np.asarray(profile.sample, dtype=float)
                counts = np.bincount(np.searchsorted(self.edges[j], values, side="right"), minlength=len(labels))
                out[name] = counts.astype(float) / max(len(values), 1)
            else:
                shares = [f for _, f in profile.categories]
                out[name] = np.bincount(self.lookup[j][: len(shares)], weights=shares, minlength=len(labels))
        return out

    def count(self, by_feature: np.ndarray) -> list[tuple[str, tuple[str, ...], np.ndarray, int]]:
        """Per feature: its name, bin labels, rows per bin and rows missing, for encoded rows laid out
        one contiguous row per feature (see :func:`by_feature`)."""
        out = []
        for j, name, labels, _ in self.features:
            column = by_feature[j]
            missing = int(np.count_nonzero(np.isnan(column)))
            if j in self.edges:  # values at or above each edge (NaN never is): a few SIMD passes, no sort, no copy
                above = [len(column) - missing, *(int(np.count_nonzero(column >= e)) for e in self.edges[j]), 0]
                counts = -np.diff(np.array(above))
            else:
                present = column[~np.isnan(column)] if missing else column
                counts = np.bincount(self.lookup[j][present.astype(np.intp)], minlength=len(labels))
            out.append((name, labels, counts, missing))
        return out


def by_feature(matrices: list[np.ndarray]) -> np.ndarray:
    """Encoded row blocks (rows x features) stacked into one C-ordered features x rows array, in one copy."""
    out = np.empty((matrices[0].shape[1], sum(m.shape[0] for m in matrices)))
    np.concatenate([m.T for m in matrices], axis=1, out=out)
    return out
