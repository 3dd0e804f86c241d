"""Joint drift: did the relations between features change, while each feature may still look like itself?

A join off by one row, two sensors recalibrated in opposite directions, a derived feature computed from a stale
partner: every column keeps its distribution, so per-feature checks are blind by construction, but the correlations
between columns move. This check compares every pair's correlation in the window with the reference's, from the
reference's :class:`~guarded_serving.rowsample.RowSample`:

1. **Scores that ignore the marginals.** Each numeric feature is clipped to its own 2 % and 98 % quantiles *in the
   sample at hand* (window or reference; 5 % or 10 % for a heavy tail, chosen on the reference: ``correlation.trims``)
   and centred on its own mean, so a shift, a rescaling or a unit change of one feature (the data drift check's
   business) leaves its correlations as they were, and a few extreme values do not swing them. A categorical feature
   enters as indicators of its most common categories (up to three, each at least 5 % of the reference). Missing
   values drop out pair by pair: each correlation is taken over the rows where both values are present.
2. **The null distribution of each pair from the reference itself.** How much a correlation varies from sample to
   sample depends on the pair's joint shape (tails, ties, strength, a rare category): per pair, the reference sample
   gives the moments of the correlation's influence function (the delta method), hence its variance and skewness on
   Fisher's z scale for any window size. The variance is taken at its upper 2-standard-error bound, since it is itself
   estimated from the sample. Windows of the configured size are resampled from the reference (as the per-feature
   calibration does) to measure how far the real spread departs from the formula (clipping at a window's own
   quantiles, small samples); the formula is widened by that factor when it is above 1. The reference's own sampling
   noise is added, as for two independent samples.
3. **A family-wise budget.** Each pair's standardised change is compared with the Bonferroni bound for
   :data:`ALPHA_JOINT` (0.05 % of health checks) over the number of pairs, moved out by the pair's skewness
   (Cornish-Fisher), and must also be a change of at least 0.1 in correlation. Pairs of rare categories, or of sparse
   numeric features (their rows off the most common value), are judged only when the reference sample expects at least
   50 rows holding both and a window 10. The pairs that clear the bound are named, most changed first; a change of 0.3
   or more is an alert.

Cost per health check: one pass over the window (n rows x q columns, q at most :data:`MAX_COLUMNS`), the product of
its n x q scores with themselves (three products when values are missing), O(q^2) after that: about 1 ms for 64
features and 2,000 rows. A wider model keeps the 64 columns with the strongest relations in the reference.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from itertools import repeat

import numpy as np
from scipy.stats import norm

from ..health import CheckResult, Status
from ..rowsample import RowSample
from . import correlation
from .baseline import Baseline
from .columns import WindowColumns
from .correlation import LIMIT
from .pairtables import PairTables
from .repeats import Repeats

__all__ = ["ALPHA_JOINT", "FeatureJoint", "JointBaseline", "JointDetails", "PairChange", "RelatedPairs", "joint_check"]

ALPHA_JOINT = 0.0005
MIN_CHANGE = 0.1  # in correlation: smaller changes are not flagged however sure
SEVERE_CHANGE = 0.3  # an alert from this change on, a warning below
MAX_COLUMNS = 64
LEVEL_SHARE = 0.05  # a category's reference share for it to get an indicator
MAX_LEVELS = 3  # indicators per categorical feature
MIN_REFERENCE_ROWS = 100
DRAWS = 100
SHOWN = 10  # changed pairs kept in the details
# Reference rows expected with both of a pair present for its variance to be known (a window: pairtables.MIN_CELL): a pair
# of categories seen together in ~40 had it underestimated by a fifth, and fired on healthy traffic (64 features, 2,000 rows)
MIN_REFERENCE_CELL = 50


@dataclass(frozen=True, slots=True)
class PairChange:
    """One pair whose correlation moved: reference and window correlations, and the standardised change."""

    features: tuple[str, str]
    reference: float
    current: float
    z: float


@dataclass(frozen=True, slots=True)
class FeatureJoint:
    """One feature's part in the relations: the standardised change (``score``) of its pair nearest to
    or furthest beyond its bound (``threshold``), and the partner in that pair."""

    status: Status
    drifted: bool
    score: float | None
    threshold: float | None
    partner: str | None = None
    reason: str | None = None


_UNJUDGED = FeatureJoint(Status.OK, False, None, None)  # a feature none of whose pairs could be judged


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

    Columns are numeric features (``levels[c] < 0``) or indicators of category ``levels[c]``; pairs are
    two columns of different features. ``reason`` says why relations are not judged (arrays then empty).
    """

    reason: str | None
    names: tuple[str, ...]  # feature names judged, in reference order
    labels: tuple[str, ...]  # per column: its feature, or "feature='category'"
    feature_of: np.ndarray  # per column: index into the baseline's features
    name_of: np.ndarray  # per column: index into ``names``
    levels: np.ndarray  # per column: category code, or -1 for a numeric feature
    numeric_rank: np.ndarray  # per column: position of its feature among the baseline's numeric features (-1)
    share: np.ndarray  # per column: the reference share of its category (numeric: of values off the mode)
    trim: np.ndarray  # per column: the share clipped off each end of a numeric one (correlation.trims)
    left: np.ndarray  # per pair: its two columns, left < right
    right: np.ndarray
    reference: np.ndarray  # per pair: correlation in the reference sample
    variance: np.ndarray  # per pair: one row's variance of Fisher's z (upper bound, widened by ``inflation``^2)
    third: np.ndarray  # per pair: one row's third cumulant of Fisher's z
    reference_rows: np.ndarray  # per pair: reference rows with both values present
    inflation: float  # the null spread on resampled windows over the delta method's, at least 1
    window: int
    alpha: float
    threshold: float  # the Bonferroni bound on |z|, before each pair's skewness moves it out

    @functools.cached_property
    def tables(self) -> PairTables:
        """What every check of a window takes from this baseline, computed on the first one."""
        return PairTables.of(self)

    @classmethod
    def unjudged(cls, reason: str, window: int, alpha: float = ALPHA_JOINT) -> JointBaseline:
        i, f = np.zeros(0, dtype=np.intp), np.zeros(0)
        return cls(reason, (), (), i, i, i, i, f, f, i, i, f, f, f, f, 1.0, window, alpha, math.inf)

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
        return RelatedPairs.of(sample, base, window, skip, alpha).finished(draws, seed)


