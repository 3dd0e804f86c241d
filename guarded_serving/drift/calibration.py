"""Thresholds calibrated for a window size, so that healthy traffic rarely raises an alarm.

The rule (explained in the README):

1. **Null distributions by resampling.** For the configured window size ``n``, draw ``B`` windows
   of ``n`` rows from the reference itself and compute every statistic on them: their centre and
   spread, including small-sample biases and the shape of each feature (heavy tails, ties). A
   window drawn from the reference misses the reference's own sampling noise, so the spreads are
   widened by ``sqrt(1 + n/m)`` (``m`` reference values), as for two independent samples.
2. **A family-wise error budget.** Each check gets a share ``alpha`` of the model-wide budget of
   false alarms per health check (data drift 0.4 %, prediction drift 0.2 %, data quality 0.3 %:
   under 1 % in all), split evenly over its tests (Bonferroni), so the rate holds however many
   features the model has.
3. **Tail model.** The per-test level alpha/K is far beyond what B draws can resolve, so the
   null is summarised by its moments: location and spread statistics (trimmed mean shift, log ratio of robust spreads)
   are near normal; distances (Wasserstein, KS, PSI, JS, TV) are positive and right-skewed and are
   fitted as log-normal, whose tail is heavier than theirs (a conservative threshold).
4. **A minimum effect.** A test only fires when the effect also exceeds a size that matters
   (Wasserstein 0.1 std, mean shift 0.1 std, spread change 10 %, PSI 0.1, KS 0.1, TV 0.05), so
   very large windows do not flag differences too small to act on.

Windows holding fewer rows than the calibrated size (after a restart) get thresholds scaled by
the square root of the ratio of effective sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from .baseline import Baseline
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
    total_variation,
    wasserstein,
)

__all__ = ["MIN_EFFECT", "Calibration"]

DRAWS = 160
MAX_DRAW_ROWS = 4000  # larger windows are calibrated on draws of this size, then scaled (see widen)
MIN_EFFECT = {"wasserstein": 0.1, "ks": 0.1, "psi": 0.1, "js": 0.02, "tv": 0.05, "mean": 0.1, "scale": float(np.log(1.1))}
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
    n_cal: np.ndarray  # per feature: rows of each calibration draw
    log_mu: np.ndarray  # per feature: log-normal fit of the primary distance
    log_sd: np.ndarray
    mean_mu: np.ndarray  # per numeric feature (indexed like all features; NaN for categorical ones)
    mean_sd: np.ndarray
    scale_mu: np.ndarray
    scale_sd: np.ndarray

    @classmethod
    def fit(cls, base: Baseline, window: int, alpha: float, draws: int = DRAWS, seed: int = 20261129) -> Calibration:
        rng = np.random.default_rng(seed)
        width = base.width
        expected = window * (1 - base.missing_rate)  # present values a full window holds per feature
        n_cal = np.clip(np.round(expected), 2, MAX_DRAW_ROWS).astype(int)
        log_mu = np.full(width, np.nan)
        log_sd = np.full(width, np.nan)
        mean_mu = np.full(width, np.nan)
        mean_sd = np.full(width, np.nan)
        scale_mu = np.full(width, np.nan)
        scale_sd = np.full(width, np.nan)
        if len(base.num_idx):
            idx = base.num_idx
            sizes = n_cal[idx]
            rows = int(sizes.max())
            dist = np.empty((draws, len(idx)))
            shift = np.empty((draws, len(idx)))
            ratio = np.empty((draws, len(idx)))
            methods = base.numeric_methods
            groups = {m: np.array([k for k, mth in enumerate(methods) if mth == m]) for m in set(methods)}
            subsets = {m: _subset(base, cols) for m, cols in groups.items()}
            beyond = np.arange(rows)[:, None] >= sizes[None, :]
            for b in range(draws):
                pick = (rng.random((rows, len(idx))) * base.sample_counts[None, :]).astype(np.intp)
                values = np.take_along_axis(base.sample, np.minimum(pick, base.sample.shape[0] - 1), axis=0)
                values[beyond] = np.nan
                values = np.sort(values.T, axis=1).T
                q = quantiles(values, sizes, GRID)
                shift[b] = location_shift(q, base.ref_quantiles, base.scale)
                ratio[b] = log_spread_ratio(quantile_spread(q), np.where(base.has_spread, base.spread, np.nan))
                for method, cols in groups.items():
                    if method == "wasserstein":
                        dist[b, cols] = wasserstein(q[:, cols], base.ref_quantiles[:, cols], base.scale[cols])
                    else:
                        dist[b, cols] = numeric_distance(method, values[:, cols], sizes[cols], subsets[method])
            logs = np.log(np.maximum(dist, _FLOOR))
            log_mu[idx] = logs.mean(axis=0)
            log_sd[idx] = logs.std(axis=0)
            mean_mu[idx] = shift.mean(axis=0)
            mean_sd[idx] = shift.std(axis=0)
            valid = np.isfinite(ratio)  # NaN for features without spread in the reference
            kept = np.maximum(valid.sum(axis=0), 1)
            centre = np.where(valid, ratio, 0.0).sum(axis=0) / kept
            scale_mu[idx] = np.where(valid.any(axis=0), centre, np.nan)
            scale_sd[idx] = np.sqrt((np.where(valid, ratio - centre, 0.0) ** 2).sum(axis=0) / kept)
        for k, j in enumerate(base.cat_idx):
            probs = base.cat_props[k]
            if not probs.sum() > 0:  # no category in the reference (an all-missing or redacted feature): no null to draw
                continue
            size = int(n_cal[j])
            counts = rng.multinomial(size, probs / probs.sum(), size=draws)
            stats = np.array([categorical_distance(base.methods[j], c / size, probs) for c in counts])
            logs = np.log(np.maximum(stats, _FLOOR))
            log_mu[j] = logs.mean()
            log_sd[j] = logs.std()
        tests = max(3 * len(base.num_idx) + len(base.cat_idx), 1)
        return cls(
            window=window,
            alpha=alpha,
            tests=tests,
            z_one_sided=float(norm.isf(alpha / tests)),
            z_two_sided=float(norm.isf(alpha / (2 * tests))),
            n_cal=n_cal,
            log_mu=log_mu,
            log_sd=log_sd,
            mean_mu=mean_mu,
            mean_sd=mean_sd,
            scale_mu=scale_mu,
            scale_sd=scale_sd,
        )

    def widen(self, present: np.ndarray, reference_present: np.ndarray) -> np.ndarray:
        """Ratio of the null spread of a statistic for a window holding ``present`` values (compared
        with a reference of ``reference_present`` values) to its spread in the calibration draws.

        The draws come from the reference itself, so they miss the reference's own sampling noise:
        the spread of a difference between a fresh window of n and a reference of m goes like
        sqrt(1/n + 1/m), the draws' like sqrt(1/n_cal). For a full window this is sqrt(1 + n/m).
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = 1 / np.asarray(present, dtype=float) + 1 / np.maximum(reference_present, 1)
            return np.where(np.asarray(present) > 0, np.sqrt(inverse * self.n_cal), np.inf)

    def distance_threshold(self, j: int, method: str, factor: float) -> float:
        power = _RATE_POWER[method]
        calibrated = float(np.exp(self.log_mu[j] + self.z_one_sided * self.log_sd[j]) * factor**power)
        return max(calibrated, MIN_EFFECT[method])


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
    )
