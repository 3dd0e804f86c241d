"""Data quality: missing values, out-of-range values, unseen categories, constant columns and wrong types.

:func:`quality_check` is a pure function of (baseline, window) returning a
:class:`~guarded_serving.health.CheckResult` whose details hold one typed entry per feature.
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..health import CheckResult, Status
from .baseline import Baseline
from .columns import WindowColumns, rounded, verdict
from .exceedance import outside_tail
from .hypergeometric import upper_tail
from .repeats import Repeats
from .statistics import binomial_sf, common_share_bound
from .window import UNSEEN, WindowData

__all__ = ["ALPHA_QUALITY", "FeatureQuality", "QualityDetails", "fingerprint", "quality_check"]

ALPHA_QUALITY = 0.0025


def fingerprint(value: str) -> str:
    """A short, stable stand-in for an input value that must not appear in a report."""
    return "#" + hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:8]


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
    refused_missing: int = 0  # recent requests refused for a missing value (null) the model cannot take here
    refused_range: int = 0  # ... and for a number far beyond the reference's (10^9 times its largest magnitude)


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


@dataclass(frozen=True, eq=False)
class _Expected:
    """What the quality check takes from a baseline on every call, computed once per baseline (see :func:`_expected`)."""

    reference_count: np.ndarray  # per feature: the reference's rows (at least 1)
    reference_missing_count: np.ndarray  # per feature: how many of them had no value
    reference_values: np.ndarray  # per numeric feature: how many values the reference range was taken from
    unseen_rate: np.ndarray  # per categorical feature: a fresh value's chance to be a category never seen, at its upper bound
    several_levels: np.ndarray  # per categorical feature: the reference saw more than one category
    log_top: np.ndarray  # per feature: log of the reference's most common value's share (floored at 1e-300)
    top_bound: np.ndarray  # per feature: that share plus three of its standard errors and 1/m (at most 1)
    top_below_one: np.ndarray  # per feature: that share is below 1 (the feature was not constant in the reference)
    numeric_position: dict[int, int]  # feature -> its row among the numeric features
    categorical_position: dict[int, int]
    reference_missing: list[float]  # per feature: the reference's missing rate, as reported (4 digits)
    clean: dict[int, FeatureQuality]  # per numeric feature: its entry with no value missing or outside (immutable, shared)


_EXPECTED: weakref.WeakKeyDictionary[Baseline, _Expected] = weakref.WeakKeyDictionary()


def _expected(base: Baseline) -> _Expected:
    """The baseline's part of every quality check, computed on the first check of that baseline (a baseline is
    immutable, and these Python loops over its profiles cost ~0.1 ms a check)."""
    known = _EXPECTED.get(base)
    if known is not None:
        return known
    m = np.array([max(float(p.count), 1.0) for p in base.profiles])
    p_ref = base.missing_rate
    top = np.clip(base.top_share, 1e-300, 1.0)
    expected = _Expected(
        reference_count=m,
        reference_missing_count=np.round(p_ref * m),
        reference_values=np.round(base.present[base.num_idx]),
        unseen_rate=_unseen_bound(base),
        several_levels=np.array([len(base.profiles[j].categories) for j in base.cat_idx]) > 1,
        log_top=np.log(top),
        top_bound=common_share_bound(top, m),
        top_below_one=top < 1.0,
        numeric_position={int(j): k for k, j in enumerate(base.num_idx)},
        categorical_position={int(j): k for k, j in enumerate(base.cat_idx)},
        reference_missing=[round(r, 4) for r in p_ref.tolist()],
        clean={int(j): FeatureQuality(Status.OK, False, (), 0.0, round(float(p_ref[j]), 4), 0.0) for j in base.num_idx},
    )
    _EXPECTED[base] = expected
    return expected


def _unseen_bound(base: Baseline) -> np.ndarray:
    """Per categorical feature, how often a fresh value may be a category the reference never saw: Good-Turing's
    ``(N_1 + 1) / (m + 1)`` plus three of its standard errors, ``sqrt(N_1 + 2 N_2) / m`` (``N_r`` categories seen
    ``r`` times). That estimate varies from reference to reference about as much as the window's count does:
    taken as exact, it flagged unseen categories on one healthy window in six for a 150-row reference of 30
    Zipf categories. ``N_1 + 2 N_2`` is the reference count of the last bin (drift/baseline.py)."""
    m = base.present[base.cat_idx]
    rare = np.array([counts[-1] if len(counts) else 0.0 for counts in base.cat_counts], dtype=float)
    rate = (base.singletons[base.cat_idx] + 1) / (m + 1) + 3 * np.sqrt(rare) / np.maximum(m, 1)
    return np.asarray(np.minimum(rate, 1.0))


def _improbable(count: np.ndarray, trials: np.ndarray | int, rate: np.ndarray, limit: float) -> np.ndarray:
    """Whether ``count`` or more of ``trials`` is less likely than ``limit`` at ``rate``: ``binom.sf(count - 1, trials,
    rate) < limit``, by :func:`~guarded_serving.drift.statistics.binomial_sf` (its values without scipy.stats'
    argument handling, ~0.07 ms a call)."""
    return np.asarray(binomial_sf(count - 1, np.asarray(trials), rate) < limit)


def _more_missing(missing: np.ndarray, n: int, expected: _Expected, limit: float, at: np.ndarray) -> np.ndarray:
    """Whether the window's ``missing`` of ``n`` values are more than the reference's missing count makes likely:
    Fisher's exact test of the two counts (given how many are missing in both, the window's count is hypergeometric
    when both come from one missing rate), so that the reference's own noise counts exactly.

    The reference's rate plus three of its standard errors, estimated at that rate, and 1/m, taken as exact, flagged
    one healthy check in five for 20 features 3 % missing, a 150-row reference and a window of 1,000 rows (exactly:
    a feature one check in 98, its limit one in 24,000): a reference that happened to hold none or one missing value
    of its 150 set a bound below the true rate (tests/drift/test_missing_rate.py). Only the features ``at`` (those
    whose rate rose by the minimum effect: usually none, and the test costs ~10 us a feature)."""
    m, j = expected.reference_count[at], expected.reference_missing_count[at]
    with np.errstate(invalid="ignore", divide="ignore"):
        tail = upper_tail(missing, m + n, j + missing, np.full(len(m), n))
    return np.asarray(tail < limit)


def quality_check(
    base: Baseline,
    window: WindowColumns,
    data: WindowData,
    min_rows: int,
    alpha: float = ALPHA_QUALITY,
    skip: frozenset[str] = frozenset(),
    reveal: bool = False,
    repeats: Repeats | None = None,
) -> CheckResult:
    """Missing values, out-of-range values, unseen categories, constant columns and wrong types; the chance of
    what a window holds is that of the independent rows it is worth when its rows repeat (``repeats``).

    Unseen categories are input values: unless ``reveal``, they are shown as short fingerprints
    (``#`` and 8 hex digits of their SHA-256), which match the same value across reports.
    """
    n = window.rows
    if n < min_rows:
        details = QualityDetails(n, min_rows, alpha, {})
        summary = f"{n} rows in the window; quality is judged from {min_rows}."
        return CheckResult("data_quality", Status.INSUFFICIENT_DATA, summary, details)
    expected = _expected(base)
    limit = alpha / max(3 * base.width, 1)
    present = window.present
    missing = n - present
    p_ref = base.missing_rate
    rate = missing / n
    worth = _worth(repeats)
    missing_flag = rate - p_ref >= 0.02
    if missing_flag.any():
        rows = worth(np.array([n]))[0]
        missing_flag[missing_flag] = _more_missing(worth(missing)[missing_flag], rows, expected, limit, missing_flag)
    # numeric: values outside the reference range
    num = window.numeric
    num_present = present[base.num_idx]
    outside = _outside(num, num_present, base.minimum, base.maximum)
    out_share = outside / np.maximum(num_present, 1)
    out_flag = out_share >= 0.01
    if out_flag.any():  # the exact chance of so many outside the range of that many values (drift/exceedance.py)
        out_flag &= outside_tail(worth(outside), worth(num_present), expected.reference_values) < limit
    last = np.maximum(num_present - 1, 0)
    span = num[np.arange(len(num_present)), last] - num[:, 0] if num.size else np.zeros(0)
    constant = np.zeros(base.width, dtype=bool)
    constant[base.num_idx] = (num_present >= 20) & base.has_spread & (span == 0)
    # categorical: unseen categories (expected rate from the reference's singletons, Good-Turing)
    unseen_count, unseen_share, unseen_flag = _unseen(base, window, data, expected, limit, constant, worth)
    constant &= expected.top_below_one & (worth(present) * expected.log_top < math.log(limit))  # too unlikely by chance
    run = _newest_run(base, data.inputs)
    stuck = _stuck(run, expected, limit, repeats) & ~constant & expected.top_below_one
    constant |= stuck
    features: dict[str, FeatureQuality] = {}
    numeric_position, categorical_position = expected.numeric_position, expected.categorical_position
    # Python numbers for the loop, taken from the arrays at once (indexing numpy arrays per feature cost ~0.3 ms)
    missing_flag_, missing_, rate_, p_ref_ = (a.tolist() for a in (missing_flag, missing, rate, p_ref))
    out_share_, out_flag_, constant_, stuck_ = out_share.tolist(), out_flag.tolist(), constant.tolist(), stuck.tolist()
    unseen_count_ = unseen_count.tolist()
    reference_missing, clean = expected.reference_missing, expected.clean
    for j, name in enumerate(base.names):
        if name in skip:
            continue
        k = numeric_position.get(j)
        errors = int(data.type_errors.get(j, 0)) if data.type_errors else 0
        refused = int(data.refused_missing.get(j, 0)) if data.refused_missing else 0
        beyond = int(data.refused_range.get(j, 0)) if data.refused_range else 0
        refusals = errors or refused or beyond
        if k is not None and not (missing_flag_[j] or out_flag_[k] or constant_[j] or refusals):  # the common case
            share = out_share_[k]
            if rate_[j] == 0.0 and share == 0.0:
                features[name] = clean[j]
            else:
                out_of_range = round(share, 4) if math.isfinite(share) else None
                features[name] = FeatureQuality(Status.OK, False, (), round(rate_[j], 4), reference_missing[j], out_of_range)
            continue
        problems: list[str] = []
        severe = False
        if missing_flag_[j]:
            problems.append("all values missing" if missing_[j] == n else f"{rate_[j]:.0%} missing (reference {p_ref_[j]:.0%})")
            severe |= missing_[j] == n or rate_[j] - p_ref_[j] >= 0.2
        share = None
        unseen = None
        if k is not None:
            share = out_share_[k]
            if out_flag_[k]:
                problems.append(
                    f"{share:.0%} of values outside the reference range [{base.minimum[k]:.4g}, {base.maximum[k]:.4g}]"
                )
                severe |= share >= 0.1
        else:
            k = categorical_position[j]
            names = data.unseen.get(j, {})
            if unseen_count_[k]:
                unseen = {(nm if reveal else fingerprint(nm)): c for nm, c in sorted(names.items(), key=lambda kv: -kv[1])[:10]}
            if unseen_flag[k]:
                problems.append(_unseen_problem(len(names), int(unseen_count_[k]), unseen or {}))
                severe |= bool(unseen_share[k] >= 0.1)
        if constant_[j]:
            since = f" (its newest {run[j]} values)" if stuck_[j] else ""
            problems.append(f"the feature went constant{since}")
            severe = True
        if errors:
            problems.append(f"{errors} value{'s' if errors != 1 else ''} of the wrong type")
        if refused:
            problems.append(f"{refused} request{'s' if refused != 1 else ''} refused for a missing value (null)")
        if beyond:
            problems.append(f"{beyond} request{'s' if beyond != 1 else ''} refused for a number far beyond the reference's")
        _, status = verdict(problems, severe)
        features[name] = FeatureQuality(
            status=status,
            drifted=bool(problems),
            problems=tuple(problems),
            missing_rate=round(rate_[j], 4),
            reference_missing_rate=reference_missing[j],
            out_of_range=rounded(share),
            unseen=unseen,
            constant=constant_[j],
            type_errors=errors,
            refused_missing=refused,
            refused_range=beyond,
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


def _unseen(
    base: Baseline,
    window: WindowColumns,
    data: WindowData,
    expected: _Expected,
    limit: float,
    constant: np.ndarray,
    worth: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per categorical feature: unseen values, their share, whether that is improbable; marks in ``constant`` the
    categorical features that went constant."""
    cat = window.categorical
    if not cat.size:
        empty = np.zeros(len(base.cat_idx))
        return empty.astype(np.intp), empty, empty.astype(bool)
    unseen_count = (cat == UNSEEN).sum(axis=1)
    cat_present = window.present[base.cat_idx]
    unseen_share = unseen_count / np.maximum(cat_present, 1)
    unseen_flag = (unseen_share >= 0.005) & _improbable(worth(unseen_count), worth(cat_present), expected.unseen_rate, limit)
    first = cat[np.arange(len(cat)), np.argmax(~np.isnan(cat), axis=1)]  # first present value
    same = np.where(np.isnan(cat), first[:, None], cat) == first[:, None]
    cat_constant = (cat_present >= 20) & expected.several_levels & same.all(axis=1)
    for k, j in enumerate(base.cat_idx):  # unseen values all encode to one code: constant only if one value was seen
        if cat_constant[k] and first[k] == UNSEEN:
            cat_constant[k] = len(data.unseen.get(int(j), {})) == 1
    constant[base.cat_idx] = cat_constant
    return unseen_count, unseen_share, unseen_flag


RUN_MIN = 20  # values in a row one value holds before a run is judged (as many as a whole constant window needs)
RUN_LOOKED = 200  # the newest rows looked at for a run


def _newest_run(base: Baseline, inputs: np.ndarray) -> np.ndarray:
    """Per feature: how many of the window's newest values in a row (at most RUN_LOOKED) equal its newest one; 0
    when that is missing, or an unseen category (the unseen-category test's business)."""
    rows = inputs[-RUN_LOOKED:]
    if not len(rows):
        return np.zeros(base.width, dtype=np.intp)
    newest = rows[-1]
    differs = rows[::-1] != newest  # a missing value differs from everything, itself included: a run of 0
    run = np.where(differs.any(axis=0), differs.argmax(axis=0), len(rows))
    run[base.cat_idx[newest[base.cat_idx] == UNSEEN]] = 0
    return np.asarray(run)


def _stuck(run: np.ndarray, expected: _Expected, limit: float, repeats: Repeats | None) -> np.ndarray:
    """Per feature: whether its newest ``run`` values in a row are one value more often than chance allows: a
    feature that went constant while the window's older rows still vary (the whole-window test waited until every
    row held it: 1,000 rows after a sensor stuck, for a window of 1,000). The chance of one more equal value is at
    most the reference's most common share (at its upper bound), plus 1/N when the stream replays a pool of N rows
    (drift.repeats)."""
    share = expected.top_bound if repeats is None else np.minimum(expected.top_bound + 1 / repeats.pool, 1.0)
    with np.errstate(divide="ignore"):
        return np.asarray((run >= RUN_MIN) & (share < 1) & ((run - 1) * np.log(share) < math.log(limit)))


def _worth(repeats: Repeats | None) -> Callable[[np.ndarray], np.ndarray]:
    """Counts of the window as many as its independent rows would hold (``repeats``: drift.repeats), or as they are."""
    if repeats is None or not repeats.replayed:
        return lambda counts: counts
    return lambda counts: repeats.scaled(counts, kept=True)


EDGE = 8  # values looked at first at each end of a sorted row


def _outside(sorted_rows: np.ndarray, present: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per row of sorted values (missing ones last), how many are below ``low`` or above ``high`` (of the row).

    Only rows whose smallest or largest value is outside are looked at, and in those only the EDGE values at each
    end, where the outside ones are; a row with EDGE outside at an end is compared whole. Comparing all 128,000
    values of 64 features x 2,000 rows cost ~0.3 ms, two binary searches per row ~0.2 ms for the ~20 rows with
    a value outside, a copy of those rows ~0.1 ms. A missing value (NaN) is neither below nor above.
    """
    outside = np.zeros(len(present), dtype=np.intp)
    if not sorted_rows.size:
        return outside
    last = np.maximum(present - 1, 0)
    some = np.flatnonzero((sorted_rows[:, 0] < low) | (sorted_rows[np.arange(len(present)), last] > high))
    if not len(some):
        return outside
    low_some, high_some = low[some, None], high[some, None]
    below = (sorted_rows[some, :EDGE] < low_some).sum(axis=1)
    ends = last[some, None] - np.arange(EDGE)  # the last EDGE present values, those before the row's start left out
    tail = np.take(sorted_rows, some[:, None] * sorted_rows.shape[1] + np.maximum(ends, 0))
    above = ((tail > high_some) & (ends >= 0)).sum(axis=1)
    outside[some] = below + above
    for k in some[(below == EDGE) | (above == EDGE)].tolist():  # more may be outside than the ends held
        outside[k] = int(((sorted_rows[k] < low[k]) | (sorted_rows[k] > high[k])).sum())
    return outside