@dataclass(frozen=True, eq=False)
class RelatedPairs:
    """A joint baseline's first stage: the columns related, their pairs and reference moments, before the null
    spread is measured on resampled windows (``correlation.inflation``, ~3/4 of fitting: 0.34 of 0.46 s at 64
    features). ``unfinished`` is the baseline with that spread not widened (inflation 1): what a check of a window
    too short to judge reads of it (why relations are not judged, the budget, the pair count), so that a health
    check asked right after start need not wait for the rest."""

    unfinished: JointBaseline
    columns: np.ndarray  # the sample's values of each column
    variance: np.ndarray  # per pair: the delta method's variance of Fisher's z (not widened to its upper bound)

    @classmethod
    def of(
        cls, sample: RowSample | None, base: Baseline, window: int, skip: frozenset[str] = frozenset(), alpha: float = ALPHA_JOINT
    ) -> RelatedPairs:
        unjudged = JointBaseline.unjudged
        empty = np.zeros(0)
        if sample is None:
            reason = "the reference has no row sample (saved by an older version; build it again with Reference.from_data)."
            return cls(unjudged(reason, window, alpha), empty, empty)
        if sample.rows < MIN_REFERENCE_ROWS:
            reason = f"the reference's row sample holds {sample.rows} rows; relations need {MIN_REFERENCE_ROWS}."
            return cls(unjudged(reason, window, alpha), empty, empty)
        feature_of, levels, share, columns = _columns(sample, base, skip)
        if len(set(feature_of.tolist())) < 2:
            reason = "fewer than two features to relate (numeric with spread, or categorical with common categories)."
            return cls(unjudged(reason, window, alpha), empty, empty)
        trim = correlation.trims(columns, levels, share)
        scores, present = correlation.scores(columns, levels, *correlation.bounds(columns, levels, trim))
        if len(feature_of) > MAX_COLUMNS:  # keep the columns with the strongest relations in the reference
            strength = np.abs(np.nan_to_num(correlation.pairwise(scores, present)[0]))
            strength[feature_of[:, None] == feature_of[None, :]] = 0.0
            keep = np.sort(np.argsort(-strength.max(axis=1), kind="stable")[:MAX_COLUMNS])
            feature_of, levels, share, trim, columns = feature_of[keep], levels[keep], share[keep], trim[keep], columns[:, keep]
            scores, present = scores[:, keep], present[:, keep]
        left, right = np.triu_indices(len(feature_of), k=1)
        left, right = left[feature_of[left] != feature_of[right]], right[feature_of[left] != feature_of[right]]
        corr, rows = correlation.pairwise(scores, present)
        rho = np.clip(corr[left, right], -LIMIT, LIMIT)
        variance, upper, third = correlation.moments(scores, present, rho, left, right)
        cells = rows[left, right] * share[left] * share[right]
        judged = np.isfinite(rho) & np.isfinite(upper) & np.isfinite(third) & (cells >= MIN_REFERENCE_CELL)
        left, right, rho = left[judged], right[judged], rho[judged]
        variance, upper, third = variance[judged], upper[judged], third[judged]
        if not len(left):
            reason = "no pair of features is present together often enough in the reference's row sample."
            return cls(unjudged(reason, window, alpha), empty, empty)
        names = tuple(dict.fromkeys(base.names[j] for j in feature_of.tolist()))
        position = {n: k for k, n in enumerate(names)}
        numeric_rank = {int(j): k for k, j in enumerate(base.num_idx)}
        unfinished = JointBaseline(
            reason=None,
            names=names,
            labels=tuple(_label(base, j, lv) for j, lv in zip(feature_of.tolist(), levels.tolist(), strict=True)),
            feature_of=feature_of,
            name_of=np.array([position[base.names[j]] for j in feature_of.tolist()], dtype=np.intp),
            levels=levels,
            numeric_rank=np.array([numeric_rank.get(j, -1) for j in feature_of.tolist()], dtype=np.intp),
            share=share,
            trim=trim,
            left=left,
            right=right,
            reference=rho,
            variance=upper,
            third=third,
            reference_rows=rows[left, right],
            inflation=1.0,
            window=window,
            alpha=alpha,
            threshold=float(norm.isf(alpha / (2 * len(left)))),
        )
        return cls(unfinished, columns, variance)

    def finished(self, draws: int = DRAWS, seed: int = 20261129) -> JointBaseline:
        """The baseline, its spread widened by the null spread measured on ``draws`` resampled windows."""
        b = self.unfinished
        if b.reason is not None:
            return b
        inflation = correlation.inflation(
            self.columns, b.levels, b.trim, b.left, b.right, b.reference, self.variance, b.window, draws, seed
        )
        return replace(b, variance=b.variance * inflation**2, third=b.third * inflation**3, inflation=inflation)


