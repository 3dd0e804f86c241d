"""Thresholds calibrated for a window size, so that healthy traffic rarely raises an alarm.

The rule (explained in the README):

1. **Null distributions by resampling, two samples at a time.** For the configured window size ``n``,
   draw ``B`` pairs of a window of ``n`` values and a fresh reference of ``m`` values (the reference's own
   size), both from the reference, and compute every statistic between them: their centre and spread
   include small-sample biases, the shape of each feature (heavy tails, ties) and the reference's own
   sampling noise, for what it is. Only the order statistics the quantiles need are drawn, so a draw
   costs the same whatever ``n`` and ``m`` are.
2. **A family-wise error budget.** Each check gets a share ``alpha`` of the model-wide budget of
   false alarms per health check (data drift 0.4 %, prediction drift 0.15 %, data quality 0.25 %,
   concept drift's bound 0.1 %, joint drift and the performance estimate 0.05 % each: 1 % in all),
   split evenly over its tests (Bonferroni), so the rate holds however many features the model has.
3. **Tail model.** The per-test level alpha/K is far beyond what B draws can resolve, so the null is
   summarised by its moments: location and spread statistics (trimmed mean shift, cube root of the
   ratio of robust variances) are near normal (the location's limit on the side of a skewed null moved out
   by its skewness, Cornish-Fisher: see ``location_limits``), and are drawn twice: on the values and on their normal
   scores (``drift.scores``: both the drawn window and the drawn reference through the real reference's
   CDF and Phi^-1). On the values alone, the moments of a heavy-tailed feature's null rest on the
   reference's few top values and vary from reference to reference (their mixture's tails are far from
   normal: healthy log-normal windows were flagged 8-17 times too often); the scores' are functions of
   ranks, the same for every reference of a continuous feature. A location or spread test fires when
   both are significant (the scores' alone over-alarm against a reference of 200 rows, where the
   values' hold). The Wasserstein distance is judged on the scores (its null rests on the same top
   values), its minimum effect on the values. Distances (Wasserstein, KS, PSI, JS, TV) are positive
   and right-skewed and are fitted as log-normal (by the median and interquartile range of their logs),
   whose tail is heavier than theirs (a conservative threshold). The shares of the reference's bins
   need no model: their test is exact (see ``statistics.share_p_values``).
4. **A minimum effect.** A test only fires when the effect also exceeds a size that matters
   (Wasserstein 0.1 std, mean shift 0.1 std, spread change 10 %, PSI 0.1, KS 0.1, TV 0.05, a bin's share
   2 points), so very large windows do not flag differences too small to act on.

Windows holding fewer values than the calibrated size (after a restart) get thresholds scaled by the
ratio of the statistics' spreads, ``sqrt(1/n + 1/m)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from .baseline import Baseline
from .scores import LEVELS
from .statistics import (
    GRID,
    jensen_shannon,
    ks_statistic,
    location_shift,
    log_spread_ratio,
    proportions_in_bins,
    psi,
    quantile_spread,
    quantiles,
    spread_score,
    total_variation,
    wasserstein,
)

__all__ = ["MIN_EFFECT", "Calibration"]

DRAWS = 1000


MIN_EFFECT = {
    "wasserstein": 0.1,
    "ks": 0.1,
    "psi": 0.1,
    "js": 0.02,
    "tv": 0.05,
    "mean": 0.1,
    "scale": float(np.log(1.1)),
    "share": 0.02,
}
# How a distance's null level shrinks with the window: like n^-1/2 (power 1) or, for PSI and JS, n^-1 (power 2).
_RATE_POWER = {"wasserstein": 1.0, "ks": 1.0, "tv": 1.0, "psi": 2.0, "js": 2.0}
_FLOOR = 1e-9


def numeric_distance(method: str, sorted_values: np.ndarray, counts: np.ndarray, base: Baseline) -> np.ndarray:
    """The primary distance of every numeric feature (all computed with the same method per column)."""
    if method == "wasserstein":
        return wasserstein(quantiles(sorted_values, counts, GRID), base.ref_quantiles, base.scale)
    if method == "ks":
        return ks_statistic(sorted_values, counts, base.sample, base.sample_counts)
    out = np.full(sorted_values.shape[1], np.nan)
    stat = psi if method == "psi" else jensen_shannon
    for j in range(sorted_values.shape[1]):
        if counts[j]:
            out[j] = stat(proportions_in_bins(sorted_values[: counts[j], j], base.edges[j]), base.bin_props[j])
    return out


def categorical_distance(method: str, props: np.ndarray, reference: np.ndarray) -> float:
    if method == "tv":
        return total_variation(props, reference)
    if method == "psi":
        return psi(props, reference)
    return jensen_shannon(props, reference)


@dataclass(frozen=True, eq=False)
class Calibration:
    """Null summaries per feature for one window size and error budget."""

    window: int
    alpha: float
    tests: int
    z_one_sided: float
    z_two_sided: float
    n_cal: np.ndarray  # per feature: window values of each calibration draw
    m_cal: np.ndarray  # per feature: reference values of each calibration draw
    log_mu: np.ndarray  # per feature: log-normal fit of the primary distance
    log_sd: np.ndarray
    mean_mu: np.ndarray  # per numeric feature (indexed like all features; NaN for categorical ones)
    mean_sd: np.ndarray
    mean_skew: np.ndarray  # the skewness of the drawn shifts (see location_limits)
    scale_mu: np.ndarray
    scale_sd: np.ndarray
    kurtosis: np.ndarray  # per feature (NaN for categorical ones): how the log of a spread is biased with few values
    # the same for the location and spread statistics of the normal scores (drift.scores)
    score_mean_mu: np.ndarray
    score_mean_sd: np.ndarray
    score_mean_skew: np.ndarray
    score_scale_mu: np.ndarray
    score_scale_sd: np.ndarray
    score_kurtosis: np.ndarray
    # What the checks judge windows by, per count of present values (drift.limits.Limits.of keeps a few here)
    kept_limits: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, base: Baseline, window: int, alpha: float, draws: int = DRAWS, seed: int = 20261129) -> Calibration:
        rng = np.random.default_rng(seed)
        width = base.width
        expected = window * (1 - base.missing_rate)  # present values a full window holds per feature
        n_cal = np.maximum(np.round(expected), 2).astype(int)
        m_cal = np.maximum(base.reference_sizes(), 2).astype(int)  # each draw pairs a window with a fresh reference
        log_mu, log_sd, mean_mu, mean_sd, mean_skew = (np.full(width, np.nan) for _ in range(5))
        z_mean_skew, scale_mu, scale_sd, kurt = (np.full(width, np.nan) for _ in range(4))
        z_mean_mu, z_mean_sd, z_scale_mu, z_scale_sd, z_kurt = (np.full(width, np.nan) for _ in range(5))
        if len(base.num_idx):
            idx = base.num_idx
            dist = np.empty((draws, len(idx)))
            shift = np.empty((draws, len(idx)))
            ratio = np.empty((draws, len(idx)))
            z_shift = np.empty((draws, len(idx)))
            z_ratio = np.empty((draws, len(idx)))
            methods = base.numeric_methods
            by_feature = np.ascontiguousarray(base.sample.T)  # each feature's values contiguous: a fast gather
            wass = np.array([m == "wasserstein" for m in methods])
            per_batch = batch_draws(len(idx))
            columns = np.tile(np.arange(len(idx)), per_batch)  # the feature of each column of a batch's quantiles
            for start in range(0, draws, per_batch):
                batch = min(per_batch, draws - start)
                q = _grid_quantiles(rng, by_feature, base.sample_counts, n_cal[idx], batch)
                q_ref = _grid_quantiles(rng, by_feature, base.sample_counts, m_cal[idx], batch)
                part = slice(start, start + batch)
                # location and spread on the normal scores, both samples through the real reference's map
                z, z_ref = base.scores(q[LEVELS], columns[: q.shape[1]]), base.scores(q_ref[LEVELS], columns[: q.shape[1]])
                has_spread = np.tile(base.has_spread, batch)
                z_shift[part] = location_shift(z, z_ref, np.ones(1)).reshape(batch, -1)
                z_spread = np.where(has_spread, quantile_spread(z_ref), np.nan)
                z_ratio[part] = spread_score(log_spread_ratio(quantile_spread(z), z_spread)).reshape(batch, -1)
                scale = np.tile(base.scale, batch)
                shift[part] = location_shift(q, q_ref, scale).reshape(batch, -1)
                ref_spread = np.where(has_spread, quantile_spread(q_ref), np.nan)
                ratio[part] = spread_score(log_spread_ratio(quantile_spread(q), ref_spread)).reshape(batch, -1)
                dist[part] = wasserstein(z, z_ref, np.ones(1)).reshape(batch, -1)
            for col in (int(c) for c in np.flatnonzero(~wass)):  # other methods need bins or whole samples: drawn so
                dist[:, col] = _other_distance(rng, base, col, methods[col], int(n_cal[idx[col]]), int(m_cal[idx[col]]), draws)
            log_mu[idx], log_sd[idx] = _log_normal_tail(dist)
            mean_mu[idx], mean_sd[idx] = _centre_and_spread(shift)
            mean_skew[idx] = _skewness(shift, mean_mu[idx], mean_sd[idx])
            scale_mu[idx], scale_sd[idx] = _centre_and_spread(ratio)
            kurt[idx] = _kurtosis(base)
            z_mean_mu[idx], z_mean_sd[idx] = _centre_and_spread(z_shift)
            z_mean_skew[idx] = _skewness(z_shift, z_mean_mu[idx], z_mean_sd[idx])
            z_scale_mu[idx], z_scale_sd[idx] = _centre_and_spread(z_ratio)
            z_kurt[idx] = base.scores.kurtosis
        for k, j in enumerate(base.cat_idx):
            probs = base.cat_props[k]
            size, ref_size = int(n_cal[j]), int(m_cal[j])
            if not probs.sum() > 0 or size < 1 or ref_size < 1:  # no category in the reference (an all-missing or
                continue  # redacted feature): no null to draw
            shares = probs / probs.sum()
            counts = rng.multinomial(size, shares, size=draws)
            pseudo = rng.multinomial(ref_size, shares, size=draws)
            stats = np.array(
                [categorical_distance(base.methods[j], c / size, r / ref_size) for c, r in zip(counts, pseudo, strict=True)]
            )
            (log_mu[j],), (log_sd[j],) = _log_normal_tail(stats[:, None])
        # location, spread and distance for ordered features; the shares of values where there are point masses
        tests = max(3 * int(base.ordered.sum()) + int(base.shares_tested.sum()) + 2 * len(base.cat_idx), 1)
        return cls(
            window=window,
            alpha=alpha,
            tests=tests,
            z_one_sided=float(norm.isf(alpha / tests)),
            z_two_sided=float(norm.isf(alpha / (2 * tests))),
            n_cal=n_cal,
            m_cal=m_cal,
            log_mu=log_mu,
            log_sd=log_sd,
            mean_mu=mean_mu,
            mean_sd=mean_sd,
            mean_skew=mean_skew,
            scale_mu=scale_mu,
            scale_sd=scale_sd,
            kurtosis=kurt,
            score_mean_mu=z_mean_mu,
            score_mean_sd=z_mean_sd,
            score_mean_skew=z_mean_skew,
            score_scale_mu=z_scale_mu,
            score_scale_sd=z_scale_sd,
            score_kurtosis=z_kurt,
        )

    @property
    def level(self) -> float:
        """The false-alarm level of one test (the check's budget split over its tests)."""
        return self.alpha / self.tests

    def widen(self, present: np.ndarray, reference_present: np.ndarray) -> np.ndarray:
        """Ratio of the null spread of a statistic for a window holding ``present`` values (compared
        with a reference of ``reference_present`` values) to its spread in the calibration draws.

        The spread of a statistic between a window of n and a reference of m goes like
        sqrt(1/n + 1/m); the draws' like sqrt(1/n_cal + 1/m_cal). For a full window and a reference no
        larger than the draws this is 1; a larger reference narrows it, a partly filled window widens it.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = 1 / np.asarray(present, dtype=float) + 1 / np.maximum(reference_present, 1)
            return np.where(np.asarray(present) > 0, np.sqrt(inverse / (1 / self.n_cal + 1 / self.m_cal)), np.inf)

    def location_limits(self, features: np.ndarray, factor: np.ndarray, scores: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """How far above and below its null centre the trimmed mean's shift of each of ``features`` may sit (the
        normal scores' shift with ``scores``), for windows whose null is ``factor`` times as wide as the draws'.

        The normal limit, moved out on the side where the draws are skewed by the Cornish-Fisher term
        ``skew (z^2 - 1) / 6`` standard deviations, never moved in. A feature whose non-zero values are a few
        percent of its rows (a zero-inflated amount) has a trimmed mean that counts how many of them passed the
        trimmed 98 %: a Poisson-like count, skewed to the right, whose upper tail the normal limit put too near:
        with 10 such features, healthy windows of 200 rows were flagged for a mean (``mean +0.3 std``) in 6 checks
        of 600, 2.5 times the whole data drift budget; 3 with this term (tests/drift/test_zero_inflated.py).
        """
        sd, skew = (self.score_mean_sd, self.score_mean_skew) if scores else (self.mean_sd, self.mean_skew)
        z = self.z_two_sided
        moved = np.nan_to_num(skew[features]) * (z * z - 1) / 6
        width = sd[features] * factor
        return (z + np.maximum(moved, 0.0)) * width, (z + np.maximum(-moved, 0.0)) * width

    def spread_centre(self, present: np.ndarray, reference_present: np.ndarray, scores: bool = False) -> np.ndarray:
        """Where the spread score (see ``statistics.spread_score``) of a healthy window of ``present`` values sits.

        The log of a spread estimated from n values is biased low by about (kurtosis - 1) / 4n, so a
        window smaller than its reference shows a slightly smaller spread: the draws' centre, moved by
        the difference between the window's sizes and the draws' (2/3 of it on the score's scale).
        ``scores``: where the spread score of the normal scores sits.
        """
        mu, kurtosis = (self.score_scale_mu, self.score_kurtosis) if scores else (self.scale_mu, self.kurtosis)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = 1 / np.asarray(present, dtype=float) - 1 / np.maximum(reference_present, 1)
            drawn = 1 / self.n_cal - 1 / self.m_cal
            return np.asarray(mu - 2 / 3 * (kurtosis - 1) / 4 * (gap - drawn))

    def distance_threshold(self, j: int, method: str, factor: float) -> float:
        # the arrays' arithmetic, not a scalar's: numpy's exp and power on arrays (SIMD) and on one number (libm)
        # may differ in the last bit, and a feature's threshold is one number however it is asked for
        return float(self.distance_thresholds(np.array([j]), (method,), np.array([factor], dtype=float))[0])

    def distance_thresholds(self, features: np.ndarray, methods: Sequence[str], factor: np.ndarray) -> np.ndarray:
        """:meth:`distance_threshold` of each of ``features`` (with its method and factor), computed at once."""
        power = np.array([_RATE_POWER[m] for m in methods], dtype=float)
        floor = np.array([MIN_EFFECT[m] for m in methods], dtype=float)
        calibrated = np.exp(self.log_mu[features] + self.z_one_sided * self.log_sd[features]) * np.asarray(factor, float) ** power
        return np.asarray(np.maximum(calibrated, floor))


_BATCH = 100  # draws computed at once; fewer for a wide model: each of _grid_quantiles' half-dozen arrays holds draws x
_BATCH_VALUES = _BATCH * 128  # features x 194 values (1.1 GB peaked at 1,000 features); up to 128 as before


def batch_draws(features: int) -> int:
    """Draws computed at once (a wide model's come from the generator in another order: the same null)."""
    return max(1, min(_BATCH, _BATCH_VALUES // max(features, 1)))


def _log_normal_tail(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A log-normal fitted to each column's draws by the median and interquartile range of their logs.

    Robust where ties make many draws collapse towards zero (a small or discrete reference drawn twice):
    the left tail of the logs is then long and says nothing about the right one, which alone sets a
    threshold; quartiles ignore it while a quarter of the draws or fewer collapse.
    """
    logs = np.log(np.maximum(distances, _FLOOR))
    lower, median, upper = np.quantile(logs, [0.25, 0.5, 0.75], axis=0)
    return median, (upper - lower) / _IQR


_IQR = float(2 * norm.isf(0.25))  # a normal's interquartile range, in standard deviations


def _skewness(statistic: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Each column's sample skewness (draws that are NaN or infinite left out), 0 where there is no spread."""
    valid = np.isfinite(statistic)
    kept = np.maximum(valid.sum(axis=0), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        third = np.where(valid, statistic - mu, 0.0) ** 3
        return np.asarray(np.where(sd > 0, third.sum(axis=0) / kept / sd**3, 0.0))


def _kurtosis(base: Baseline) -> np.ndarray:
    """Kurtosis of each numeric feature's reference sample (the population the draws come from)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = base.sample - _nanmean(base.sample)
        return np.asarray(_nanmean(centred**4) / _nanmean(centred**2) ** 2)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN for an all-NaN column (a redacted feature) without numpy's warning."""
    known = ~np.isnan(values)
    return np.asarray(np.where(known, values, 0.0).sum(axis=0) / known.sum(axis=0))


def _centre_and_spread(statistic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column's draws, those that are NaN or infinite left out."""
    valid = np.isfinite(statistic)
    kept = np.maximum(valid.sum(axis=0), 1)
    mu = np.where(valid, statistic, 0.0).sum(axis=0) / kept
    sd = np.sqrt((np.where(valid, statistic - mu, 0.0) ** 2).sum(axis=0) / kept)
    return np.where(valid.any(axis=0), mu, np.nan), sd


def _grid_quantiles(
    rng: np.random.Generator, by_feature: np.ndarray, counts: np.ndarray, sizes: np.ndarray, draws: int
) -> np.ndarray:
    """``draws`` samples of ``sizes[k]`` values (with replacement) from each feature's sorted reference sample
    (``by_feature``, ``counts`` values each), as their quantiles on GRID: (GRID, draws x features).

    Only the order statistics the quantiles interpolate between are drawn, whatever the sample size:
    the order statistics of n uniforms are running sums of n + 1 exponentials over their total, and a
    run of k exponentials is one Gamma(k) draw; the sorted reference sample turns sorted uniforms into
    sorted values. A draw costs the same for a window of 100 or 100,000 values.
    """
    features = np.arange(len(sizes))
    pos = GRID[None, :] * (sizes[:, None] - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, sizes[:, None] - 1)
    ranks = np.concatenate([lo, hi], axis=1)  # 0-based ranks needed, per feature
    order = np.argsort(ranks, axis=1, kind="stable")
    ordered = np.take_along_axis(ranks, order, axis=1)
    shapes = np.diff(ordered, axis=1, prepend=-1).astype(float)  # Gamma shapes between consecutive needed ranks
    tail = (sizes - ordered[:, -1]).astype(float)  # ... and from the last one to the n + 1-th exponential
    running = np.cumsum(rng.gamma(shapes, size=(draws, *shapes.shape)), axis=2)
    total = running[:, :, -1] + rng.gamma(tail, size=(draws, len(sizes)))
    last = np.maximum(counts - 1, 0)[None, :, None]
    pick = np.minimum((running / total[:, :, None] * counts[None, :, None]).astype(np.intp), last)
    values = np.take_along_axis(by_feature[features[None, :, None], pick], np.argsort(order, axis=1)[None], axis=2)
    grid = len(GRID)
    out = values[:, :, :grid] + (values[:, :, grid:] - values[:, :, :grid]) * (pos - lo)[None]
    return np.ascontiguousarray(out.transpose(2, 0, 1).reshape(grid, draws * len(sizes)))


def _other_distance(rng: np.random.Generator, base: Baseline, k: int, method: str, n: int, m: int, draws: int) -> np.ndarray:
    """Draws of a numeric feature's KS, PSI or Jensen-Shannon distance between a window of n and a reference of m."""
    sample = base.sample[: base.sample_counts[k], k]
    if method == "ks":
        by_feature = np.ascontiguousarray(sample[None, :])
        counts = np.array([len(sample)])
        out = np.empty(draws)
        for b in range(draws):
            window, _ = _draw(rng, by_feature, counts, np.array([n]))
            reference, _ = _draw(rng, by_feature, counts, np.array([m]))
            out[b] = ks_statistic(window, np.array([n]), reference, np.array([m]))[0]
        return out
    shares = proportions_in_bins(sample, base.edges[k])
    stat = psi if method == "psi" else jensen_shannon
    windows = rng.multinomial(n, shares, size=draws) / n
    references = rng.multinomial(m, shares, size=draws) / m
    return np.array([stat(w, r) for w, r in zip(windows, references, strict=True)])


def _draw(
    rng: np.random.Generator, by_feature: np.ndarray, counts: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One sample of ``sizes[k]`` values (with replacement) from each numeric feature's reference sample
    (``by_feature``: features x sorted values, ``counts`` values each), sorted per column, as rows x
    features NaN-padded to the longest.

    Drawn already sorted, without a sort: the order statistics of n uniforms are the running sums of
    n + 1 exponentials divided by their total, and the reference sample is sorted, so picking by sorted
    uniforms picks sorted values.
    """
    rows = int(sizes.max())
    features = np.arange(len(sizes))
    spacings = np.cumsum(rng.standard_exponential((len(sizes), rows + 1)), axis=1)
    uniforms = spacings[:, :rows] / spacings[features, sizes][:, None]
    pick = np.minimum((uniforms * counts[:, None]).astype(np.intp), np.maximum(counts - 1, 0)[:, None])
    values = by_feature[features[:, None], pick]
    values[np.arange(rows)[None, :] >= sizes[:, None]] = np.nan
    return values.T, sizes


def _subset(base: Baseline, cols: np.ndarray) -> Baseline:
    """A view of the baseline restricted to some numeric columns (for per-method computation)."""
    import dataclasses

    return dataclasses.replace(
        base,
        sample=base.sample[:, cols],
        sample_counts=base.sample_counts[cols],
        ref_quantiles=base.ref_quantiles[:, cols],
        scale=base.scale[cols],
        edges=tuple(base.edges[k] for k in cols),
        bin_props=tuple(base.bin_props[k] for k in cols),
        bin_matrix=base.bin_matrix[cols],
        bin_counts=tuple(base.bin_counts[k] for k in cols),
        bin_labels=tuple(base.bin_labels[k] for k in cols),
        lattice=tuple(base.lattice[k] for k in cols),
        lattice_once=tuple(base.lattice_once[k] for k in cols),
    )
