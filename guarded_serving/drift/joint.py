"""Joint drift: did the relations between features change, while each feature may still look like itself?

A join off by one row, two sensors recalibrated in opposite directions, a derived feature computed from
a stale partner: every column keeps its distribution, so per-feature checks are blind by construction,
but the correlations between columns move. This check compares every pair's correlation in the window
with the reference's, from the reference's :class:`~guarded_serving.rowsample.RowSample`:

1. **Scores that ignore the marginals.** Each numeric feature is clipped to its own 2 % and 98 %
   quantiles *in the sample at hand* (window or reference) and centred on its own mean, so a shift, a
   rescaling or a unit change of one feature (the data drift check's business) leaves its correlations
   as they were, and a few extreme values do not swing them. A categorical feature enters as indicators
   of its most common categories (up to three, each at least 5 % of the reference). Missing values drop
   out pair by pair: each correlation is taken over the rows where both values are present.
2. **The null spread of each pair from the reference itself.** The sampling variance of a correlation
   depends on the pair's joint shape (tails, ties, strength): it is computed per pair from the reference
   sample's fourth moments (the delta method for the correlation coefficient, on Fisher's z scale), for
   any window size. Windows of the configured size are resampled from the reference (as the per-feature
   calibration does) to measure how far the real spread departs from that formula (clipping at the
   window's own quantiles, small samples); the formula is scaled by that factor. The reference's own
   sampling noise is added, as for two independent samples.
3. **A family-wise budget.** The largest standardised change among all pairs is compared with the
   Bonferroni bound for :data:`ALPHA_JOINT` (0.05 % of health checks) over the number of pairs, and
   must also be a change of at least 0.1 in correlation. The pairs that clear both are named, most
   changed first; a change of 0.3 or more is an alert.

Cost per health check: one pass over the window (n rows x q columns, q at most :data:`MAX_COLUMNS`),
two or three q x q matrix products, O(q^2) after that. A wider model keeps the 64 columns with the
strongest relations in the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ..health import CheckResult, Status
from ..rowsample import RowSample
from .baseline import Baseline
from .checks import Columns

__all__ = ["ALPHA_JOINT", "FeatureJoint", "JointBaseline", "JointDetails", "PairChange", "joint_check"]

ALPHA_JOINT = 0.0005
MIN_CHANGE = 0.1  # in correlation: smaller changes are not flagged however sure
SEVERE_CHANGE = 0.3  # an alert from this change on, a warning below
MAX_COLUMNS = 64
LEVEL_SHARE = 0.05  # a category's reference share for it to get an indicator
MAX_LEVELS = 3  # indicators per categorical feature
MIN_REFERENCE_ROWS = 100
DRAWS = 100
MAX_DRAW_ROWS = 4000
TRIM = 0.02
SHOWN = 10  # changed pairs kept in the details
_LIMIT = 0.995  # correlations are clipped to +-this before Fisher's z
# Fresh windows of a correlated world vary up to 8 % more than the delta method says for pairs with |rho| of
# 0.3-0.6 (measured over 150 windows of 2,000 rows, 40 features), about half of which resampling the reference
# sample sees: every null spread is widened by 5 %, which at the ~5-sigma bound divides the tail by about 4.
MARGIN = 1.05


@dataclass(frozen=True, slots=True)
class PairChange:
    """One pair whose correlation moved: reference and window correlations, and the standardised change."""

    features: tuple[str, str]
    reference: float
    current: float
    z: float


@dataclass(frozen=True, slots=True)
class FeatureJoint:
    """One feature's part in the changed relations: its most changed pair's standardised change
    (``score``) against the bound, and the partner in that pair."""

    status: Status
    drifted: bool
    score: float | None
    threshold: float | None
    partner: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class JointDetails:
    rows: int
    min_rows: int
    alpha: float
    pairs: int
    threshold: float | None
    score: float | None
    changed: tuple[PairChange, ...]
    features: dict[str, FeatureJoint]


@dataclass(frozen=True, eq=False)
class JointBaseline:
    """What the joint check compares a window with, computed once per monitor (see the module docstring).

    Columns are numeric features (``levels[c] < 0``) or indicators of category ``levels[c]``;
    ``reason`` says why relations are not judged (then every array is empty).
    """

    reason: str | None
    names: tuple[str, ...]  # feature names judged, in reference order
    labels: tuple[str, ...]  # per column: its feature, or "feature='category'"
    feature_of: np.ndarray  # per column: index into the baseline's features
    name_of: np.ndarray  # per column: index into ``names``
    levels: np.ndarray  # per column: category code, or -1 for a numeric feature
    numeric_rank: np.ndarray  # per column: position of its feature among the baseline's numeric features (-1)
    left: np.ndarray  # the pairs judged, as column indices (left < right, different features)
    right: np.ndarray
    reference: np.ndarray  # per pair: correlation in the reference sample
    variance: np.ndarray  # per pair: one row's variance of Fisher's z (delta method), scaled by ``inflation``^2
    reference_rows: np.ndarray  # per pair: reference rows with both values present
    inflation: float  # the null spread measured on resampled windows / the delta method's (with the margin)
    window: int
    alpha: float
    threshold: float

    @classmethod
    def unjudged(cls, reason: str, window: int, alpha: float = ALPHA_JOINT) -> JointBaseline:
        empty = np.zeros(0, dtype=np.intp)
        none = np.zeros(0)
        return cls(reason, (), (), empty, empty, empty, empty, empty, empty, none, none, none, MARGIN, window, alpha, math.inf)

    @classmethod
    def fit(
        cls,
        sample: RowSample | None,
        base: Baseline,
        window: int,
        skip: frozenset[str] = frozenset(),
        alpha: float = ALPHA_JOINT,
        draws: int = DRAWS,
        seed: int = 20261129,
    ) -> JointBaseline:
        if sample is None:
            return cls.unjudged(
                "the reference has no row sample (saved by an older version; build it again with Reference.from_data).",
                window,
                alpha,
            )
        if sample.rows < MIN_REFERENCE_ROWS:
            return cls.unjudged(
                f"the reference's row sample holds {sample.rows} rows; relations need {MIN_REFERENCE_ROWS}.", window, alpha
            )
        where = {n: k for k, n in enumerate(sample.names)}
        matrix = sample.matrix
        numeric_rank = {int(j): k for k, j in enumerate(base.num_idx)}
        category_rank = {int(j): k for k, j in enumerate(base.cat_idx)}
        feature_of, levels = [], []
        for j, name in enumerate(base.names):
            if name in skip or name not in where:
                continue
            values = matrix[:, where[name]]
            present = values[~np.isnan(values)]
            if len(present) < MIN_REFERENCE_ROWS:
                continue
            if base.numeric[j]:
                if present.min() < present.max():
                    feature_of.append(j)
                    levels.append(-1)
                continue
            shares = base.cat_props[category_rank[j]][:-1]  # the last slot is for unseen categories
            kept = [k for k in range(min(len(shares), MAX_LEVELS)) if shares[k] >= LEVEL_SHARE]
            if len(kept) == len(shares):  # indicators of every category: the last one is implied by the others
                kept = kept[:-1]
            feature_of += [j] * len(kept)
            levels += kept
        if len(set(feature_of)) < 2:
            return cls.unjudged(
                "fewer than two features to relate (numeric with spread, or categorical with common categories).", window, alpha
            )
        feature_idx = np.array(feature_of, dtype=np.intp)
        level_arr = np.array(levels, dtype=np.intp)
        columns = matrix[:, [where[base.names[j]] for j in feature_of]]
        scores, present = _scores(columns, level_arr, *_bounds(columns, level_arr))
        if len(feature_idx) > MAX_COLUMNS:
            strength = np.abs(np.nan_to_num(_pairwise(scores, present)[0]))
            strength[feature_idx[:, None] == feature_idx[None, :]] = 0.0
            keep = np.sort(np.argsort(-strength.max(axis=1), kind="stable")[:MAX_COLUMNS])
            feature_idx, level_arr, columns = feature_idx[keep], level_arr[keep], columns[:, keep]
            scores, present = scores[:, keep], present[:, keep]
        left, right = np.triu_indices(len(feature_idx), k=1)
        different = feature_idx[left] != feature_idx[right]
        left, right = left[different], right[different]
        corr, rows = _pairwise(scores, present)
        rho = np.clip(corr[left, right], -_LIMIT, _LIMIT)
        variance = _delta_variance(scores, present, rho, left, right)
        judged = np.isfinite(rho) & np.isfinite(variance) & (rows[left, right] >= MIN_REFERENCE_ROWS)
        left, right, rho, variance = left[judged], right[judged], rho[judged], variance[judged]
        reference_rows = rows[left, right]
        if not len(left):
            return cls.unjudged(
                "no pair of features is present together often enough in the reference's row sample.", window, alpha
            )
        inflation = _inflation(columns, level_arr, left, right, rho, variance, window, draws, seed)
        names = tuple(dict.fromkeys(base.names[j] for j in feature_idx))
        position = {n: k for k, n in enumerate(names)}
        labels = tuple(
            base.names[j] if lv < 0 else f"{base.names[j]}={base.profiles[j].categories[lv][0]!r}"
            for j, lv in zip(feature_idx.tolist(), level_arr.tolist(), strict=True)
        )
        return cls(
            reason=None,
            names=names,
            labels=labels,
            feature_of=feature_idx,
            name_of=np.array([position[base.names[j]] for j in feature_idx], dtype=np.intp),
            levels=level_arr,
            numeric_rank=np.array(
                [numeric_rank.get(int(j), -1) if lv < 0 else -1 for j, lv in zip(feature_idx, level_arr, strict=True)],
                dtype=np.intp,
            ),
            left=left,
            right=right,
            reference=rho,
            variance=variance * inflation**2,
            reference_rows=reference_rows,
            inflation=inflation,
            window=window,
            alpha=alpha,
            threshold=float(norm.isf(alpha / (2 * len(left)))),
        )


def _bounds(columns: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each numeric column's clip bounds in this sample: its 2 % and 98 % order statistics (its minimum
    and maximum when those coincide); +-inf for indicator columns."""
    lo = np.full(columns.shape[1], -np.inf)
    hi = np.full(columns.shape[1], np.inf)
    numeric = np.flatnonzero(levels < 0)
    if len(numeric):
        ordered = np.sort(columns[:, numeric], axis=0)  # NaN last
        counts = (~np.isnan(ordered)).sum(axis=0)
        lo[numeric], hi[numeric] = _order_bounds(ordered.T, np.arange(len(numeric)), counts)
    return lo, hi


