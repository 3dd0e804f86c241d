"""Reference bins: how values fall in the reference's bins of each feature, as counts. The one place that counts.

:func:`edge_counts` counts numbers on a numeric feature's quantile edges, :func:`category_counts` encoded
categories on a categorical feature's categories (and one bin for unseen ones), :func:`bin_counts` either for
one profile. The drift checks, the dashboard's histograms and the Prometheus exporter all count with them.

The exporter counts every row (:class:`FeatureBins`), so that the rows of many replicas can be added up and
compared with the reference's shares of the same bins (fleet-wide PSI and total variation in PromQL): a few
vectorised passes per feature over rows already encoded for the window. It gives the reference's
``MAX_CATEGORY_BINS`` most common categories a bin each, a bound on the label values a time series may take;
the dashboard draws fewer bars (:data:`guarded_serving.histograms.MAX_CATEGORIES`), what fits a small chart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..profiles import FeatureProfile
from .baseline import Baseline
from .window import UNSEEN

__all__ = ["MAX_CATEGORY_BINS", "OTHER", "FeatureBins", "bin_counts", "by_feature", "category_counts", "edge_counts"]

MAX_CATEGORY_BINS = 20  # the reference's most common categories get a bin each; the rest share OTHER
OTHER = "__other__"


def edge_counts(values: np.ndarray, edges: np.ndarray, *, ordered: bool = False) -> np.ndarray:
    """Numbers per reference bin: bin ``k`` holds ``edges[k-1] <= v < edges[k]``, the first and last are
    open-ended; a missing value (NaN) is not counted.

    ``ordered``: ``values`` are sorted present values (as the drift checks hold them), found by a binary
    search per edge. Otherwise the values at or above each edge are counted: a few SIMD passes, no sort, no copy.
    """
    if ordered:
        positions = np.searchsorted(values, edges, side="left")
        return np.diff(np.concatenate([[0], positions, [len(values)]]))
    present = len(values) - int(np.count_nonzero(np.isnan(values)))
    above = [present, *(int(np.count_nonzero(values >= e)) for e in edges), 0]
    return -np.diff(np.array(above))


def category_counts(codes: np.ndarray, categories: int) -> np.ndarray:
    """Encoded categories (a category's index in its profile, ``UNSEEN`` for one the reference never had,
    NaN missing) per reference category, then one count for unseen ones; a missing value is not counted."""
    present = codes[~np.isnan(codes)]
    index = np.where(present == UNSEEN, categories, present).astype(np.intp)
    return np.bincount(index[(index >= 0) & (index <= categories)], minlength=categories + 1)


def bin_counts(profile: FeatureProfile, column: np.ndarray) -> np.ndarray:
    """A window column (as the window encodes it) on the reference's own bins: the ``len(edges) + 1`` quantile
    bins of a numeric profile, or one bin per category of a categorical one (in ``profile.categories`` order)
    and a last one for unseen categories. Missing values are not counted."""
    values = np.asarray(column, dtype=np.float64)
    if profile.kind == "numeric":
        return edge_counts(values, np.asarray(profile.edges, dtype=np.float64))
    return category_counts(values, len(profile.categories))


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
    def of(cls, baseline: Baseline, source: str, skip: Iterable[str] = (), indexed: bool = False) -> FeatureBins:
        """The bins of ``baseline``'s features but ``skip``'s; ``indexed``: a categorical feature's bins are
        named by their rank (``"c0"`` the most common category...) instead of the category's text."""
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
            labels = tuple(f"c{k}" if indexed and name != OTHER else name for k, name in enumerate(names))
            features.append((j, profile.name, labels, shares))
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
                out[name] = edge_counts(values, self.edges[j]).astype(float) / max(len(values), 1)
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
            if j in self.edges:
                counts = edge_counts(column, self.edges[j])
            else:  # each reference category's count (unseen last) into its bin: a common one's own, or OTHER
                lookup = self.lookup[j]
                found = category_counts(column, len(lookup) - 1)
                counts = np.bincount(lookup, weights=found, minlength=len(labels)).astype(np.int64)
            out.append((name, labels, counts, missing))
        return out


def by_feature(matrices: list[np.ndarray]) -> np.ndarray:
    """Encoded row blocks (rows x features) stacked into one C-ordered features x rows array, in one copy."""
    out = np.empty((matrices[0].shape[1], sum(m.shape[0] for m in matrices)))
    np.concatenate([m.T for m in matrices], axis=1, out=out)
    return out
