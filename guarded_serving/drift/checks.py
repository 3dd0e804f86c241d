"""Data drift, prediction drift and data quality: the checks that judge the window.

Each is a pure function of (baseline, calibration, window) returning a
:class:`~guarded_serving.health.CheckResult` whose details hold one typed entry per feature.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from ..health import BaselineSource, CheckResult, Status
from .baseline import Baseline
from .calibration import MIN_EFFECT, Calibration, categorical_distance, numeric_distance
from .statistics import (
    GRID,
    jensen_shannon,
    jensen_shannon_rows,
    location_shift,
    log_spread_ratio,
    psi,
    psi_rows,
    quantile_spread,
    quantiles,
    share_p_values,
    wasserstein,
)
from .window import UNSEEN, WindowData

__all__ = ["DriftDetails", "FeatureDrift", "FeatureQuality", "QualityDetails", "WindowColumns", "drift_check", "quality_check"]

ALPHA_DATA = 0.004
ALPHA_PREDICTION = 0.0015
ALPHA_QUALITY = 0.0025


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's drift verdict. ``score``/``threshold`` are the primary method's.

    ``mean_shift_std`` is the shift of the 2 %-trimmed mean in reference standard deviations and
    ``spread_ratio`` the ratio of robust spreads (about the ratio of standard deviations for
    well-behaved data); both are what the location and spread tests judge. ``shares_p`` is the p-value
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


@dataclass(frozen=True, slots=True)
class DriftDetails:
    rows: int
    min_rows: int
    alpha: float
    features: dict[str, FeatureDrift]
    baseline: BaselineSource | None = None


def _r(x: float | np.floating | None, digits: int = 4) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), digits)


def _significant(p: float | None) -> float | None:
    """A p-value to three significant digits (a tiny one stays tiny, not 0)."""
    return None if p is None or not math.isfinite(p) else float(f"{p:.3g}")


@dataclass(frozen=True, eq=False)
class WindowColumns:
    """A window laid out once for all checks: one contiguous row per feature, numeric ones sorted
    (missing values, NaN, sort last), and the count of present values per feature."""

    rows: int
    present: np.ndarray  # per feature
    numeric: np.ndarray  # numeric features x rows, each sorted
    categorical: np.ndarray  # categorical features x rows, codes as in the window

    @classmethod
    def of(cls, matrix: np.ndarray, base: Baseline) -> WindowColumns:
        by_feature = np.array(matrix.T, order="C")  # always a copy: the window's arrays may be shared or read-only
        numeric = by_feature if len(base.num_idx) == base.width else by_feature[base.num_idx]
        numeric.sort(axis=1)  # in place: both are this function's own copies
        categorical = by_feature[base.cat_idx]
        present = np.empty(base.width, dtype=np.intp)
        present[base.num_idx] = (~np.isnan(numeric)).sum(axis=1)
        present[base.cat_idx] = (~np.isnan(categorical)).sum(axis=1)
        return cls(matrix.shape[0], present, numeric, categorical)


def drift_check(
    name: str,
    base: Baseline,
    cal: Calibration,
    window: WindowColumns,
    min_rows: int,
    what: str = "features",
    skip: frozenset[str] = frozenset(),
    baseline: BaselineSource | None = None,
) -> CheckResult:
    """Judge every feature of the window against the baseline (``baseline`` says what it is, for the report)."""
    n = window.rows
    said = f"; {baseline.describe()}" if baseline is not None and baseline.since is not None else ""
    if n < min_rows:
        details = DriftDetails(n, min_rows, cal.alpha, {}, baseline)
        return CheckResult(name, Status.INSUFFICIENT_DATA, f"{n} rows in the window; drift is judged from {min_rows}.", details)
    present = window.present
    factor = cal.widen(present, base.reference_sizes())
    features: dict[str, FeatureDrift] = {}
    if len(base.num_idx):
        features.update(_numeric(base, cal, window.numeric, present[base.num_idx], factor[base.num_idx]))
    for k, j in enumerate(base.cat_idx):
        features[base.names[j]] = _categorical(base, cal, k, int(j), window.categorical[k], int(present[j]), float(factor[j]))
    ordered = {nm: features[nm] for nm in base.names if nm not in skip}  # redacted features are not judged
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
    base: Baseline, cal: Calibration, sorted_t: np.ndarray, present: np.ndarray, factor: np.ndarray
) -> dict[str, FeatureDrift]:
    ordered = sorted_t.T  # rows x features view, as the statistics expect
    cols = np.arange(sorted_t.shape[0])
    last = np.maximum(present - 1, 0)
    constant = (present >= 2) & (sorted_t[cols, last] == sorted_t[:, 0]) if sorted_t.shape[1] else np.zeros(len(cols), bool)
    q = quantiles(ordered, present, GRID)
    shift = location_shift(q, base.ref_quantiles, base.scale)
    ratio = log_spread_ratio(quantile_spread(q), np.where(base.has_spread, base.spread, np.nan))
    w1 = wasserstein(q, base.ref_quantiles, base.scale)
    methods = base.numeric_methods
    primary = w1.copy()
    for method in set(methods) - {"wasserstein"}:
        pick = np.array([k for k, m in enumerate(methods) if m == method])
        primary[pick] = numeric_distance(method, ordered[:, pick], present[pick], _columns(base, pick))
    counts = [_bin_counts(sorted_t[k, : present[k]], base.edges[k]) for k in cols]
    window_bins = np.zeros_like(base.bin_matrix)
    for k in cols:
        window_bins[k, : len(counts[k])] = counts[k] / max(present[k], 1)
    psi_all = psi_rows(window_bins, base.bin_matrix)
    js_all = jensen_shannon_rows(window_bins, base.bin_matrix)
    window_counts, reference_counts = _with_new_values(base, sorted_t, present, counts)
    shares = _shares(window_counts, present, reference_counts, base.present[base.num_idx], cal.level)
    spread_testable = base.has_spread & _spread_testable(base.top_share[base.num_idx], base.present[base.num_idx], present, cal)
    every = np.ones(base.width)
    every[base.num_idx] = present
    spread_centre = cal.spread_centre(every, base.reference_sizes())[base.num_idx]
    out: dict[str, FeatureDrift] = {}
    for k in cols:
        j = int(base.num_idx[k])
        name = base.names[j]
        method = methods[k]
        rows = int(present[k])
        if rows < 2:
            out[name] = FeatureDrift(Status.INSUFFICIENT_DATA, False, method, None, None, rows, "no values in the window")
            continue
        f = float(factor[k])
        score = float(primary[k])
        threshold = cal.distance_threshold(j, method, f) if base.ordered[k] else None
        reasons: list[str] = []
        severe = False
        if base.ordered[k]:
            if threshold is not None and score > threshold:
                reasons.append(f"{method} {score:.3g} > {threshold:.3g}")
                severe |= score >= 2.5 * threshold
            mean_limit = cal.z_two_sided * cal.mean_sd[j] * f
            if abs(shift[k] - cal.mean_mu[j]) > mean_limit and abs(shift[k]) >= MIN_EFFECT["mean"]:
                reasons.insert(0, f"mean {shift[k]:+.2f} std")
                severe |= abs(shift[k]) >= 0.5
            if spread_testable[k]:
                spread_limit = cal.z_two_sided * cal.scale_sd[j] * f  # on the spread score's scale (see spread_score)
                centred = math.exp(2 / 3 * ratio[k]) - spread_centre[k]
                if abs(centred) > spread_limit and abs(ratio[k]) >= MIN_EFFECT["scale"]:
                    after_mean = 1 if reasons and reasons[0].startswith("mean") else 0  # location, spread, then distance
                    reasons.insert(after_mean, "constant" if constant[k] else f"spread x{math.exp(ratio[k]):.2f}")
                    severe |= bool(constant[k]) or abs(ratio[k]) >= math.log(1.5)
        shares_p, moved = shares[k] if base.shares_tested[k] else (None, None)
        if moved is not None:
            b, before, after = moved
            shown = "constant, " if constant[k] and not any(r == "constant" for r in reasons) else ""
            label = base.bin_labels[k][b] if b < len(base.bin_labels[k]) else NEW_VALUES
            reasons.append(f"{shown}{label} {before:.1%} -> {after:.1%}")
            severe |= abs(after - before) >= SEVERE_SHARE_CHANGE
        drifted = bool(reasons)
        status = Status.ALERT if drifted and severe else Status.WARN if drifted else Status.OK
        reason = ", ".join(reasons) if drifted else None
        if drifted and threshold is not None and not any(r.startswith(method) for r in reasons):
            reason = f"{reason}; {method} {score:.3g} (threshold {threshold:.3g})"
        out[name] = FeatureDrift(
            status=status,
            drifted=drifted,
            method=method,
            score=_r(score),
            threshold=_r(threshold),
            rows=rows,
            reason=reason,
            mean_shift_std=_r(shift[k]),
            spread_ratio=0.0 if constant[k] else _r(math.exp(ratio[k])) if base.has_spread[k] else None,
            wasserstein=_r(w1[k]),
            psi=_r(psi_all[k]),
            js=_r(js_all[k]),
            shares_p=_significant(shares_p),
        )
    return out


SEVERE_SHARE_CHANGE = 0.1  # a bin's share moving by 10 points is an alert, not a warning
NEW_VALUES = "values the reference never had"


def _with_new_values(
    base: Baseline, sorted_t: np.ndarray, present: np.ndarray, counts: list[np.ndarray]
) -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
    """Bin counts of the window and the reference, with one more bin for a discrete feature: its values the
    reference never had (a count shifted by a fraction stays in its bins, but not on the reference's values).
    The reference's values seen once move from their bins to it: the Good-Turing estimate of a new value."""
    window, reference = [], []
    for k, (found, ref) in enumerate(zip(counts, base.bin_counts, strict=True)):
        lattice = base.lattice[k]
        if not len(lattice):
            window.append(found)
            reference.append(ref)
            continue
        values = sorted_t[k, : present[k]]
        new = ~np.isin(values.astype(np.float32), lattice)
        known = _bin_counts(values[~new], base.edges[k])
        window.append(np.append(known, new.sum()))
        once = base.lattice_once[k]
        reference.append(np.append(np.maximum(ref - once, 0.0), once.sum()))
    return window, tuple(reference)


def _spread_testable(top_share: np.ndarray, reference: np.ndarray, present: np.ndarray, cal: Calibration) -> np.ndarray:
    """Where a window whose central 96 % is one value would be evidence: its chance under the reference.

    A sparse or near-constant feature's window often holds nothing but its common value in the trimmed
    range (a spread of zero) by chance alone; there, a zero spread says nothing, and the value shares
    test judges the feature. The chance uses an upper bound of the common value's share (its
    reference estimate plus three standard errors), as the quality check's constant test does.
    """
    top = np.clip(
        top_share + 3 * np.sqrt(top_share * (1 - top_share) / np.maximum(reference, 1)) + 1 / np.maximum(reference, 1), 0, 1
    )
    needed = np.ceil(0.96 * present) - 1
    return np.asarray(binom.sf(needed, present, top) < cal.level)


def _shares(
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


def fingerprint(value: str) -> str:
    """A short, stable stand-in for an input value that must not appear in a report."""
    return "#" + hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:8]


def _bin_counts(sorted_present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Values of a sorted column in each reference bin (bin i holds edges[i-1] <= v < edges[i])."""
    positions = np.searchsorted(sorted_present, edges, side="left")
    return np.diff(np.concatenate([[0], positions, [len(sorted_present)]]))


def _columns(base: Baseline, pick: np.ndarray) -> Baseline:
    from .calibration import _subset

    return _subset(base, pick)


def _categorical(base: Baseline, cal: Calibration, k: int, j: int, column: np.ndarray, rows: int, factor: float) -> FeatureDrift:
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
    [(shares_p, moved)] = _shares([counts], np.array([rows]), (base.cat_counts[k],), base.present[j : j + 1], cal.level)
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
    elif reasons:
        reasons.append(f"{method} {score:.3g} (threshold {threshold:.3g})")
    drifted = bool(reasons)
    status = Status.ALERT if drifted and severe else Status.WARN if drifted else Status.OK
    return FeatureDrift(
        status=status,
        drifted=drifted,
        method=method,
        score=_r(score),
        threshold=_r(threshold),
        rows=rows,
        reason=", ".join(reasons) if drifted else None,
        psi=_r(psi(props, reference)),
        js=_r(jensen_shannon(props, reference)),
        tv=_r(float(np.abs(props - reference).sum() / 2)),
        shares_p=_significant(shares_p),
    )


@dataclass(frozen=True, slots=True)
class FeatureQuality:
    """One feature's data quality in the window."""

    status: Status
    drifted: bool
    problems: tuple[str, ...]
    missing_rate: float
    reference_missing_rate: float
    out_of_range: float | None = None
    unseen: dict[str, int] | None = None
    constant: bool = False
    type_errors: int = 0


@dataclass(frozen=True, slots=True)
class QualityDetails:
    rows: int
    min_rows: int
    alpha: float
    features: dict[str, FeatureQuality]


def _unseen_problem(distinct: int, values: int, shown: dict[str, int]) -> str:
    """``1 unseen category ('#76a79620' x117)``, ``3 unseen categories in 150 values ('#..' x100, ...)``.

    ``distinct`` counts the names remembered (at most MAX_UNSEEN_NAMES per chunk: a lower bound), ``values``
    the window's values that were unseen categories.
    """
    listed = ", ".join(f"{nm!r} x{c}" for nm, c in list(shown.items())[:3]) + (", ..." if len(shown) > 3 else "")
    if distinct <= 1:
        return f"1 unseen category ({listed})"
    return f"{distinct} unseen categories in {values} values ({listed})"


def quality_check(
    base: Baseline,
    window: WindowColumns,
    data: WindowData,
    min_rows: int,
    alpha: float = ALPHA_QUALITY,
    skip: frozenset[str] = frozenset(),
    reveal: bool = False,
) -> CheckResult:
    """Missing values, out-of-range values, unseen categories, constant columns and wrong types.

    Unseen categories are input values: unless ``reveal``, they are shown as short fingerprints
    (``#`` and 8 hex digits of their SHA-256), which match the same value across reports.
    """
    n = window.rows
    if n < min_rows:
        details = QualityDetails(n, min_rows, alpha, {})
        summary = f"{n} rows in the window; quality is judged from {min_rows}."
        return CheckResult("data_quality", Status.INSUFFICIENT_DATA, summary, details)
    limit = alpha / max(3 * base.width, 1)
    present = window.present
    missing = n - present
    m = np.array([max(float(p.count), 1.0) for p in base.profiles])
    p_ref = base.missing_rate
    p_up = np.minimum(p_ref + 3 * np.sqrt(p_ref * (1 - p_ref) / m) + 1 / m, 1.0)
    rate = missing / n
    missing_flag = (rate - p_ref >= 0.02) & (binom.sf(missing - 1, n, p_up) < limit)
    # numeric: values outside the reference range (a fresh value lands there with probability 2/(m+1))
    num = window.numeric
    outside = ((num < base.minimum[:, None]) | (num > base.maximum[:, None])).sum(axis=1)
    num_present = present[base.num_idx]
    out_share = outside / np.maximum(num_present, 1)
    out_flag = (out_share >= 0.01) & (binom.sf(outside - 1, num_present, 2 / (base.present[base.num_idx] + 1)) < limit)
    last = np.maximum(num_present - 1, 0)
    span = num[np.arange(len(num_present)), last] - num[:, 0] if num.size else np.zeros(0)
    num_constant = (num_present >= 20) & base.has_spread & (span == 0)
    # categorical: unseen categories (expected rate from the reference's singletons, Good-Turing)
    cat = window.categorical
    unseen_count = (cat == UNSEEN).sum(axis=1)
    cat_present = present[base.cat_idx]
    unseen_share = unseen_count / np.maximum(cat_present, 1)
    p_unseen = (base.singletons[base.cat_idx] + 1) / (base.present[base.cat_idx] + 1)
    unseen_flag = (unseen_share >= 0.005) & (binom.sf(unseen_count - 1, cat_present, p_unseen) < limit)
    first = cat[np.arange(len(cat)), np.argmax(~np.isnan(cat), axis=1)] if cat.size else np.zeros(0)  # first present value
    cat_levels = np.array([len(base.profiles[j].categories) for j in base.cat_idx])
    same = np.where(np.isnan(cat), first[:, None], cat) == first[:, None] if cat.size else np.zeros((0, 0), dtype=bool)
    cat_constant = (cat_present >= 20) & (cat_levels > 1) & same.all(axis=1) if cat.size else np.zeros(0, dtype=bool)
    for k, j in enumerate(base.cat_idx):  # unseen values all encode to one code: constant only if one value was seen
        if cat_constant[k] and first[k] == UNSEEN:
            cat_constant[k] = len(data.unseen.get(int(j), {})) == 1
    constant = np.zeros(base.width, dtype=bool)
    constant[base.num_idx] = num_constant
    constant[base.cat_idx] = cat_constant
    top = np.clip(base.top_share, 1e-300, 1.0)
    constant &= (top < 1.0) & (present * np.log(top) < math.log(limit))  # too unlikely by chance
    features: dict[str, FeatureQuality] = {}
    num_pos = {int(j): k for k, j in enumerate(base.num_idx)}
    cat_pos = {int(j): k for k, j in enumerate(base.cat_idx)}
    for j, name in enumerate(base.names):
        if name in skip:
            continue
        problems: list[str] = []
        severe = False
        if missing_flag[j]:
            problems.append("all values missing" if missing[j] == n else f"{rate[j]:.0%} missing (reference {p_ref[j]:.0%})")
            severe |= bool(missing[j] == n or rate[j] - p_ref[j] >= 0.2)
        share = None
        unseen = None
        if j in num_pos:
            k = num_pos[j]
            share = float(out_share[k])
            if out_flag[k]:
                problems.append(
                    f"{share:.0%} of values outside the reference range [{base.minimum[k]:.4g}, {base.maximum[k]:.4g}]"
                )
                severe |= share >= 0.1
        else:
            k = cat_pos[j]
            names = data.unseen.get(j, {})
            if unseen_count[k]:
                unseen = {(nm if reveal else fingerprint(nm)): c for nm, c in sorted(names.items(), key=lambda kv: -kv[1])[:10]}
            if unseen_flag[k]:
                problems.append(_unseen_problem(len(names), int(unseen_count[k]), unseen or {}))
                severe |= bool(unseen_share[k] >= 0.1)
        if constant[j]:
            problems.append("the feature went constant")
            severe = True
        errors = int(data.type_errors.get(j, 0))
        if errors:
            problems.append(f"{errors} value{'s' if errors != 1 else ''} of the wrong type")
        status = Status.ALERT if problems and severe else Status.WARN if problems else Status.OK
        features[name] = FeatureQuality(
            status=status,
            drifted=bool(problems),
            problems=tuple(problems),
            missing_rate=round(float(rate[j]), 4),
            reference_missing_rate=round(float(p_ref[j]), 4),
            out_of_range=_r(share),
            unseen=unseen,
            constant=bool(constant[j]),
            type_errors=errors,
        )
    details = QualityDetails(n, min_rows, alpha, features)
    flagged = [(nm, f) for nm, f in features.items() if f.drifted]
    if not flagged:
        summary = f"No quality problem in {len(features)} features over the last {n} rows."
        return CheckResult("data_quality", Status.OK, summary, details)
    flagged.sort(key=lambda kv: kv[1].status.rank, reverse=True)
    status = Status.ALERT if any(f.status is Status.ALERT for _, f in flagged) else Status.WARN
    shown = "; ".join(f"{nm}: {', '.join(f.problems)}" for nm, f in flagged[:3])
    more = f" and {len(flagged) - 3} more" if len(flagged) > 3 else ""
    summary = f"{len(flagged)} of {len(features)} features have quality problems: {shown}{more}."
    return CheckResult("data_quality", status, summary, details)
