"""The exact test of a feature's bin shares, for every bin of every tested feature at once.

A discrete feature (or one with a point mass) and every categorical one are judged by how the shares of the
reference's bins moved: the window's count in each bin against the reference's, by Fisher's exact test
(``statistics.share_p_values``), Bonferroni over the feature's bins.
"""

from __future__ import annotations

import numpy as np

from .baseline import Baseline
from .bins import edge_counts
from .calibration import MIN_EFFECT
from .statistics import share_p_values

__all__ = ["NEW_VALUES", "SEVERE_SHARE_CHANGE", "share_tests", "with_new_values"]

SEVERE_SHARE_CHANGE = 0.1  # a bin's share moving by 10 points is an alert, not a warning
NEW_VALUES = "values the reference never had"


def with_new_values(
    base: Baseline, sorted_t: np.ndarray, present: np.ndarray, counts: np.ndarray, features: np.ndarray
) -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
    """Bin counts of the window and the reference of the numeric ``features`` (positions among them), with one
    more bin for a discrete feature: its values the reference never had (a count shifted by a fraction stays in
    its bins, but not on the reference's values). The reference's values seen once move from their bins to it:
    the Good-Turing estimate of a new value."""
    window, reference = [], []
    for k in features.tolist():
        ref = base.bin_counts[k]
        found = counts[k, : len(ref)]
        lattice = base.lattice[k]
        if not len(lattice):
            window.append(found)
            reference.append(ref)
            continue
        values = sorted_t[k, : present[k]]
        new = ~np.isin(values.astype(np.float32), lattice)
        known = edge_counts(values[~new], base.edges[k], ordered=True)
        window.append(np.append(known, new.sum()))
        once = base.lattice_once[k]
        reference.append(np.append(np.maximum(ref - once, 0.0), once.sum()))
    return window, tuple(reference)


def share_tests(
    counts: list[np.ndarray], present: np.ndarray, reference: tuple[np.ndarray, ...], reference_present: np.ndarray, level: float
) -> list[tuple[float | None, tuple[int, float, float] | None]]:
    """The exact test of each feature's bin shares, all bins of all features at once.

    Per feature: the smallest p-value times the number of bins (Bonferroni over its bins), and the
    bin that moved (index, reference share, window share) when that is below ``level`` for a bin whose
    share moved by at least the minimum effect.
    """
    sizes = [len(c) for c in counts]
    if not sizes:
        return []
    window = np.concatenate(counts).astype(float)
    ref = np.concatenate(reference).astype(float)
    n = np.repeat(np.asarray(present, dtype=float), sizes)
    m = np.repeat(np.array([r.sum() for r in reference]), sizes)
    p = share_p_values(window, n, ref, m) * np.repeat(np.asarray(sizes, dtype=float), sizes)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(n > 0, window / n, 0.0) - np.where(m > 0, ref / m, 0.0)
    out: list[tuple[float | None, tuple[int, float, float] | None]] = []
    start = 0
    for k, size in enumerate(sizes):
        part = slice(start, start + size)
        start += size
        if present[k] == 0 or size == 0 or reference_present[k] == 0:
            out.append((None, None))
            continue
        pk, dk = p[part], delta[part]
        smallest = float(min(pk.min(), 1.0))
        hits = np.flatnonzero((pk < level) & (np.abs(dk) >= MIN_EFFECT["share"]))
        if not len(hits):
            out.append((smallest, None))
            continue
        b = int(hits[np.argmin(pk[hits])])
        after = float(window[part][b] / present[k])
        out.append((smallest, (b, after - float(dk[b]), after)))
    return out
