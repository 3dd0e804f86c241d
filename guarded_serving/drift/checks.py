"""Data drift and prediction drift: the checks that judge how the window's values are distributed.

Each is a pure function of (baseline, calibration, window) returning a
:class:`~guarded_serving.health.CheckResult` whose details hold one typed entry per feature.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from ..health import BaselineSource, CheckResult, Status
from .baseline import Baseline
from .calibration import MIN_EFFECT, Calibration, categorical_distance, numeric_distance
from .columns import WindowColumns, rounded, rounded_all, significant, verdict
from .limits import Limits
from .repeats import Repeats
from .shares import NEW_VALUES, SEVERE_SHARE_CHANGE, share_tests, with_new_values
from .statistics import (
    jensen_shannon,
    jensen_shannon_rows,
    log_spread_ratio,
    psi,
    psi_rows,
)

__all__ = ["ALPHA_DATA", "ALPHA_PREDICTION", "DriftDetails", "FeatureDrift", "WindowColumns", "drift_check"]

ALPHA_DATA = 0.004
ALPHA_PREDICTION = 0.0015


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift verdict. ``score``/``threshold`` are the primary method's.

    ``mean_shift_std`` is the shift of the 2 %-trimmed mean in reference standard deviations and
    ``spread_ratio`` the ratio of robust spreads (about the ratio of standard deviations for
    well-behaved data): the effects the location and spread tests report, in the feature's own units, and
    the minimum effects they must reach. Whether they are significant is judged on the same two statistics
    of the feature's normal scores (``drift.scores``), as is a Wasserstein ``score``: there the distance
    between the normal scores' quantile functions (for a normal feature about ``wasserstein``, which stays
    in reference standard deviations, and must reach 0.1 too). ``shares_p`` is the p-value
    of the exact test of the reference bins' shares (the smallest over the bins, times their number).
    A discrete numeric feature (at most ten distinct values in its central 96 %) is judged by its
    shares alone: its ``threshold`` is None.
    """

    status: Status
    drifted: bool
    method: str
    score: float | None
    threshold: float | None
    rows: int
    reason: str | None = None
    mean_shift_std: float | None = None
    spread_ratio: float | None = None
    wasserstein: float | None = None
    psi: float | None = None
    js: float | None = None
    tv: float | None = None
    shares_p: float | None = None


def _feature_drift_maker() -> Callable[..., FeatureDrift]:
    """``FeatureDrift(*values)``, every field given in order, for half the time: a frozen dataclass's ``__init__``
    sets each field through ``object.__setattr__`` (~3 us for 14 fields, ~0.2 ms per health for 64 features); the
    slots' own setters do the same for less. FeatureDrift has no ``__post_init__`` to skip."""
    (status, drifted, method, score, threshold, rows, reason, shift, spread, w1, psi_, js, tv, p) = (
        getattr(FeatureDrift, f.name).__set__ for f in fields(FeatureDrift)
    )
    new = object.__new__

    def make(
        status_: Status, drifted_: bool, method_: str, score_: float | None, threshold_: float | None, rows_: int,
        reason_: str | None, shift_: float | None, spread_: float | None, w1_: float | None, psi__: float | None,
        js_: float | None, tv_: float | None, p_: float | None,
    ) -> FeatureDrift:  # fmt: skip
        e = new(FeatureDrift)
        status(e, status_), drifted(e, drifted_), method(e, method_), score(e, score_), threshold(e, threshold_)
        rows(e, rows_), reason(e, reason_), shift(e, shift_), spread(e, spread_), w1(e, w1_), psi_(e, psi__), js(e, js_)
        tv(e, tv_), p(e, p_)
        return e  # type: ignore[no-any-return]

    return make


_feature_drift = _feature_drift_maker()


@dataclass(frozen=True, slots=True)
class DriftDetails:
    rows: int
    min_rows: int
    alpha: float
    features: dict[str, FeatureDrift]
    baseline: BaselineSource | None = None


