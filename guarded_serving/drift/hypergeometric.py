"""Exact hypergeometric tails in numpy, for the share test of every bin of every feature at once.

``scipy.stats.hypergeom.sf``/``cdf`` cost about 37 us per value (its generic discrete-distribution
machinery around Boost): 37 ms for the thousand bins of a 64-feature model, three quarters of a health
computation. Here the same tails are computed as one array operation per step, to within 1e-12 of
scipy's (``tests/test_drift_hypergeometric.py``):

- the probability of the observed count by Loader's saddle-point expansion (the algorithm of R's
  ``dhyper``): no difference of large log-gammas, so relative error ~1e-15 where a difference of
  ``gammaln`` values loses ~1e-11 for a reference of 10,000 rows;
- the tail *away from the mean* as that probability times the sum of the running products of the
  ratio of successive probabilities, which fall faster than geometrically past the mode, so a few
  standard deviations of terms reach double precision;
- the tail towards the mean as one minus the other side: it is at least a half there (the median of a
  hypergeometric is within one of its mean), so the complement loses nothing that matters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lower_tail", "pmf", "two_sided", "upper_tail"]

_LN_SQRT_2PI = 0.5 * np.log(2 * np.pi)
_TINY = 1e-18  # a tail's sum stops once its last term is this small a fraction of it


def _stirling_error(n: np.ndarray) -> np.ndarray:
    """log(n!) - log(sqrt(2 pi n) (n/e)^n) for integers n >= 0 (0 at n = 0), to double precision."""
    small = n <= 15
    nn = n * n
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    out = np.asarray((s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / np.where(small, 1.0, n))  # all terms: 1e-17 from 16 on
    if small.any():  # a table, as R's: lgamma below 17 is exact to ~1e-16 in absolute terms
        out[small] = _SMALL[n[small].astype(np.intp)]
    return out


def _table() -> np.ndarray:
    from scipy.special import gammaln

    s = np.arange(1.0, 16.0)
    return np.concatenate([[0.0], gammaln(s + 1) - (s + 0.5) * np.log(s) + s - _LN_SQRT_2PI])


_SMALL = _table()


def _deviance(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """x log(x / mean) + mean - x, without cancellation when x is near ``mean`` (Loader's bd0). Call under errstate."""
    out = np.asarray(x * np.log(x / mean) + mean - x)
    out[x == 0] = mean[x == 0]
    near = np.flatnonzero(np.abs(x - mean) < 0.1 * (x + mean))
    if len(near):
        xs, ms = x[near], mean[near]
        v = (xs - ms) / (xs + ms)
        s = (xs - ms) * v
        ej = 2 * xs * v
        v2 = v * v
        for j in range(1, 12):  # |v| < 0.1: at most eleven terms reach 1e-22 of the first
            ej *= v2
            s1 = s + ej / (2 * j + 1)
            if np.array_equal(s1, s):
                break
            s = s1
        out[near] = s
    return out


def _binomial_log(x: np.ndarray, n: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """log P(Binomial(n, p) = x) for 0 <= x <= n, 0 < p < 1, q = 1 - p (Loader's dbinom_raw). Call under errstate."""
    general = (
        _stirling_error(n)
        - _stirling_error(x)
        - _stirling_error(n - x)
        - _deviance(x, n * p)
        - _deviance(n - x, n * q)
        - 0.5 * (np.log(2 * np.pi) + np.log(x) + np.log1p(-x / n))
    )
    edge = (x == 0) | (x == n)
    if edge.any():  # all of n trials one way: -bd0 form when it would cancel, else n log p
        e = np.flatnonzero(edge)
        nn, pp, qq = n[e], np.where(x[e] == 0, q[e], p[e]), np.where(x[e] == 0, p[e], q[e])
        general[e] = np.where(qq < 0.1, -_deviance(nn, nn * pp) - nn * qq, nn * np.log(pp))
        general[e[nn == 0]] = 0.0
    return np.asarray(general)


def pmf(k: np.ndarray, N: np.ndarray, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    """P(X = k) for X hypergeometric: ``n`` draws without replacement from ``N`` items of which ``K`` are marked
    (scipy's ``hypergeom.pmf(k, N, K, n)``). Arguments are integer-valued arrays of one shape, 0 <= K, n <= N."""
    k, N, K, n = (np.array(a, dtype=float) for a in np.broadcast_arrays(k, N, K, n))
    out = np.zeros(k.shape)
    inside = (k >= 0) & (k <= K) & (k <= n) & (n - k <= N - K)
    certain = inside & ((n == 0) | (n == N))  # no draw, or every item drawn: one outcome
    out[certain] = 1.0
    i = np.flatnonzero(inside & ~certain)
    if len(i):
        k, N, K, n = k[i], N[i], K[i], n[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            p = n / N
            q = (N - n) / N
            # the three binomial probabilities in one pass over the stacked arguments (a third of the array calls)
            m = len(i)
            log = _binomial_log(np.concatenate([k, n - k, n]), np.concatenate([K, N - K, N]), np.tile(p, 3), np.tile(q, 3))
            log = log[:m] + log[m : 2 * m] - log[2 * m :]
        out[i] = np.exp(log)
    return out


def _tail_up(k: np.ndarray, N: np.ndarray, K: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(X >= k) and P(X = k), summed from k upwards: meant for k at or above the mean, where the terms fall quickly."""
    first = pmf(k, N, K, n)
    total = np.ones_like(first)
    last = np.ones_like(first)
    at = k.copy()
    todo = np.flatnonzero(first > 0)
    sd = np.sqrt(np.maximum(n * K * (N - K) * (N - n), 0) / np.maximum(N * N * (N - 1), 1))
    # Terms z standard deviations past the mean fall like exp(-z j / sd - j^2 / 2 sd^2): 1e-18 after j below.
    z = np.maximum(k - n * K / np.maximum(N, 1), 0) / np.maximum(sd, 1e-9)
    needed = np.ceil(sd * (np.sqrt(z * z + 83) - z)) + 8
    while len(todo):
        steps = int(needed[todo].max())
        x = at[todo, None] + np.arange(steps, dtype=float)
        # p(x + 1) / p(x); zero once x reaches the end of the support (and the products stay zero after it)
        ratio = np.maximum(K[todo, None] - x, 0) * np.maximum(n[todo, None] - x, 0)
        ratio /= (x + 1) * ((N - K - n)[todo, None] + x + 1)
        terms = np.cumprod(ratio, axis=1)
        terms *= last[todo, None]
        total[todo] += terms.sum(axis=1)
        last[todo] = terms[:, -1]
        at[todo] += steps
        needed[todo] = 16
        todo = todo[last[todo] > _TINY * total[todo]]
    return np.asarray(np.minimum(first * total, 1.0)), first


def _mean(N: np.ndarray, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(N > 0, n * K / N, 0.0)


def _args(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    k, N, K, n = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in arrays))
    return np.floor(k), N.astype(float), K.astype(float), n.astype(float)


def _valid(N: np.ndarray, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Where scipy's hypergeom is defined: N > 0, 0 <= K, n <= N, all integers; elsewhere its answers are NaN."""
    whole = (np.round(N) == N) & (np.round(K) == K) & (n == np.round(n))
    return np.asarray((N > 0) & (K >= 0) & (n >= 0) & (K <= N) & (n <= N) & whole)


def upper_tail(k: np.ndarray, N: np.ndarray, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    """P(X >= k) (scipy's ``hypergeom.sf(k - 1, N, K, n)``), k rounded down as scipy does."""
    k, N, K, n = _args(k, N, K, n)
    out = np.full(k.shape, np.nan)
    ok = _valid(N, K, n)
    k, N, K, n = k[ok], N[ok], K[ok], n[ok]
    away = k >= _mean(N, K, n)  # else 1 - P(X <= k - 1), the lower tail summed away from the mean
    tail = _tail_up(np.where(away, k, n - k + 1), N, np.where(away, K, N - K), n)[0]
    result = np.where(away, tail, 1.0 - tail)
    out[ok] = np.clip(result, 0.0, 1.0)
    return out


def lower_tail(k: np.ndarray, N: np.ndarray, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    """P(X <= k) (scipy's ``hypergeom.cdf(k, N, K, n)``): n - X is hypergeometric with N - K marked."""
    k, N, K, n = _args(k, N, K, n)
    return upper_tail(n - k, N, N - K, n)


def two_sided(k: np.ndarray, N: np.ndarray, K: np.ndarray, n: np.ndarray) -> np.ndarray:
    """min(1, 2 min(P(X >= k), P(X <= k))), as ``share_p_values`` computed it with scipy.

    Only the tail away from the mean is summed; the other is one minus it plus P(X = k).
    """
    k, N, K, n = _args(k, N, K, n)
    out = np.full(k.shape, np.nan)
    ok = _valid(N, K, n)
    k, N, K, n = k[ok], N[ok], K[ok], n[ok]
    up = k >= _mean(N, K, n)  # the lower tail is the upper one of n - X, hypergeometric with N - K marked
    tail, at_k = _tail_up(np.where(up, k, n - k), N, np.where(up, K, N - K), n)
    other = 1.0 - tail + at_k
    out[ok] = np.minimum(2 * np.clip(np.minimum(tail, other), 0.0, 1.0), 1.0)
    return out