def _columns(sample: RowSample, base: Baseline, skip: frozenset[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The columns related: each numeric feature with spread, and indicators of each categorical feature's
    common categories (the sample's rows need at least MIN_REFERENCE_ROWS values). Returns per column its
    feature, category (-1 for numeric), reference share, and the sample's values. A numeric feature's share
    is that of its rows off its most common value: a sparse feature (99 % zeros) relates to others through
    its few non-zero rows only, as a rare category does, and is judged only when they are enough."""
    where = {n: k for k, n in enumerate(sample.names)}
    matrix = sample.matrix
    category_rank = {int(j): k for k, j in enumerate(base.cat_idx)}
    feature_of: list[int] = []
    levels: list[int] = []
    share: list[float] = []
    for j, name in enumerate(base.names):
        if name in skip or name not in where:
            continue
        present = matrix[:, where[name]][~np.isnan(matrix[:, where[name]])]
        if len(present) < MIN_REFERENCE_ROWS:
            continue
        if base.numeric[j]:
            if present.min() < present.max():
                feature_of.append(j)
                levels.append(-1)
                share.append(1.0 - np.unique(present, return_counts=True)[1].max() / len(present))
            continue
        shares = base.cat_props[category_rank[j]][:-1]  # the last slot is for unseen categories
        kept = [k for k in range(min(len(shares), MAX_LEVELS)) if shares[k] >= LEVEL_SHARE]
        if len(kept) == len(shares):  # an indicator of every category: the last one is implied by the others
            kept = kept[:-1]
        feature_of += [j] * len(kept)
        levels += kept
        share += [float(shares[k]) for k in kept]
    columns = matrix[:, [where[base.names[j]] for j in feature_of]]
    return np.array(feature_of, dtype=np.intp), np.array(levels, dtype=np.intp), np.array(share), columns


def _label(base: Baseline, feature: int, level: int) -> str:
    name = base.names[feature]
    return name if level < 0 else f"{name}={base.profiles[feature].categories[level][0]!r}"


def joint_check(
    joint: JointBaseline,
    matrix: np.ndarray,
    columns: WindowColumns,
    base: Baseline,
    min_rows: int,
    repeats: Repeats | None = None,
) -> CheckResult:
    """Judge the relations between the window's features (``matrix``: rows x features, as the window
    holds them; ``columns``: the same window laid out for the per-feature checks); a window whose rows repeat
    (``repeats``) as the independent rows it is worth."""
    name = "joint_drift"
    n = int(matrix.shape[0])
    if joint.reason is not None:
        return CheckResult(name, Status.OK, f"Not judged: {joint.reason}")
    if n < min_rows:
        details = JointDetails(n, min_rows, joint.alpha, len(joint.left), None, None, (), {})
        summary = f"{n} rows in the window; relations are judged from {min_rows}."
        return CheckResult(name, Status.INSUFFICIENT_DATA, summary, details)
    tables = joint.tables
    complete = bool((columns.present[joint.feature_of] == n).all())  # no value missing: no mask to apply, to count with
    if len(tables.numeric) == len(joint.levels):  # numeric columns only: their bounds are all
        lo, hi = _numeric_bounds(tables, columns, base, complete)
    else:
        lo = np.full(len(joint.levels), -np.inf)
        hi = np.full(len(joint.levels), np.inf)
        if len(tables.numeric):
            lo[tables.numeric], hi[tables.numeric] = _numeric_bounds(tables, columns, base, complete)
    window = matrix if tables.every_feature and len(joint.feature_of) == matrix.shape[1] else matrix[:, joint.feature_of]
    count = len(joint.left)
    with np.errstate(divide="ignore", invalid="ignore"):
        if complete:
            products = _complete_products(tables, window, joint.levels, lo, hi)
            values = products.take(tables.gathered).astype(np.float64)  # per pair its product, then both squares
            current = values[:count] / np.sqrt(values[count : 2 * count] * values[2 * count :])
            spread, bound, judgeable = tables.spread(joint, repeats.effective if repeats is not None else n)
        else:
            scores, present = correlation.scores(window, joint.levels, lo, hi)
            corr, rows = correlation.pairwise(scores, present)
            current = corr.take(tables.flat)
            rows = rows.take(tables.flat)
            spread, bound, judgeable = tables.spread(joint, repeats.scaled(rows, kept=True) if repeats is not None else rows)
        z = (np.arctanh(np.minimum(np.maximum(current, -LIMIT), LIMIT)) - tables.fisher_reference) / spread  # np.clip
    judged = np.isfinite(z) & judgeable
    pairs = int(np.count_nonzero(judged))
    change = current - joint.reference
    if pairs < count:
        z = np.where(judged, z, 0.0)
        change = np.where(judged, change, 0.0)
    size = np.abs(z)
    severity = size / bound
    if pairs < count:
        severity = np.where(judged, severity, 0.0)
    flagged = (severity > 1).nonzero()[0]  # few or none: the change is looked at for these only
    if len(flagged):
        flagged = flagged[np.abs(change[flagged]) >= MIN_CHANGE]
        flagged = flagged[np.argsort(-severity[flagged], kind="stable")]
    changed = tuple(
        PairChange(
            (joint.labels[joint.left[k]], joint.labels[joint.right[k]]),
            round(float(joint.reference[k]), 4),
            round(float(current[k]), 4),
            round(float(z[k]), 2),
        )
        for k in flagged[:SHOWN].tolist()
    )
    features = _blame(joint, flagged, severity, size, bound, change, current)
    t = joint.threshold
    score = round(float(size.max()), 3) if pairs else None
    details = JointDetails(n, min_rows, joint.alpha, pairs, round(t, 3), score, changed, features)
    if not len(flagged):
        summary = f"No relation changed between {len(joint.names)} features ({pairs} pairs) over the last {n} rows."
        return CheckResult(name, Status.OK, summary, details)
    status = Status.ALERT if (np.abs(change[flagged]) >= SEVERE_CHANGE).any() else Status.WARN
    shown = "; ".join(
        f"{c.features[0]} ~ {c.features[1]}: correlation {c.reference:+.2f} -> {c.current:+.2f}" for c in changed[:3]
    )
    more = f" and {len(flagged) - 3} more" if len(flagged) > 3 else ""
    summary = f"{len(flagged)} of {pairs} feature pairs changed relation: {shown}{more}."
    return CheckResult(name, status, summary, details)


def _numeric_bounds(tables: PairTables, columns: WindowColumns, base: Baseline, complete: bool) -> tuple[np.ndarray, np.ndarray]:
    """The numeric columns' clip bounds in the window (its 2 % and 98 % order statistics)."""
    if complete:
        return tables.complete_bounds(columns.numeric)
    return correlation.order_bounds(columns.numeric, tables.ranks, columns.present[base.num_idx[tables.ranks]], tables.trim)


def _complete_products(tables: PairTables, window: np.ndarray, levels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The Gram matrix (float32) of a complete window's scores, in the workspace's arrays when free (see Scratch)."""
    with tables.workspace.borrowed(window.shape) as scratch:  # no fresh 1 MiB arrays (see Workspace)
        if scratch is None or not window.flags.c_contiguous:  # the scratch arrays are C-ordered
            single = correlation.complete_scores(window, levels, lo, hi).astype(np.float32)
            return correlation.gram(single, single)
        return scratch.products_of(window, levels, lo, hi)


def _blame(
    joint: JointBaseline,
    flagged: np.ndarray,
    severity: np.ndarray,
    size: np.ndarray,
    bound: np.ndarray,
    change: np.ndarray,
    current: np.ndarray,
) -> dict[str, FeatureJoint]:
    """Per feature judged: its pair nearest to (or furthest beyond) its bound (the first such pair), with the
    partner; drifted when that pair is flagged (``size``: each pair's |z|). Vectorised over the pairs grouped by
    feature (:class:`~guarded_serving.drift.pairtables.PairTables`): the loop only builds the entries."""
    tables = joint.tables
    grouped = severity.take(tables.by_feature)
    best = np.maximum.reduceat(grouped, tables.group_starts)  # each feature's worst severity
    hits = (grouped == best.take(tables.group_of)).nonzero()[0]
    entry = hits.take(hits.searchsorted(tables.group_starts))  # each feature's first pair of that severity
    pair = tables.by_feature.take(entry)
    out = dict.fromkeys(joint.names, _UNJUDGED)  # in order
    scores = size.take(pair).round(3).tolist()
    thresholds = bound.take(pair).round(3).tolist()
    partners = tables.other_labels.take(entry).tolist()
    if not len(flagged) and bool(best.all()):  # every feature judged and none drifted: the common answer
        entries = map(FeatureJoint, repeat(Status.OK), repeat(False), scores, thresholds, partners)
        out.update(zip(tables.group_names, entries, strict=True))
        return out
    drifted = np.isin(pair, flagged).tolist() if len(flagged) else [False] * len(pair)
    labels = joint.labels
    rows = zip(
        tables.group_names,
        pair.tolist(),
        tables.mine.take(entry).tolist(),
        partners,
        (best > 0).tolist(),
        drifted,
        scores,
        thresholds,
        strict=True,
    )
    for name, k, me, partner, judged, drifted, score, threshold in rows:
        if not judged:
            continue
        if not drifted:
            out[name] = FeatureJoint(Status.OK, False, score, threshold, partner)
        else:
            status = Status.ALERT if abs(change[k]) >= SEVERE_CHANGE else Status.WARN
            reason = f"{labels[me]} ~ {partner}: correlation {joint.reference[k]:+.2f} -> {current[k]:+.2f}"
            out[name] = FeatureJoint(status, True, score, threshold, partner, reason)
    return out