def drift_check(
    name: str,
    base: Baseline,
    cal: Calibration,
    window: WindowColumns,
    min_rows: int,
    what: str = "features",
    skip: frozenset[str] = frozenset(),
    baseline: BaselineSource | None = None,
    repeats: Repeats | None = None,
) -> CheckResult:
    """Judge every feature of the window against the baseline (``baseline`` says what it is, for the report); a
    window whose rows repeat beyond chance (``repeats``) as the independent rows it is worth."""
    n = window.rows
    said = f"; {baseline.describe()}" if baseline is not None and baseline.since is not None else ""
    repeats = repeats if repeats is not None and repeats.replayed else None
    if repeats is not None:
        said += f"; {repeats.describe()}"
    if n < min_rows:
        details = DriftDetails(n, min_rows, cal.alpha, {}, baseline)
        return CheckResult(name, Status.INSUFFICIENT_DATA, f"{n} rows in the window; drift is judged from {min_rows}.", details)
    present = window.present
    judged_as = repeats.scaled(present, kept=True) if repeats is not None else None
    limits = Limits.of(base, cal, present, window.numeric.shape[1], judged_as)
    factor = limits.factor
    features: dict[str, FeatureDrift] = {}
    if len(base.num_idx):
        features.update(_numeric(base, cal, window.numeric, present[base.num_idx], limits, repeats))
    for k, j in enumerate(base.cat_idx):
        column, rows = window.categorical[k], int(present[j])
        features[base.names[j]] = _categorical(base, cal, k, int(j), column, rows, float(factor[j]), repeats)
    # in the baseline's order (numeric features come first), redacted features not judged
    ordered = {nm: features[nm] for nm in base.names if nm not in skip} if skip or len(base.cat_idx) else features
    details = DriftDetails(n, min_rows, cal.alpha, ordered, baseline)
    drifted = sorted(((nm, f) for nm, f in ordered.items() if f.drifted), key=lambda kv: _severity(kv[1]), reverse=True)
    if not drifted:
        return CheckResult(name, Status.OK, f"No drift in {len(ordered)} {what} over the last {n} rows{said}.", details)
    status = Status.ALERT if any(f.status is Status.ALERT for _, f in drifted) else Status.WARN
    shown = "; ".join(f"{nm}: {f.reason}" for nm, f in drifted[:3])
    more = f" and {len(drifted) - 3} more" if len(drifted) > 3 else ""
    return CheckResult(name, status, f"{len(drifted)} of {len(ordered)} {what} drifted: {shown}{more}{said}.", details)


def _severity(f: FeatureDrift) -> tuple[int, float]:
    """Alerts first, then by how far the primary distance is past its threshold."""
    ratio = f.score / f.threshold if f.score is not None and f.threshold else 0.0
    return f.status.rank, ratio


