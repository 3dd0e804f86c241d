"""The pieces of the joint drift check (:mod:`guarded_serving.drift.joint`): scores that ignore each feature's
marginal distribution, their pairwise correlations over the rows where both are present, the moments of a
correlation's influence function (its variance on Fisher's z scale), and how far resampled windows spread
beyond that formula."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LIMIT",
    "block_rows",
    "bounds",
    "clipped",
    "complete_scores",
    "gram",
    "inflation",
    "moments",
    "order_bounds",
    "pairwise",
    "scores",
    "trim_positions",
    "trims",
]

MAX_DRAW_ROWS = 4000
TRIMS = (0.02, 0.05, 0.10)  # shares of a numeric column clipped off each end, the least first
TRIM = TRIMS[0]
# A column's clipped values may have a kurtosis up to this (at 2 %: normal 2.5, exponential or log-normal of sigma
# 0.5 ~4, log-normal of sigma 1 ~7, of sigma 2 ~20). Beyond it, a few rows of large products swing the correlation:
# its null on Fisher's z is heavier-tailed than the skewness correction allows (log-normal amounts of sigma 1.5-2,
# Pareto of tail index 1.5: 1-11 % of healthy windows of 20-40 features flagged, against a budget of 0.05 %,
# bench/joint_tails.py), so such a column is clipped harder.
MAX_KURTOSIS = 5.0
CONTINUOUS = 0.99  # share of a column's rows off its most common value for it to be clipped harder
LIMIT = 0.995  # correlations are clipped to +-this before Fisher's z
CHUNK = 256  # pairs whose influence functions are held at once while fitting


def trims(columns: np.ndarray, levels: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Per column of a sample (rows x columns), the share of it to clip off each end: for a continuous one (``share``
    of its rows off its most common value above CONTINUOUS), the least of TRIMS after which its values' kurtosis is
    at most MAX_KURTOSIS, else the one that leaves the least (a level whose bounds coincide passed over); any other
    column, TRIM. Clipped harder, a text's share of unknown tokens (mostly one value) related to its length by +0.18
    in the reference and -0.02 in healthy windows (tests/acceptance/test_text.py's reviews)."""
    trim = np.full(columns.shape[1], TRIM)
    numeric = np.flatnonzero((levels < 0) & (share > CONTINUOUS))
    if not len(numeric):
        return trim
    ordered = np.sort(columns[:, numeric], axis=0)  # NaN last
    counts = (~np.isnan(ordered)).sum(axis=0)
    kurtosis = np.full((len(TRIMS), len(numeric)), np.inf)
    for k, level in enumerate(TRIMS):
        low, high = trim_positions(level, counts)
        lo, hi = np.take_along_axis(ordered, low[None], axis=0)[0], np.take_along_axis(ordered, high[None], axis=0)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.minimum(np.maximum(ordered, lo), hi)
            values -= np.nanmean(values, axis=0)
            squares = values * values
            found = np.nanmean(squares * squares, axis=0) / np.nanmean(squares, axis=0) ** 2
        kurtosis[k] = np.where((lo < hi) & np.isfinite(found), found, np.inf)
    light = kurtosis <= MAX_KURTOSIS
    chosen = np.where(light.any(axis=0), light.argmax(axis=0), kurtosis.argmin(axis=0))
    trim[numeric] = np.where(np.isfinite(kurtosis.min(axis=0)), np.asarray(TRIMS)[chosen], TRIM)
    return trim