def _order_bounds(sorted_rows: np.ndarray, rows: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip bounds from sorted rows (``sorted_rows[rows[k]]`` holds column k's values, ``counts[k]`` present)."""
    last = np.maximum(counts - 1, 0)
    low = np.floor(TRIM * last).astype(np.intp)
    high = np.ceil((1 - TRIM) * last).astype(np.intp)
    lo = sorted_rows[rows, low]
    hi = sorted_rows[rows, high]
    same = lo == hi
    lo = np.where(same, sorted_rows[rows, 0], lo)
    hi = np.where(same, sorted_rows[rows, last], hi)
    return lo, hi


def _scores(columns: np.ndarray, levels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred scores (missing values as 0) and the present mask, for rows x columns of feature values."""
    present = ~np.isnan(columns)
    indicator = levels >= 0
    values = np.clip(columns, lo, hi)
    if indicator.any():
        values[:, indicator] = columns[:, indicator] == levels[indicator]
    values[~present] = 0.0
    counts = present.sum(axis=0)
    means = values.sum(axis=0) / np.maximum(counts, 1)
    values -= means
    values[~present] = 0.0
    return values, present


def _pairwise(scores: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of every pair of columns over the rows where both are present, and those rows' count."""
    products = scores.T @ scores
    with np.errstate(divide="ignore", invalid="ignore"):
        if present.all():
            squares = np.diag(products)
            corr = products / np.sqrt(np.outer(squares, squares))
            return corr, np.full(products.shape, float(len(scores)))
        mask = present.astype(np.float64)
        squares = (scores * scores).T @ mask  # [i, j]: column i's squares where j is present too
        corr = products / np.sqrt(squares * squares.T)
        return corr, mask.T @ mask


def _delta_variance(scores: np.ndarray, present: np.ndarray, rho: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One row's variance of Fisher's z of each pair's correlation, from the sample's moments.

    For standardised x, y with correlation rho, n var(r) -> E[(xy - rho (x^2 + y^2) / 2)^2] (the delta
    method; (1 - rho^2)^2 for normal data), and var(atanh r) = var(r) / (1 - rho^2)^2.
    """
    counts = np.maximum(present.sum(axis=0), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = scores / np.sqrt((scores * scores).sum(axis=0) / counts)
    z[~present] = 0.0
    mask = present.astype(np.float64)
    both = np.maximum(mask.T @ mask, 1.0)
    z2 = z * z
    m22 = (z2.T @ z2) / both
    m31 = ((z2 * z).T @ z) / both  # [i, j]: E[x_i^3 x_j]
    m40 = ((z2 * z2).T @ mask) / both  # [i, j]: E[x_i^4] where j is present
    i, j = left, right
    var_r = m22[i, j] - rho * (m31[i, j] + m31[j, i]) + rho**2 / 4 * (m40[i, j] + m40[j, i] + 2 * m22[i, j])
    return np.asarray(np.maximum(var_r, 1e-6) / (1 - rho**2) ** 2)


def _inflation(
    columns: np.ndarray,
    levels: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    rho: np.ndarray,
    variance: np.ndarray,
    window: int,
    draws: int,
    seed: int,
) -> float:
    """How much wider than the delta method the null spread of a window's Fisher z is, measured on ``draws``
    windows resampled from the reference sample (pooled over pairs and draws), times a margin of
    :data:`MARGIN` for what resampling a finite sample cannot see; never below the margin."""
    rng = np.random.default_rng(seed)
    size = min(window, MAX_DRAW_ROWS)
    target = np.arctanh(rho)
    total = 0.0
    count = 0
    for _ in range(draws):
        drawn = columns[rng.integers(0, len(columns), size)]
        scores, present = _scores(drawn, levels, *_bounds(drawn, levels))
        corr, rows = _pairwise(scores, present)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (np.arctanh(np.clip(corr[left, right], -_LIMIT, _LIMIT)) - target) ** 2 * rows[left, right] / variance
        ratio = ratio[np.isfinite(ratio)]
        total += float(ratio.sum())
        count += len(ratio)
    return MARGIN * max(math.sqrt(total / count), 1.0) if count else MARGIN


def joint_check(joint: JointBaseline, matrix: np.ndarray, columns: Columns, base: Baseline, min_rows: int) -> CheckResult:
    """Judge the relations between the window's features (``matrix``: rows x features, as the window
    holds them; ``columns``: the same window laid out for the per-feature checks)."""
    name = "joint_drift"
    n = int(matrix.shape[0])
    if joint.reason is not None:
        return CheckResult(name, Status.OK, f"Not judged: {joint.reason}")
    if n < min_rows:
        details = JointDetails(n, min_rows, joint.alpha, len(joint.left), None, None, (), {})
        return CheckResult(
            name, Status.INSUFFICIENT_DATA, f"{n} rows in the window; relations are judged from {min_rows}.", details
        )
    values = matrix[:, joint.feature_of]
    lo = np.full(len(joint.levels), -np.inf)
    hi = np.full(len(joint.levels), np.inf)
    numeric = np.flatnonzero(joint.levels < 0)
    if len(numeric):
        ranks = joint.numeric_rank[numeric]
        counts = columns.present[base.num_idx[ranks]]
        lo[numeric], hi[numeric] = _order_bounds(columns.numeric, ranks, counts)
    scores, present = _scores(values, joint.levels, lo, hi)
    corr, rows = _pairwise(scores, present)
    current = corr[joint.left, joint.right]
    pair_rows = rows[joint.left, joint.right]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt(joint.variance * (1 / pair_rows + 1 / joint.reference_rows))
        z = (np.arctanh(np.clip(current, -_LIMIT, _LIMIT)) - np.arctanh(joint.reference)) / spread
    judged = np.isfinite(z) & (pair_rows >= min(min_rows, n))
    z = np.where(judged, z, 0.0)
    change = np.where(judged, current - joint.reference, 0.0)
    flagged = np.flatnonzero((np.abs(z) > joint.threshold) & (np.abs(change) >= MIN_CHANGE))
    flagged = flagged[np.argsort(-np.abs(z[flagged]), kind="stable")]
    score = float(np.abs(z).max()) if judged.any() else None
    changed = tuple(
        PairChange(
            (joint.labels[joint.left[k]], joint.labels[joint.right[k]]),
            round(float(joint.reference[k]), 4),
            round(float(current[k]), 4),
            round(float(z[k]), 2),
        )
        for k in flagged[:SHOWN]
    )
    features = _blame(joint, flagged, z, change, current)
    details = JointDetails(
        n,
        min_rows,
        joint.alpha,
        int(judged.sum()),
        round(joint.threshold, 3),
        None if score is None else round(score, 3),
        changed,
        features,
    )
    pairs = int(judged.sum())
    if not len(flagged):
        summary = f"No relation changed between {len(joint.names)} features ({pairs} pairs) over the last {n} rows."
        return CheckResult(name, Status.OK, summary, details)
    status = Status.ALERT if (np.abs(change[flagged]) >= SEVERE_CHANGE).any() else Status.WARN
    shown = "; ".join(
        f"{a} ~ {b}: correlation {c.reference:+.2f} -> {c.current:+.2f}" for c in changed[:3] for a, b in [c.features]
    )
    more = f" and {len(flagged) - 3} more" if len(flagged) > 3 else ""
    summary = f"{len(flagged)} of {pairs} feature pairs changed relation: {shown}{more}."
    return CheckResult(name, status, summary, details)


def _blame(
    joint: JointBaseline, flagged: np.ndarray, z: np.ndarray, change: np.ndarray, current: np.ndarray
) -> dict[str, FeatureJoint]:
    """Per feature judged: its most changed flagged pair, if any."""
    threshold = round(joint.threshold, 3)
    worst: dict[int, int] = {}
    for k in flagged.tolist():  # most changed first: the first pair met is each feature's worst
        for column in (joint.left[k], joint.right[k]):
            worst.setdefault(int(joint.name_of[column]), k)
    out: dict[str, FeatureJoint] = {}
    for position, name in enumerate(joint.names):
        k = worst.get(position)
        if k is None:
            out[name] = FeatureJoint(Status.OK, False, None, threshold)
            continue
        mine, other = (
            (joint.left[k], joint.right[k]) if joint.name_of[joint.left[k]] == position else (joint.right[k], joint.left[k])
        )
        status = Status.ALERT if abs(change[k]) >= SEVERE_CHANGE else Status.WARN
        reason = f"{joint.labels[mine]} ~ {joint.labels[other]}: correlation {joint.reference[k]:+.2f} -> {current[k]:+.2f}"
        out[name] = FeatureJoint(status, True, round(abs(float(z[k])), 3), threshold, joint.labels[other], reason)
    return out