def _numeric(
    base: Baseline, cal: Calibration, sorted_t: np.ndarray, present: np.ndarray, limits: Limits, repeats: Repeats | None
) -> dict[str, FeatureDrift]:
    """Every numeric feature's verdict: the statistics and the tests computed for all features at once, then one
    entry per feature; the reasons are worded only for the features that drifted (most do not). What the counts
    alone fix (thresholds as shown, which features are judged...) comes worked out with the limits."""
    idx = base.num_idx
    width = len(idx)
    if not sorted_t.shape[1]:
        constant = np.zeros(width, bool)
    elif limits.partial:
        constant = (present >= 2) & (sorted_t[np.arange(width), np.maximum(present - 1, 0)] == sorted_t[:, 0])
    else:  # every row full: its last value is its largest
        constant = (present >= 2) & (sorted_t[:, -1] == sorted_t[:, 0])
    q = limits.quantiles(sorted_t)
    grid = len(q)
    # statistics.location_shift, quantile_spread and wasserstein, sharing the window's and reference's means (sums
    # over the grid divided by its length: np.mean's own arithmetic, without its Python layers)
    mean = np.add.reduce(q, axis=0) / grid
    shift = (mean - limits.reference_mean) / base.scale
    ratio = log_spread_ratio(np.sqrt(np.add.reduce((q - mean) ** 2, axis=0) / grid), limits.reference_spread)
    w1 = np.add.reduce(np.abs(q - base.ref_quantiles), axis=0) / grid / base.scale
    # what the location and spread tests judge: the same two on the normal scores (drift.scores), whose null does
    # not rest on the reference's extreme values; the figures above are what the report shows and the minimum
    # effects gate
    z = base.scores.of_levels(q)
    primary = base.scores.distance(z)
    methods = limits.methods
    if limits.others:
        primary = primary.copy()
        ordered = sorted_t.T  # rows x features view, as the statistics expect
        for method, pick in limits.others:
            primary[pick] = numeric_distance(method, ordered[:, pick], present[pick], _columns(base, pick))
    counts = limits.bin_counts(sorted_t, present, base.edges)
    window_bins = counts / limits.per_value
    psi_all = psi_rows(window_bins, base.bin_matrix, limits.reference_floor)
    js_all = jensen_shannon_rows(window_bins, base.bin_matrix)
    # The exact shares test only where it is judged (a discrete feature, or one with a point mass): its tails
    # cost ~2 ms for 64 continuous features' bins, whose p-values were computed and never read.
    tested = limits.tested
    shares: dict[int, tuple[float | None, tuple[int, float, float] | None]] = {}
    if len(tested):
        window_counts, reference_counts = with_new_values(base, sorted_t, present, counts, tested)
        values = present[tested]
        if repeats is not None:  # the shares of as many independent values as the window is worth
            window_counts, values = [repeats.scaled(c) for c in window_counts], repeats.scaled(values, kept=True)
        found = share_tests(window_counts, values, reference_counts, base.present[idx][tested], cal.level)
        shares = dict(zip(tested.tolist(), found, strict=True))
    judged = limits.judged
    with np.errstate(invalid="ignore"):  # nan limits of a feature with no value: judged insufficient, never read
        distance_over = judged & (primary > limits.thresholds)
        if distance_over.any():  # the minimum effect is the values' (a distance of their scores is judged)
            distance_over &= (w1 >= MIN_EFFECT["wasserstein"]) | limits.other_method
        # a shift or a spread change is significant when it is so on the values and on their scores (the scores'
        # statistics computed only where the values' are: healthy windows seldom need them)
        off = shift - limits.mean_mu
        beyond = (off > limits.mean_limits) | (-off > limits.mean_limits_below)
        mean_moved = judged & beyond & (np.abs(shift) >= MIN_EFFECT["mean"])
        if mean_moved.any():
            off_z = base.scores.shift(z) - limits.score_mean_mu
            mean_moved &= (off_z > limits.score_mean_limits) | (-off_z > limits.score_mean_limits_below)
    ratio_ = ratio.tolist()
    spread_moved = [  # math.exp, as the spread's figures are worded: a feature on the edge is judged as it is shown
        t and abs(math.exp(2 / 3 * r) - c) > lim and abs(r) >= MIN_EFFECT["scale"]
        for t, r, c, lim in zip(limits.spread_judged, ratio_, limits.centre_list, limits.limit_list, strict=True)
    ]
    if any(spread_moved):
        with np.errstate(invalid="ignore"):
            score = np.exp(2 / 3 * base.scores.log_spread_ratio(z))
            on_scores = (np.abs(score - limits.score_centre) > limits.score_spread_limits).tolist()
        spread_moved = [v and s for v, s in zip(spread_moved, on_scores, strict=True)]
    flagged = set(np.flatnonzero(distance_over | mean_moved | np.array(spread_moved, dtype=bool)).tolist())
    flagged.update(k for k, (_, moved) in shares.items() if moved is not None)
    spread = np.array([math.exp(r) for r in ratio_], dtype=float)  # math.exp, as the reasons word it
    shown = rounded_all(np.concatenate([primary, shift, w1, psi_all, js_all, spread]))  # one pass for all
    constant_ = constant.tolist()
    figures = _Figures(
        rows=limits.rows,
        score=primary.tolist(),
        threshold=limits.threshold_list,
        shift=shift.tolist(),
        ratio=ratio_,
        constant=constant_,
        shown_score=shown[:width],
        shown_shift=shown[width : 2 * width],
        shown_spread=_spread_ratios(shown[5 * width :], constant_, limits.has_spread_list),
        shown_w1=shown[2 * width : 3 * width],
        shown_psi=shown[3 * width : 4 * width],
        shown_js=shown[4 * width : 5 * width],
    )
    status: list[Status] = [Status.OK] * width
    drifted: list[bool] = [False] * width
    reason: list[str | None] = [None] * width
    if flagged:
        ordered_, over_, mean_ = limits.ordered_list, distance_over.tolist(), mean_moved.tolist()
        for k in flagged:
            tests = (over_[k], mean_[k], spread_moved[k], ordered_[k])
            moved = shares.get(k, (None, None))[1]
            reason[k], drifted[k], status[k] = _numeric_reason(base, k, methods[k], figures, tests, moved)
    shares_p: list[float | None] = [None] * width
    for k, (p, _) in shares.items():
        shares_p[k] = significant(p)
    f = figures
    entries = map(
        _feature_drift, status, drifted, methods, f.shown_score, limits.shown_threshold, f.rows, reason, f.shown_shift,
        f.shown_spread, f.shown_w1, f.shown_psi, f.shown_js, [None] * width, shares_p,
    )  # fmt: skip
    out = dict(zip(limits.names, entries, strict=True))
    if limits.few:
        for k in np.flatnonzero(present < 2).tolist():
            out[base.names[idx[k]]] = FeatureDrift(
                Status.INSUFFICIENT_DATA, False, methods[k], None, None, f.rows[k], "no values in the window"
            )
    return out


@dataclass(frozen=True, slots=True)
class _Figures:
    """Per numeric feature, as Python numbers: what a verdict reads and what the report shows (rounded)."""

    rows: list[int]
    score: list[float]
    threshold: list[float]
    shift: list[float]
    ratio: list[float]
    constant: list[bool]
    shown_score: list[float | None]
    shown_shift: list[float | None]
    shown_spread: list[float | None]
    shown_w1: list[float | None]
    shown_psi: list[float | None]
    shown_js: list[float | None]