def trim_positions(trim: np.ndarray | float, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a sorted column of ``counts`` present values is clipped at ``trim`` off each end: the positions of its
    lower and upper clip bounds."""
    last = np.maximum(counts - 1, 0)
    return np.floor(trim * last).astype(np.intp), np.ceil((1 - trim) * last).astype(np.intp)


def bounds(columns: np.ndarray, levels: np.ndarray, trim: np.ndarray | float = TRIM) -> tuple[np.ndarray, np.ndarray]:
    """Each numeric column's clip bounds in this sample: its order statistics at ``trim`` (per column) from each
    end (its minimum and maximum when those coincide); +-inf for indicator columns."""
    lo = np.full(columns.shape[1], -np.inf)
    hi = np.full(columns.shape[1], np.inf)
    numeric = np.flatnonzero(levels < 0)
    if len(numeric):
        ordered = np.sort(columns[:, numeric], axis=0)  # NaN last
        counts = (~np.isnan(ordered)).sum(axis=0)
        at = np.broadcast_to(trim, levels.shape)[numeric]
        lo[numeric], hi[numeric] = order_bounds(ordered.T, np.arange(len(numeric)), counts, at)
    return lo, hi


def order_bounds(
    sorted_rows: np.ndarray, rows: np.ndarray, counts: np.ndarray, trim: np.ndarray | float = TRIM
) -> tuple[np.ndarray, np.ndarray]:
    """Clip bounds from sorted rows (``sorted_rows[rows[k]]`` holds column k's values, ``counts[k]`` present, clipped
    at ``trim``, per column or for all)."""
    last = np.maximum(counts - 1, 0)
    low, high = trim_positions(trim, counts)
    lo = sorted_rows[rows, low]
    hi = sorted_rows[rows, high]
    same = lo == hi
    return np.where(same, sorted_rows[rows, 0], lo), np.where(same, sorted_rows[rows, last], hi)


def scores(columns: np.ndarray, levels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred scores (missing values as 0) and the present mask, for rows x columns of feature values."""
    present = ~np.isnan(columns)
    values = clipped(columns, levels, lo, hi)
    if present.all():  # the common case: no mask to apply
        values -= values.mean(axis=0)
        return values, present
    missing = ~present
    values[missing] = 0.0
    values -= values.sum(axis=0) / np.maximum(present.sum(axis=0), 1)
    values[missing] = 0.0
    return values, present


def complete_scores(
    columns: np.ndarray, levels: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """:func:`scores` of columns the caller knows hold no missing value (no mask made: ~30 us for 2,000 x 64),
    computed into ``out`` when given (an array of the columns' shape and layout, see pairtables.Workspace: the
    centring sums each column in the order its layout holds it)."""
    values = clipped(columns, levels, lo, hi, out)
    values -= np.add.reduce(values, axis=0) / len(values)  # values.mean(axis=0) without its Python wrapper
    return values


def clipped(columns: np.ndarray, levels: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Numeric columns clipped to their bounds, indicator columns as 0/1 (missing values stay NaN), in a new array
    or ``out``."""
    indicator = levels >= 0
    values: np.ndarray = np.maximum(columns, lo, out=out)  # np.clip's result in two passes, ~45 % less time
    np.minimum(values, hi, out=values)
    if indicator.any():
        values[:, indicator] = columns[:, indicator] == levels[indicator]
    return values


# OpenBLAS runs a product of m x n x k multiply-adds up to 4 x 65,536 on the calling thread and splits a larger
# one over its threads. On a busy machine the split waits for a core: 2,000 x 64 x 64 took 20-60 ms of CPU and
# 50-150 ms of wall clock on 2 cores with a load of 6 (its threads spin while they wait), against 0.3-0.7 ms on
# the calling thread alone. Blocks of 64 rows of 64 columns are that size: their products, symmetric ones too,
# took the CPU time they took of wall clock (one thread), blocks of 128 twice that.
SINGLE_THREAD_PRODUCT = 4 * 65_536


# A temporary array of 128 KiB or more is a fresh mmap that the kernel maps page by page: the products of
# 2,000 x 64 scores in blocks (512 KiB for 32 blocks of 64 rows) cost a page fault per 4 KiB (~470, ~1.2 ms, when
# the blocks were 63 padded ones of 32 rows, with copies). Blocks are multiplied a few at a time into a buffer
# under that size, which malloc serves from its heap, unless the caller holds arrays to compute into
# (pairtables.Workspace).
HEAP_BYTES = 120 * 1024


def block_rows(a: int, b: int) -> int:
    """Rows per block of a product of rows x a by rows x b values (see SINGLE_THREAD_PRODUCT)."""
    return max(SINGLE_THREAD_PRODUCT // max(a * b, 1), 1)


def gram(left: np.ndarray, right: np.ndarray, products: np.ndarray | None = None) -> np.ndarray:
    """``left.T @ right`` (rows x a, rows x b), summed over blocks of rows small enough for BLAS to compute each
    on the calling thread: the same sums in another order (float32: within ~1e-6 of each other).

    The whole blocks' products, then that of the rows after them (fewer than a block), are added one after the
    other in row order: always the same sums in the same order for the same rows. A block of one array with
    itself (``left is right``) is BLAS's symmetric product, as numpy computes it (~half a general product's
    time). ``products`` (at least as many as the blocks, x a x b) is an array to compute into at once (see
    pairtables.Workspace); without it, a few blocks at a time go through a buffer under 128 KiB.

    Columns too many for even one row to stay on the calling thread (``a x b`` beyond SINGLE_THREAD_PRODUCT: only
    the joint baseline's choice of the columns of a model wider than 512 features) are one BLAS product: row by row,
    1,000 features and 5,000 reference rows took 5 s, 3,000 features 75 s.
    """
    rows, a = left.shape
    b = right.shape[1]
    block = block_rows(a, b)
    if rows <= block or a * b > SINGLE_THREAD_PRODUCT:
        return np.asarray(left.T @ right)
    dtype = np.result_type(left, right)
    count = -(-rows // block)
    if products is not None and products.shape[0] >= count and products.shape[1:] == (a, b) and products.dtype == dtype:
        _block_products(left, right, 0, rows, block, products)
        return np.asarray(np.add.reduce(products[:count], axis=0))
    per = max(HEAP_BYTES // (a * b * dtype.itemsize) - 1, 1)  # blocks multiplied at once; slot 0 holds the sum
    buffer = np.empty((per + 1, a, b), dtype)
    total = np.empty((a, b), dtype)
    for start in range(0, rows, per * block):
        stop = min(start + per * block, rows)
        held = -(-(stop - start) // block)
        _block_products(left, right, start, stop, block, buffer[1 : held + 1])
        if start == 0:
            np.add.reduce(buffer[1 : held + 1], axis=0, out=total)
        else:
            buffer[0] = total
            np.add.reduce(buffer[: held + 1], axis=0, out=total)
    return total


def _block_products(left: np.ndarray, right: np.ndarray, start: int, stop: int, block: int, out: np.ndarray) -> None:
    """Each block's product of rows ``start`` to ``stop`` into ``out``: the whole blocks in one batched product,
    then the rows after them, if any, as one product of their own."""
    a, b = left.shape[1], right.shape[1]
    whole = (stop - start) // block
    end = start + whole * block
    if whole > 0:
        rows_left, rows_right = left[start:end].reshape(whole, block, a), right[start:end].reshape(whole, block, b)
        np.matmul(rows_left.transpose(0, 2, 1), rows_right, out=out[:whole])
    if stop > end:
        np.matmul(left[end:stop].T, right[end:stop], out=out[whole])


def pairwise(scores: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of every pair of columns over the rows where both are present, and those rows' count."""
    # float32 products: twice as fast as float64, and sums of a few thousand centred products lose ~1e-6
    single = scores.astype(np.float32)
    products = gram(single, single).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if present.all():
            squares = np.diag(products)
            return products / np.sqrt(np.outer(squares, squares)), np.full(products.shape, float(len(scores)))
        mask = present.astype(np.float32)
        squares = gram(single * single, mask).astype(np.float64)  # [i, j]: column i's squares where j is present too
        return products / np.sqrt(squares * squares.T), gram(mask, mask).astype(np.float64)


def moments(
    scores: np.ndarray, present: np.ndarray, rho: np.ndarray, left: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair, one row's variance of Fisher's z of its correlation, that variance's upper 2-standard-error
    bound, and one row's third cumulant, from the sample's rows.

    For standardised x, y with correlation rho, the correlation of n rows is rho plus the mean of the
    influence function psi = xy - rho (x^2 + y^2) / 2 to first order: its variance is E[psi^2] / n
    ((1 - rho^2)^2 for normal data), its third cumulant E[psi^3] / n^2; Fisher's z divides them by
    (1 - rho^2)^2 and (1 - rho^2)^3. E[psi^2] estimated from m rows has a standard error of
    sqrt((E[psi^4] - E[psi^2]^2) / m).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = scores / np.sqrt((scores * scores).sum(axis=0) / np.maximum(present.sum(axis=0), 1))
    z[~present] = 0.0
    variance, upper, third = (np.empty(len(left)) for _ in range(3))
    for start in range(0, len(left), CHUNK):
        i, j, r = left[start : start + CHUNK], right[start : start + CHUNK], rho[start : start + CHUNK]
        both = present[:, i] & present[:, j]
        psi = np.where(both, z[:, i] * z[:, j] - r / 2 * (z[:, i] ** 2 + z[:, j] ** 2), 0.0)
        rows = np.maximum(both.sum(axis=0), 1)
        square = psi * psi
        m2 = square.sum(axis=0) / rows
        m4 = (square * square).sum(axis=0) / rows
        variance[start : start + CHUNK] = m2
        upper[start : start + CHUNK] = m2 + 2 * np.sqrt(np.maximum(m4 - m2 * m2, 0.0) / rows)
        third[start : start + CHUNK] = (square * psi).sum(axis=0) / rows
    to_z = 1 - rho**2
    return variance / to_z**2, upper / to_z**2, third / to_z**3


def inflation(
    columns: np.ndarray,
    levels: np.ndarray,
    trim: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    rho: np.ndarray,
    variance: np.ndarray,
    window: int,
    draws: int,
    seed: int,
) -> float:
    """How much wider than the delta method the null spread of a window's Fisher z is, measured on ``draws``
    windows resampled from the reference sample (pooled over pairs and draws); at least 1."""
    rng = np.random.default_rng(seed)
    size = min(window, MAX_DRAW_ROWS)
    target = np.arctanh(rho)
    total = 0.0
    count = 0
    for _ in range(draws):
        drawn = columns[rng.integers(0, len(columns), size)]
        drawn_scores, present = scores(drawn, levels, *bounds(drawn, levels, trim))
        corr, rows = pairwise(drawn_scores, present)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (np.arctanh(np.clip(corr[left, right], -LIMIT, LIMIT)) - target) ** 2 * rows[left, right] / variance
        ratio = ratio[np.isfinite(ratio)]
        total += float(ratio.sum())
        count += len(ratio)
    return max(math.sqrt(total / count), 1.0) if count else 1.0
