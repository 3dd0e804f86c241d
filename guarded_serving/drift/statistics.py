"""Drift statistics: pure functions of (reference summary, window), vectorised over features.

Numeric features arrive as a sorted window matrix (rows x features, missing values as NaN sorted to
the end of each column) with the count of present values per column; categorical features as
per-feature category proportions. Nothing here keeps state.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom

from .hypergeometric import two_sided

try:  # the ufunc scipy.stats.binom.sf calls (Boost's tail), ~10x cheaper without the distribution machinery around it
    from scipy.special._ufuncs import _binom_sf  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a scipy that moved it: the public, slower way gives the same values
    _binom_sf = None

__all__ = [
    "GRID",
    "binomial_sf",
    "common_share_bound",
    "jensen_shannon",
    "jensen_shannon_rows",
    "ks_statistic",
    "location_shift",
    "log_spread_ratio",
    "proportions_in_bins",
    "psi",
    "psi_floor",
    "psi_rows",
    "quantile_spread",
    "quantiles",
    "quantiles_by_feature",
    "share_p_values",
    "spread_score",
    "total_variation",
    "wasserstein",
]

# Probability levels at which quantile functions are compared: the central 96 %, so that a few
# extreme values (heavy tails, a single outlier) do not swing location, spread or distance; values
# beyond the reference range are the data-quality check's business.
GRID = np.linspace(0.02, 0.98, 97)
_EPS = 1e-4  # floor for empty bins in PSI and Jensen-Shannon (a bin seen in one sample only)


def quantiles(sorted_values: np.ndarray, counts: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Quantiles (grid x features) of each column's present values, by linear interpolation.

    ``sorted_values`` is rows x features with each column sorted and NaN-padded at the end; columns
    with no present value give NaN.
    """
    counts = np.asarray(counts)
    pos = grid[:, None] * np.maximum(counts - 1, 0)[None, :]
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(counts - 1, 0)[None, :])
    frac = pos - lo
    low = np.take_along_axis(sorted_values, lo, axis=0)
    high = np.take_along_axis(sorted_values, hi, axis=0)
    out: np.ndarray = low + (high - low) * frac
    out[:, counts == 0] = np.nan
    return out


def quantiles_by_feature(sorted_t: np.ndarray, counts: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """:func:`quantiles` of a window laid out one sorted row per feature (features x rows, NaN last), the same
    numbers: one gather from the flat array for all features (``take_along_axis`` on the transposed view cost
    ~0.1 ms for 64 features, most of it building its index arrays)."""
    counts = np.asarray(counts)
    top = np.maximum(counts - 1, 0)
    pos = grid[:, None] * top[None, :]
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, top[None, :])
    frac = pos - lo
    offset = np.arange(sorted_t.shape[0]) * sorted_t.shape[1]
    flat = sorted_t.reshape(-1)
    low = flat[lo + offset]
    high = flat[hi + offset]
    out: np.ndarray = low + (high - low) * frac
    if not counts.all():
        out[:, counts == 0] = np.nan
    return out


def binomial_sf(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``scipy.stats.binom.sf(k, n, p)``, the same values (1 below the support, 0 past it, NaN for a bad ``n`` or
    ``p``) for a fraction of its cost: the distribution object's argument handling cost ~50 us per call."""
    k, n, p = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (k, n, p)))
    if _binom_sf is None:  # pragma: no cover
        return np.asarray(binom.sf(k, n, p), dtype=float)
    valid = (n >= 0) & (n == np.floor(n)) & (p >= 0) & (p <= 1) & ~np.isnan(k)
    inside = valid & (k >= 0) & (k < n)
    out = np.where(valid, np.where(k < 0, 1.0, 0.0), np.nan)
    if inside.any():
        out[inside] = np.clip(_binom_sf(np.floor(k[inside]), n[inside], p[inside]), 0, 1)
    return out


