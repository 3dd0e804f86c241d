"""The reference profile as numpy arrays, computed once when a monitor starts.

Everything a drift or quality check needs per feature (sorted samples, quantile functions, bin
edges, means and spreads, category codes) is laid out here so that a health computation is a few
vectorised operations over all features at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..profiles import BINS, FeatureProfile
from .scores import NormalScores
from .statistics import GRID, quantile_spread, quantiles

__all__ = ["Baseline", "method_of"]


def method_of(profile: FeatureProfile, methods: Mapping[str, str]) -> str:
    """The drift method ``methods`` chooses for a feature (else its kind's default); ConfigurationError
    when it is not one for its kind."""
    method = methods.get(profile.name, "wasserstein" if profile.kind == "numeric" else "tv")
    allowed = NUMERIC_METHODS if profile.kind == "numeric" else CATEGORICAL_METHODS
    if method not in allowed:
        raise ConfigurationError(f"methods[{profile.name!r}]", method, f"one of {list(allowed)} for a {profile.kind} feature")
    return method


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
    ordered: np.ndarray  # quantile statistics are tested: more than BINS distinct values in the central 96 %
    shares_tested: np.ndarray  # the bins' shares are tested: discrete, or with a point mass (a value holding >= 5 %)
    spread: np.ndarray  # robust spread of the reference quantile function
    scores: NormalScores  # each feature's values through its reference CDF and Phi^-1: what location and spread are judged on
    minimum: np.ndarray
    maximum: np.ndarray
    edges: tuple[np.ndarray, ...]
    bin_props: tuple[np.ndarray, ...]
    bin_matrix: np.ndarray  # numeric features x most bins: bin_props padded with zeros
    bin_counts: tuple[np.ndarray, ...]  # reference values per bin (the exact shares test compares counts)
    bin_labels: tuple[tuple[str, ...], ...]  # "value 0", "[1.5, 3)", ... for summaries
    # discrete features (not ordered): the reference's values (float32, as the sample keeps them), and per bin the
    # reference values seen only once, which stand for values never seen (Good-Turing); empty for the others
    lattice: tuple[np.ndarray, ...]
    lattice_once: tuple[np.ndarray, ...]
    # categorical features (in cat_idx order): code of each category; its bin (categories seen once share the
    # last bin with unseen ones: the reference's singletons estimate how often a fresh value is new, Good-Turing)
    codes: tuple[dict[Any, int], ...]
    folds: tuple[np.ndarray, ...]  # code -> bin; the last bin is "rare or unseen"
    cat_props: tuple[np.ndarray, ...]  # proportions per bin
    cat_counts: tuple[np.ndarray, ...]  # reference values per bin
    cat_labels: tuple[tuple[str, ...], ...]
    # every feature
    present: np.ndarray  # reference rows with a value
    missing_rate: np.ndarray
    top_share: np.ndarray
    singletons: np.ndarray

    @classmethod
    def from_profiles(cls, profiles: Sequence[FeatureProfile], methods: Mapping[str, str] | None = None) -> Baseline:
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
        ref_quantiles = quantiles(sample, sample_counts, GRID)
        spread = quantile_spread(ref_quantiles) if num else np.zeros(0)
        central = [
            len(np.unique(col[(col >= lo) & (col <= hi)]))
            for col, lo, hi in zip(sample.T, ref_quantiles[0], ref_quantiles[-1], strict=True)
        ]
        binned = [_categorical_bins(p) for p in cat]
        lattices, once = [], []
        for k, p in enumerate(num):
            values, seen = np.unique(np.asarray(p.sample, dtype=np.float32), return_counts=True)
            discrete = central[k] <= BINS
            lattices.append(values if discrete else np.zeros(0, dtype=np.float32))
            singles = np.bincount(  # binned as the sample is kept: in float32 (see _bin_labels)
                np.searchsorted(np.asarray(p.edges, dtype=np.float32), values[seen == 1], side="right"),
                minlength=len(p.proportions),
            ).astype(float)
            rows_per_value = p.count * (1 - p.missing_rate) / max(len(p.sample), 1)  # reference rows a sample value is
            once.append(singles * rows_per_value if discrete else np.zeros(len(p.proportions)))
        chosen = [method_of(p, methods) for p in profiles]
        return cls(
            profiles=profiles,
            names=tuple(p.name for p in profiles),
            numeric=numeric,
            num_idx=np.flatnonzero(numeric),
            cat_idx=np.flatnonzero(~numeric),
            methods=tuple(chosen),
            sample=sample,
            sample_counts=sample_counts,
            ref_quantiles=ref_quantiles,
            mean=mean,
            scale=scale,
            has_spread=(std > 0) & (spread > 0),
            ordered=np.array(central, dtype=int) > BINS,
            shares_tested=(np.array(central, dtype=int) <= BINS) | (np.array([p.top_share for p in num]) >= 1 / (2 * BINS)),
            spread=spread,
            scores=NormalScores.of(sample, sample_counts, ref_quantiles),
            minimum=np.array([p.minimum if p.minimum is not None else np.nan for p in num]),
            maximum=np.array([p.maximum if p.maximum is not None else np.nan for p in num]),
            edges=tuple(np.asarray(p.edges, dtype=float) for p in num),
            bin_props=tuple(np.asarray(p.proportions, dtype=float) for p in num),
            bin_matrix=_padded([np.asarray(p.proportions, dtype=float) for p in num]),
            bin_counts=tuple(_counts(p.proportions, p.count * (1 - p.missing_rate)) for p in num),
            bin_labels=tuple(_bin_labels(p, sample[: len(p.sample), j]) for j, p in enumerate(num)),
            lattice=tuple(lattices),
            lattice_once=tuple(once),
            codes=tuple({c: k for k, (c, _) in enumerate(p.categories)} for p in cat),
            folds=tuple(b[0] for b in binned),
            cat_props=tuple(b[1] / max(b[1].sum(), 1.0) for b in binned),
            cat_counts=tuple(b[1] for b in binned),
            cat_labels=tuple(b[2] for b in binned),
            present=np.array([p.count * (1 - p.missing_rate) for p in profiles]),
            missing_rate=np.array([p.missing_rate for p in profiles]),
            top_share=np.array([p.top_share for p in profiles]),
            singletons=np.array([p.singletons for p in profiles], dtype=float),
        )

    def reference_sizes(self) -> np.ndarray:
        """Reference values each feature's statistics rest on (the sample size for numeric features)."""
        m = self.present.copy()
        m[self.num_idx] = np.minimum(self.present[self.num_idx], self.sample_counts)
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


def _counts(proportions: Sequence[float], present: float) -> np.ndarray:
    """Reference values per bin, from the stored shares and the count of present values (exact integers)."""
    return np.round(np.asarray(proportions, dtype=float) * round(present))


def _categorical_bins(profile: FeatureProfile) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Fold a categorical profile: each category seen more than once is a bin; categories seen once and
    unseen ones share the last bin.

    The bins' reference counts are what fresh values are expected to hold, not what the reference's own values
    did: the bins were chosen by those very counts, so a category seen once or twice is on average rarer than
    it looked. By Good-Turing (``N_r`` categories seen ``r`` times in ``m`` values), fresh values are of a
    category never seen ``N_1 / m`` of the time and of one seen once ``2 N_2 / m``: the last bin holds
    ``N_1 + 2 N_2``, and the categories seen more often give up those ``2 N_2`` alike, an absolute discount
    (each category's count less ``2 N_2 / (categories kept)``, at most two). Counting the last bin as ``N_1``
    alone (the reference's own share) flagged every healthy window of a long-tailed feature (2,000 Zipf
    categories, 10,000 reference rows: "rare or unseen values 5.1% -> 11.2%"; tests/drift/test_rare_categories.py).
    """
    counts = _counts([f for _, f in profile.categories], profile.count * (1 - profile.missing_rate))
    kept = np.flatnonzero(counts > 1)
    fold = np.full(len(counts), len(kept), dtype=np.intp)
    fold[kept] = np.arange(len(kept))
    twice = float((counts == 2).sum())
    discount = 2 * twice / len(kept) if len(kept) else 0.0
    binned = np.append(np.round(counts[kept] - discount), counts[counts <= 1].sum() + 2 * twice)
    labels = (*(repr(profile.categories[k][0])[:40] for k in kept), "rare or unseen values")
    return fold, binned, labels


def _bin_labels(profile: FeatureProfile, sample: np.ndarray) -> tuple[str, ...]:
    """A name per numeric bin: "value v" when the reference's values in it are all one value, else its range.

    The sample is kept in float32 and the edges in float64: an edge at a value float32 cannot hold (1.4) lies above
    that value's float32 rounding (1.39999998), which a float64 comparison would put in the bin below, named after
    a value it does not hold. The sample is binned against the edges rounded to float32 as well."""
    edges = list(profile.edges)
    bounds = [-np.inf, *edges, np.inf]
    rounded = np.asarray(bounds, dtype=np.float32)
    labels = []
    for (lo, hi), (lo32, hi32) in zip(itertools.pairwise(bounds), itertools.pairwise(rounded), strict=True):
        inside = sample[(sample >= lo32) & (sample < hi32)]
        if len(inside) and inside[0] == inside[-1]:
            labels.append(f"value {inside[0]:.4g}")
        elif lo == -np.inf:
            labels.append(f"values below {hi:.4g}")
        elif hi == np.inf:
            labels.append(f"values from {lo:.4g}")
        else:
            labels.append(f"values in [{lo:.4g}, {hi:.4g})")
    return tuple(labels)


def _padded(rows: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(rows), max((len(r) for r in rows), default=1)))
    for k, row in enumerate(rows):
        out[k, : len(row)] = row
    return out
