"""Normal scores: each numeric feature's values seen through its reference's own distribution, ``Phi^-1(F_ref(x))``.

The location and spread tests judge a window's quantile function on this scale (van der Waerden's location,
a Klotz-type spread). For a normal feature it is the standardised scale the tests used before (the same power:
their asymptotic efficiency against the t and F tests is 1); for any continuous feature the statistics are
functions of ranks, so their null is the same from one reference to the next. On the values' own scale it was
not for a heavy tail: the null's spread rested on the reference's few top values (a log-normal with sigma 1.5,
1,000 reference rows: the resampled null sd varied by 23 % from reference to reference) and healthy windows
were flagged 8-17 times as often as the budget allows.

``F_ref`` is the reference sample's mid-probability CDF: a value seen ``c`` times after ``r`` smaller ones sits at
``(r + c / 2) / m`` (ties, the point masses of a count, get one score), linear between consecutive distinct
values, clipped to the smallest and largest value's (``0.5 / m`` and ``1 - 0.5 / m`` for distinct extremes) beyond
the reference's range. The scores are kept at the distinct values and interpolated linearly between them: the
scores of values drawn from the reference (the calibration's draws) and of quantiles interpolated between two
of them are then exactly what their ranks give.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import ndtri

from .statistics import GRID

__all__ = ["LEVELS", "NODES", "NormalScores"]

# The grid levels the scores are judged at: every other one of GRID (0.02, 0.04, ..., 0.98). Mapping a value costs
# ~20 ns whatever else is done with it (np.interp's loop), ~0.1 ms for 64 features' 97 quantiles; the statistics
# are averages over a smooth quantile function, whose 49 levels tell as much as 97 (the location and spread tests'
# null sds agree within 2 %: normal, log-normal and Zipf features, 2,000 reference rows).
LEVELS = slice(None, None, 2)
_TINY = 1e-300  # a variance no window has but a constant one: its log is finite
NODES = 64  # distinct values a feature's map keeps at most


@dataclass(frozen=True, eq=False)
class NormalScores:
    """The normal-score map of every numeric feature, laid out for one vectorised interpolation.

    Feature ``k``'s distinct reference values are mapped affinely onto ``[2k, 2k + 1]`` (``low`` to 2k, the
    largest value to 2k + 1): all features' keys then form one increasing array, and one ``np.interp`` maps
    every feature's values at once (a loop of per-feature calls cost ~1.5 us each, ~0.1 ms for 64 features).
    """

    keys: np.ndarray  # flat, increasing: each feature's distinct reference values on its own unit interval
    scores: np.ndarray  # flat: Phi^-1 of each distinct value's mid-probability
    scale: np.ndarray  # per feature: 1 / the reference's range (1 where it has one value or none)
    start: np.ndarray  # per feature: where 0 lands (2k - smallest value x scale; NaN for a feature without values)
    reference: np.ndarray  # GRID[LEVELS] x features: the scores of the reference's own quantile function
    reference_by_feature: np.ndarray  # the same, features x levels (contiguous: what ``judged`` subtracts)
    reference_mean: np.ndarray  # per feature: their mean
    reference_spread: np.ndarray  # ... and their standard deviation (NaN where zero: no spread to compare with)
    kurtosis: np.ndarray  # per feature: kurtosis of the reference sample's scores

    @classmethod
    def of(cls, sample: np.ndarray, counts: np.ndarray, reference_quantiles: np.ndarray) -> NormalScores:
        """The map of each column of ``sample`` (sorted, ``counts`` values each, NaN-padded), and the scores of
        the reference's own quantile function (``reference_quantiles``: grid x features)."""
        width = len(counts)
        keys: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        scale = np.ones(width)
        start = np.full(width, np.nan)
        kurtosis = np.full(width, np.nan)
        for k, m in enumerate(np.asarray(counts).tolist()):
            values, seen = np.unique(sample[:m, k], return_counts=True)
            if not m:
                keys.append(np.array([2.0 * k, 2.0 * k + 1]))
                scores.append(np.full(2, np.nan))
                continue
            below = np.cumsum(seen) - seen
            if len(values) > NODES:  # thinned: evenly spaced in rank, the extremes and every point mass kept
                kept = np.unique(np.searchsorted(below + seen, np.linspace(1, m, NODES), side="left"))
                kept = np.union1d(kept, np.flatnonzero(seen * NODES >= m))
                values, seen, below = values[kept], seen[kept], below[kept]
            z = ndtri((below + seen / 2) / m)
            if len(values) > 1:
                scale[k] = 1 / (values[-1] - values[0])
            start[k] = 2.0 * k - values[0] * scale[k]
            at = np.clip(values * scale[k] + start[k], 2.0 * k, 2.0 * k + 1)
            if len(values) == 1:  # one value: the same score over the whole interval
                at, z = np.array([2.0 * k, 2.0 * k + 1]), np.repeat(z, 2)
            keys.append(at)
            scores.append(z)
            of_sample = np.interp(sample[:m, k], values, z if len(values) > 1 else z[:1])
            centred = of_sample - of_sample.mean()
            with np.errstate(divide="ignore", invalid="ignore"):
                kurtosis[k] = np.mean(centred**4) / np.mean(centred**2) ** 2
        flat_keys = np.concatenate(keys) if keys else np.zeros(0)
        flat_scores = np.concatenate(scores) if scores else np.zeros(0)
        z = _interpolate(reference_quantiles[LEVELS], flat_keys, flat_scores, scale, start, np.arange(width))
        mean = z.mean(axis=0) if width else np.zeros(0)
        spread = np.sqrt(((z - mean) ** 2).mean(axis=0)) if width else np.zeros(0)
        return cls(
            keys=flat_keys,
            scores=flat_scores,
            scale=scale,
            start=start,
            reference=z,
            reference_by_feature=np.ascontiguousarray(z.T),
            reference_mean=mean,
            reference_spread=np.where(spread > 0, spread, np.nan),
            kurtosis=kurtosis,
        )

    def of_levels(self, quantile_functions: np.ndarray) -> np.ndarray:
        """The scores of windows' quantile functions (grid x features) at the levels judged: features x levels, as
        ``np.interp`` lays them out (the statistics below take a pass each over its rows), from columns kept for it:
        a health's few small array calls matter (per-call set-up was ~0.05 ms for a model's two outputs)."""
        if not len(self.keys):
            return np.zeros((0, len(GRID[LEVELS])))
        at = quantile_functions[LEVELS].T * self._columns[0]
        at += self._columns[1]
        np.minimum(np.maximum(at, self._columns[2], out=at), self._columns[3], out=at)
        out: np.ndarray = np.interp(at.reshape(-1), self.keys, self.scores).reshape(at.shape)
        return out

    def distance(self, scores: np.ndarray) -> np.ndarray:
        """The Wasserstein distance between windows' scores (:meth:`of_levels`) and the reference's: the mean gap of
        their quantile functions, in the scores' standard deviations (``statistics.wasserstein`` on a scale of 1)."""
        return np.asarray(np.add.reduce(np.abs(scores - self.reference_by_feature), axis=1) / scores.shape[1])

    def shift(self, scores: np.ndarray) -> np.ndarray:
        """The shift of the scores' mean from the reference's (``statistics.location_shift`` on a scale of 1)."""
        return np.asarray(np.add.reduce(scores, axis=1) / scores.shape[1] - self.reference_mean)

    def log_spread_ratio(self, scores: np.ndarray) -> np.ndarray:
        """log(the scores' standard deviation / the reference's): ``statistics.log_spread_ratio(quantile_spread(..))``,
        the same numbers within rounding, but about -345 (not -inf) for a window gone constant."""
        levels = scores.shape[1]
        mean = np.add.reduce(scores, axis=1) / levels
        square = np.einsum("ij,ij->i", scores, scores) / levels - mean * mean
        return np.asarray(0.5 * np.log(np.maximum(square, _TINY)) - self._log_reference_spread)

    @cached_property
    def _columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        floor = 2.0 * np.arange(len(self.scale))[:, None]
        return self.scale[:, None], self.start[:, None], floor, floor + 1

    @cached_property
    def _log_reference_spread(self) -> np.ndarray:
        return np.asarray(np.log(self.reference_spread))

    def __call__(self, values: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """The scores of ``values`` (rows x columns, column ``c`` a value of feature ``features[c]``; by default
        column k is feature k); NaN stays NaN."""
        if features is None:
            features = np.arange(len(self.scale))
        return _interpolate(values, self.keys, self.scores, self.scale, self.start, features)


def _interpolate(
    values: np.ndarray, keys: np.ndarray, scores: np.ndarray, scale: np.ndarray, start: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """Each column's values placed on its feature's interval (clipped to it: beyond the reference's range a value
    scores as its extreme) and interpolated among the keys, all columns in one call.

    Laid out feature-major, each column's values increasing (a quantile function): ``np.interp`` looks next to
    where its last search ended first, so most searches take a step or two (in grid-major order, one full
    binary search each: ~6 times the time for 64 features).
    """
    if not len(keys):  # no numeric feature
        return np.full(values.shape, np.nan)
    at = np.ascontiguousarray(values.T) * scale[features, None]
    at += start[features, None]
    floor = 2.0 * features[:, None]
    np.minimum(np.maximum(at, floor, out=at), floor + 1, out=at)
    out: np.ndarray = np.interp(at.reshape(-1), keys, scores).reshape(at.shape).T
    return out