def common_share_bound(share: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """An upper bound of a value's share estimated on ``reference`` values: the estimate plus three standard errors
    and 1/m (a reference that never saw a second value does not rule one out), at most 1."""
    m = np.maximum(reference, 1)
    return np.asarray(np.clip(share + 3 * np.sqrt(share * (1 - share) / m) + 1 / m, 0, 1))


def wasserstein(window_quantiles: np.ndarray, reference_quantiles: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Wasserstein-1 distance between the two (trimmed) quantile functions, in reference standard deviations."""
    return np.asarray(np.mean(np.abs(window_quantiles - reference_quantiles), axis=0) / scale)


def location_shift(window_quantiles: np.ndarray, reference_quantiles: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Difference of the trimmed means (the quantile functions' averages), in reference standard deviations."""
    return np.asarray((window_quantiles.mean(axis=0) - reference_quantiles.mean(axis=0)) / scale)


def quantile_spread(quantile_function: np.ndarray) -> np.ndarray:
    """Standard deviation of a trimmed quantile function: a robust spread (the outer 2 % do not count).

    As efficient as the plain standard deviation on well-behaved data (more than the mean absolute
    deviation: a variance change of x1.5 is told from noise more often in a window of 500), while the
    trimming keeps heavy tails and single outliers from swinging it.
    """
    spread: np.ndarray = np.sqrt(((quantile_function - quantile_function.mean(axis=0)) ** 2).mean(axis=0))
    return spread


def log_spread_ratio(window_spread: np.ndarray, reference_spread: np.ndarray) -> np.ndarray:
    """log(window spread / reference spread); -inf for a window that went constant."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.log(window_spread / reference_spread))


def spread_score(log_ratio: np.ndarray) -> np.ndarray:
    """What the spread test judges: the cube root of the variance ratio, ``exp(2/3 log ratio)``.

    The log of a variance ratio is skewed (an F distribution's log), so a symmetric limit on it calls a
    fall of spread rarer, and a rise commoner, than it is; its cube root is close to normal far into
    both tails (Wilson-Hilferty, Paulson). NaN where the log ratio is not finite.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(np.isfinite(log_ratio), np.exp(2 / 3 * np.asarray(log_ratio)), np.nan)


def ks_statistic(
    sorted_values: np.ndarray, counts: np.ndarray, reference: np.ndarray, reference_counts: np.ndarray
) -> np.ndarray:
    """Exact two-sample Kolmogorov-Smirnov statistic per column (the largest gap between the ECDFs)."""
    out = np.full(sorted_values.shape[1], np.nan)
    for j in range(sorted_values.shape[1]):
        n, m = int(counts[j]), int(reference_counts[j])
        if n == 0 or m == 0:
            continue
        x = sorted_values[:n, j]
        r = reference[:m, j]
        points = np.concatenate([x, r])
        gap = np.searchsorted(x, points, side="right") / n - np.searchsorted(r, points, side="right") / m
        out[j] = np.max(np.abs(gap))
    return out


def proportions_in_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the present values of one column falling in each bin (``len(edges) + 1`` bins)."""
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return np.asarray(counts / max(len(present), 1))


def psi(window: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index between two vectors of proportions."""
    w = np.maximum(window, _EPS)
    r = np.maximum(reference, _EPS)
    return float(np.sum((w - r) * np.log(w / r)))


def jensen_shannon(window: np.ndarray, reference: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two vectors of proportions."""
    w = window / max(window.sum(), _EPS)
    r = reference / max(reference.sum(), _EPS)
    mid = (w + r) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(w > 0, w * np.log2(w / mid), 0.0)
        right = np.where(r > 0, r * np.log2(r / mid), 0.0)
    return max(0.0, float((left.sum() + right.sum()) / 2))  # rounding can leave -1e-17 for equal vectors


def total_variation(window: np.ndarray, reference: np.ndarray) -> float:
    """Total variation distance: half the L1 distance between two vectors of proportions."""
    return float(np.abs(window - reference).sum() / 2)


def psi_rows(window: np.ndarray, reference: np.ndarray, floored: np.ndarray | None = None) -> np.ndarray:
    """PSI for each row of two (features x bins) proportion matrices; bins empty on both sides add 0.
    ``floored``: :func:`psi_floor` of ``reference``, when the caller keeps it."""
    w = np.maximum(window, _EPS)
    r = psi_floor(reference) if floored is None else floored
    return np.asarray(np.add.reduce((w - r) * np.log(w / r), axis=1))


def psi_floor(proportions: np.ndarray) -> np.ndarray:
    """Proportions as PSI reads them: an empty bin counts as a tiny share, not zero."""
    return np.asarray(np.maximum(proportions, _EPS))


def jensen_shannon_rows(window: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (base 2) for each row of two (features x bins) proportion matrices."""
    mid = (window + reference) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(window > 0, window * np.log2(window / mid), 0.0)
        right = np.where(reference > 0, reference * np.log2(reference / mid), 0.0)
    return np.asarray(np.maximum(0.0, (left.sum(axis=1) + right.sum(axis=1)) / 2))  # never -1e-17 from rounding


def share_p_values(window: np.ndarray, n: np.ndarray, reference: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Two-sided p-value that a bin holds the same share of both samples, per bin (Fisher's exact test).

    ``window`` and ``reference`` are the counts in each bin, ``n`` and ``m`` the values each sample holds
    (arrays of the same shape). Conditional on the bin's total, the window's count is hypergeometric
    whatever the common share: exact for point masses, rare values and small references alike, and the
    reference's own sampling noise is counted by construction. Two-sided by doubling the smaller tail
    (``hypergeometric.two_sided``: scipy's ``hypergeom`` tails to 1e-12, a fortieth of the time).
    """
    window, n, reference, m = (np.asarray(a, dtype=float) for a in (window, n, reference, m))
    total = (window + reference).round()
    size = (n + m).round()
    out = two_sided(window, size, total, n)
    return np.where((n > 0) & (m > 0), out, 1.0)
