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

import numpy as np
from scipy.special import ndtri

__all__ = ["NODES", "NormalScores"]

NODES = 128  # distinct values a feature's map keeps at most


@dataclass(frozen=True, eq=False)
class NormalScores:
    """The normal-score map of every numeric feature, laid out for one vectorised interpolation.

    Feature ``k``'s distinct reference values are mapped affinely onto ``[2k, 2k + 1]`` (``low`` to 2k, the
    largest value to 2k + 1): all features' keys then form one increasing array, and one ``np.interp`` maps
    every feature's values at once (a loop of per-feature calls cost ~1.5 us each, ~0.1 ms for 64 features).
    """

    keys: np.ndarray  # flat, increasing: each feature's distinct reference values on its own unit interval
    scores: np.ndarray  # flat: Phi^-1 of each distinct value's mid-probability
    low: np.ndarray  # per feature: the smallest reference value (NaN for a feature without any)
    width: np.ndarray  # per feature: the reference's range (1 where it has one value or none)
    reference: np.ndarray  # GRID x features: the scores of the reference's own quantile function
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
        low = np.full(width, np.nan)
        span = np.ones(width)
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
            low[k] = values[0]
            span[k] = values[-1] - values[0] if len(values) > 1 else 1.0
            at = (values - values[0]) / span[k] + 2.0 * k
            if len(values) == 1:  # one value: the same score over the whole interval
                at, z = np.array([2.0 * k, 2.0 * k + 1]), np.repeat(z, 2)
            keys.append(at)
            scores.append(z)
            of_sample = np.interp(sample[:m, k], values, z if len(values) > 1 else z[:1])
            centred = of_sample - of_sample.mean()
            with np.errstate(divide="ignore", invalid="ignore"):
                kurtosis[k] = np.mean(centred**4) / np.mean(centred**2) ** 2
        out = cls(
            keys=np.concatenate(keys) if keys else np.zeros(0),
            scores=np.concatenate(scores) if scores else np.zeros(0),
            low=low,
            width=span,
            reference=np.zeros((0, width)),
            reference_mean=np.zeros(width),
            reference_spread=np.zeros(width),
            kurtosis=kurtosis,
        )
        if not width:
            return out
        z = out(reference_quantiles)
        mean = z.mean(axis=0)
        spread = np.sqrt(((z - mean) ** 2).mean(axis=0))
        object.__setattr__(out, "reference", z)
        object.__setattr__(out, "reference_mean", mean)
        object.__setattr__(out, "reference_spread", np.where(spread > 0, spread, np.nan))
        return out

    def __call__(self, values: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """The scores of ``values`` (rows x columns, column ``c`` a value of feature ``features[c]``; by default
        column k is feature k); NaN stays NaN.

        Each column's values are best given increasing (a quantile function): ``np.interp`` searches from where
        its last search ended, so the feature-major order makes its searches a step or two each.
        """
        if features is None:
            low, width, offset = self.low, self.width, 2.0 * np.arange(len(self.low))
        else:
            low, width, offset = self.low[features], self.width[features], 2.0 * features
        at = np.clip((values.T - low[:, None]) / width[:, None], 0.0, 1.0) + offset[:, None]
        out: np.ndarray = np.interp(at.reshape(-1), self.keys, self.scores).reshape(at.shape).T
        return out