def _spread_ratios(shown: list[float | None], constant: list[bool], has_spread: list[bool]) -> list[float | None]:
    """The spread ratio each feature shows (``shown``, rounded): 0 for a window gone constant, None without a
    reference spread."""
    return [0.0 if c else s if h else None for s, c, h in zip(shown, constant, has_spread, strict=True)]


def _numeric_reason(
    base: Baseline,
    k: int,
    method: str,
    figures: _Figures,
    tests: tuple[bool, bool, bool, bool],
    moved: tuple[int, float, float] | None,
) -> tuple[str | None, bool, Status]:
    """What a numeric feature's tests found, worded (location, spread, then distance, then the shares that moved),
    whether it drifted and its status."""
    distance_over, mean_moved, spread_moved, ordered = tests
    score, threshold = figures.score[k], figures.threshold[k] if ordered else None
    reasons: list[str] = []
    severe = went_constant = False
    if distance_over:
        reasons.append(f"{method} {score:.3g} > {threshold:.3g}")
        severe |= score >= 2.5 * figures.threshold[k]
    if mean_moved:
        moved_by = figures.shift[k]
        reasons.insert(0, f"mean {moved_by:+.2f} std")
        severe |= abs(moved_by) >= 0.5
    if spread_moved:
        ratio, went_constant = figures.ratio[k], figures.constant[k]
        reasons.insert(int(mean_moved), "constant" if went_constant else f"spread x{math.exp(ratio):.2f}")
        severe |= went_constant or abs(ratio) >= math.log(1.5)
    if moved is not None:
        b, before, after = moved
        shown = "constant, " if figures.constant[k] and not went_constant else ""
        label = base.bin_labels[k][b] if b < len(base.bin_labels[k]) else NEW_VALUES
        reasons.append(f"{shown}{label}: {before:.1%} -> {after:.1%}")
        severe |= abs(after - before) >= SEVERE_SHARE_CHANGE
    drifted, status = verdict(reasons, severe)
    reason = ", ".join(reasons) if drifted else None
    if drifted and threshold is not None and not distance_over:
        reason = f"{reason}; {_under_threshold(method, score, threshold)}"
    return reason, drifted, status


def _under_threshold(method: str, score: float, threshold: float) -> str:
    """A distance shown beside what another test found: worded so that it does not read as the trigger, as
    ``tv 0.0754 (threshold 0.0975)`` did after a share that moved."""
    return f"{method} {score:.3g}, under its threshold {threshold:.3g}"


def _columns(base: Baseline, pick: np.ndarray) -> Baseline:
    from .calibration import _subset

    return _subset(base, pick)


def _categorical(
    base: Baseline, cal: Calibration, k: int, j: int, column: np.ndarray, rows: int, factor: float, repeats: Repeats | None
) -> FeatureDrift:
    method = base.methods[j]
    if rows == 0:
        return FeatureDrift(Status.INSUFFICIENT_DATA, False, method, None, None, 0, "no values in the window")
    reference = base.cat_props[k]
    fold = base.folds[k]
    codes = column[~np.isnan(column)].astype(np.intp)
    binned = np.where(codes < 0, len(reference) - 1, fold[np.maximum(codes, 0)] if len(fold) else 0)
    counts = np.bincount(binned, minlength=len(reference))
    props = counts / rows
    score = categorical_distance(method, props, reference)
    threshold = cal.distance_threshold(j, method, factor)
    present = np.array([rows])
    judged, present = (repeats.scaled(counts), repeats.scaled(present, kept=True)) if repeats else (counts, present)
    [(shares_p, moved)] = share_tests([judged], present, (base.cat_counts[k],), base.present[j : j + 1], cal.level)
    reasons = []
    severe = False
    if moved is not None:
        b, before, after = moved
        reasons.append(f"{base.cat_labels[k][b]} {before:.1%} -> {after:.1%}")
        severe |= abs(after - before) >= SEVERE_SHARE_CHANGE
    if score > threshold:
        if not reasons:
            b = int(np.argmax(np.abs(props - reference)))
            reasons.append(f"{base.cat_labels[k][b]} {reference[b]:.1%} -> {props[b]:.1%}")
        reasons.append(f"{method} {score:.3g} > {threshold:.3g}")
        severe |= score >= 2.5 * threshold
    drifted, status = verdict(reasons, severe)
    reason = ", ".join(reasons) if drifted else None
    if drifted and score <= threshold:  # the share test decided: the distance is context
        reason = f"{reason}; {_under_threshold(method, score, threshold)}"
    return FeatureDrift(
        status=status,
        drifted=drifted,
        method=method,
        score=rounded(score),
        threshold=rounded(threshold),
        rows=rows,
        reason=reason,
        psi=rounded(psi(props, reference)),
        js=rounded(jensen_shannon(props, reference)),
        tv=rounded(float(np.abs(props - reference).sum() / 2)),
        shares_p=significant(shares_p),
    )
