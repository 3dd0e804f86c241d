"""What a drift check judges a window by, given how many values each feature holds in it.

The thresholds, the spread test's centre and whether it can be judged, and where the grid's quantiles sit among a
feature's sorted values depend on the calibration and on the count of present values per feature alone, not on the
values: a full window holds the same counts health after health. :meth:`Limits.of` computes them once per count
vector and keeps a few on the calibration (about 0.1 ms of small array operations per check saved each health).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .baseline import Baseline
from .calibration import Calibration
from .columns import rounded_all
from .statistics import GRID, binomial_sf, common_share_bound, psi_floor

__all__ = ["Limits"]

KEPT = 8  # count vectors remembered per calibration (a full window, one filling up, one with a gap...)


@dataclass(frozen=True, eq=False)
class Limits:
    """Per feature (``factor``) and per numeric feature (the rest), for windows with ``present`` values each."""

    factor: np.ndarray  # every feature: how much wider the null is than in the calibration draws (Calibration.widen)
    thresholds: np.ndarray  # the primary distance's threshold
    mean_limits: np.ndarray  # how far above its null centre the trimmed mean's shift may sit
    mean_limits_below: np.ndarray  # ... and below it (Calibration.location_limits: wider on a skewed null's side)
    spread_limits: np.ndarray  # how far the spread score may sit from its centre
    spread_centre: np.ndarray
    # the same three for the normal scores' statistics (drift.scores): a location or spread test fires when both
    # its statistics, on the values and on their scores, are significant
    score_mean_limits: np.ndarray
    score_mean_limits_below: np.ndarray
    score_spread_limits: np.ndarray
    score_centre: np.ndarray
    score_mean_mu: np.ndarray
    spread_testable: np.ndarray  # where a zero spread would be evidence (see spread_testable)
    low: np.ndarray  # grid x numeric features: flat positions of the values each quantile interpolates between
    high: np.ndarray
    fraction: np.ndarray
    empty: np.ndarray  # numeric features with no value
    methods: tuple[str, ...]  # each numeric feature's primary distance
    reference_mean: np.ndarray  # the reference's trimmed mean (its quantile function's average)
    reference_spread: np.ndarray  # its robust spread, NaN where it has none
    bins: int  # the most bins a numeric feature has
    partial: bool  # some numeric feature's sorted row holds missing values at its end
    edge_at: np.ndarray  # where each numeric feature's edges sit in the flat (features x bins + 1) matrix of bin_counts
    # What data drift's verdicts read that the counts alone fix (per numeric feature), worked out once here rather
    # than on every health: ~15 small array operations and lists of 64 per check, ~0.1 ms in a moved window's health.
    judged: np.ndarray  # at least two values and ordered (quantile statistics tested)
    spread_judged: list[bool]  # judged, and where a zero spread would be evidence
    mean_mu: np.ndarray  # the trimmed mean's null centre (the calibration's, for the numeric features)
    per_value: np.ndarray  # features x 1: what a bin count is divided by for its share (present, at least 1)
    reference_floor: np.ndarray  # the reference's bin shares floored as PSI floors them
    rows: list[int]  # present values per numeric feature
    threshold_list: list[float]  # the thresholds as Python numbers, as worded
    shown_threshold: list[float | None]  # rounded as shown; None for a feature judged by its shares alone
    centre_list: list[float]
    limit_list: list[float]
    others: tuple[tuple[str, np.ndarray], ...]  # each primary distance other than Wasserstein and its features
    other_method: np.ndarray  # per numeric feature: its primary distance is not Wasserstein
    tested: np.ndarray  # the features whose bin shares are tested (positions among the numeric ones)
    has_spread_list: list[bool]
    ordered_list: list[bool]
    names: tuple[str, ...]  # the numeric features' names, in order
    few: bool  # some feature has fewer than two values: judged insufficient

    @classmethod
    def of(cls, base: Baseline, cal: Calibration, present: np.ndarray, width: int, judged_as: np.ndarray | None = None) -> Limits:
        """The limits for ``present`` values per feature, the sorted rows being ``width`` long (kept on ``cal``); the
        nulls are those of ``judged_as`` independent values per feature (fewer when rows repeat: drift.repeats)."""
        judged_as = present if judged_as is None else judged_as
        key = (id(base), width, present.tobytes(), judged_as.tobytes())
        kept = cal.kept_limits
        found = kept.get(key)
        if found is not None and found[0] is base:
            return found[1]  # type: ignore[no-any-return]
        limits = cls._compute(base, cal, present, width, judged_as)
        if len(kept) >= KEPT:
            kept.clear()
        kept[key] = (base, limits)
        return limits

    @classmethod
    def _compute(cls, base: Baseline, cal: Calibration, present: np.ndarray, width: int, judged_as: np.ndarray) -> Limits:
        idx = base.num_idx
        reference = base.reference_sizes()
        factor = cal.widen(judged_as, reference)
        numeric = present[idx]
        every = np.ones(base.width)
        every[idx] = judged_as[idx]
        # A feature with no value in the window has an infinite factor (0 x inf for a constant reference: nan); it
        # is judged insufficient before its limits are read, so the nan is never read and not worth a warning.
        with np.errstate(invalid="ignore"):
            thresholds = cal.distance_thresholds(idx, base.numeric_methods, factor[idx])
            mean_limits, mean_below = cal.location_limits(idx, factor[idx])
            spread_limits = cal.z_two_sided * cal.scale_sd[idx] * factor[idx]  # the spread score's scale
            score_mean_limits, score_mean_below = cal.location_limits(idx, factor[idx], scores=True)
            score_spread_limits = cal.z_two_sided * cal.score_scale_sd[idx] * factor[idx]
        bins = base.bin_matrix.shape[1]
        top = np.maximum(numeric - 1, 0)
        pos = GRID[:, None] * top[None, :]
        lo = np.floor(pos).astype(np.intp)
        offset = np.arange(len(idx)) * width
        spread_centre = cal.spread_centre(every, reference)[idx]
        spread_testable_ = base.has_spread & spread_testable(base.top_share[idx], reference[idx], judged_as[idx], cal.level)
        judged = (numeric >= 2) & base.ordered
        methods = base.numeric_methods
        others = tuple(
            (m, np.array([k for k, n in enumerate(methods) if n == m])) for m in sorted(set(methods) - {"wasserstein"})
        )
        shown = rounded_all(thresholds)
        return cls(
            factor=factor,
            thresholds=thresholds,
            mean_limits=mean_limits,
            mean_limits_below=mean_below,
            spread_limits=spread_limits,
            spread_centre=spread_centre,
            score_mean_limits=score_mean_limits,
            score_mean_limits_below=score_mean_below,
            score_spread_limits=score_spread_limits,
            score_centre=cal.spread_centre(every, reference, scores=True)[idx],
            score_mean_mu=cal.score_mean_mu[idx],
            spread_testable=spread_testable_,
            low=lo + offset,
            high=np.minimum(lo + 1, top[None, :]) + offset,
            fraction=pos - lo,
            empty=numeric == 0,
            methods=base.numeric_methods,
            bins=bins,
            partial=bool((numeric < width).any()),
            reference_mean=base.ref_quantiles.mean(axis=0),
            reference_spread=np.where(base.has_spread, base.spread, np.nan),
            edge_at=np.concatenate(
                [np.zeros(0, dtype=np.intp), *(k * (bins + 1) + 1 + np.arange(len(e)) for k, e in enumerate(base.edges))]
            ),
            judged=judged,
            spread_judged=(judged & spread_testable_).tolist(),
            mean_mu=cal.mean_mu[idx],
            per_value=np.maximum(numeric, 1)[:, None],
            reference_floor=psi_floor(base.bin_matrix),
            rows=numeric.tolist(),
            threshold_list=thresholds.tolist(),
            shown_threshold=[t if o else None for t, o in zip(shown, base.ordered.tolist(), strict=True)],
            centre_list=spread_centre.tolist(),
            limit_list=spread_limits.tolist(),
            others=others,
            other_method=np.array([m != "wasserstein" for m in methods], dtype=bool),
            tested=np.flatnonzero(base.shares_tested),
            has_spread_list=base.has_spread.tolist(),
            ordered_list=base.ordered.tolist(),
            names=tuple(base.names[j] for j in idx.tolist()),
            few=bool((numeric < 2).any()),
        )

    def quantiles(self, sorted_t: np.ndarray) -> np.ndarray:
        """:func:`~guarded_serving.drift.statistics.quantiles_by_feature` of the sorted rows these limits are for."""
        flat = sorted_t.reshape(-1)
        low = flat[self.low]
        out: np.ndarray = low + (flat[self.high] - low) * self.fraction
        if self.empty.any():
            out[:, self.empty] = np.nan
        return out

    def bin_counts(self, sorted_t: np.ndarray, present: np.ndarray, edges: tuple[np.ndarray, ...]) -> np.ndarray:
        """Each numeric feature's window values per reference bin (``bins.edge_counts`` of its sorted present values),
        as a features x bins matrix padded with zeros: one binary search per feature, their results placed at once
        (``edge_counts`` per feature cost ~0.4 ms for 64 features, most of it in its small array calls)."""
        at = np.empty((len(present), self.bins + 1), dtype=np.intp)
        at[:] = present[:, None]  # past the last edge: every value
        at[:, 0] = 0
        if not sorted_t.shape[1]:
            return np.diff(at, axis=1)
        if not self.partial:
            found = list(map(np.ndarray.searchsorted, sorted_t, edges))  # side="left"; ~10 % less than a loop
        else:
            found = [row[:p].searchsorted(e, side="left") for row, e, p in zip(sorted_t, edges, present.tolist(), strict=True)]
        if found:
            at.reshape(-1)[self.edge_at] = np.concatenate(found)
        return np.diff(at, axis=1)


def spread_testable(top_share: np.ndarray, reference: np.ndarray, present: np.ndarray, level: float) -> np.ndarray:
    """Where a window whose central 96 % is one value would be evidence: its chance under the reference.

    A sparse or near-constant feature's window often holds nothing but its common value in the trimmed
    range (a spread of zero) by chance alone; there, a zero spread says nothing, and the value shares
    test judges the feature. The chance uses an upper bound of the common value's share (its
    reference estimate plus three standard errors), as the quality check's constant test does.
    """
    top = common_share_bound(top_share, reference)
    needed = np.ceil(0.96 * present) - 1
    return np.asarray(binomial_sf(needed, present, top) < level)
