"""How many of a window's values may fall outside the reference's range by chance: the exact, distribution-free law.

Given the reference, a fresh value lands outside ``[min, max]`` of its ``m`` values with some probability ``p``;
but ``p`` is not ``2/(m+1)``, that is only its mean over references: the two outer spacings of ``m`` draws sum to a
Beta(2, m - 1) share of the law, whose spread is ~70 % of its mean whatever ``m``. A binomial test at ``2/(m+1)``
took the mean for the truth, and a window of 1,000 fresh normal rows judged against a 150-row reference (an
iris-sized training set) was flagged out of range in one reference of four (``tests/drift/test_exceedance.py``).

Without that shortcut the count needs no assumption on the law at all: with the ``m`` reference values and the
``n`` window values exchangeable (drawn alike, as on a healthy stream) every order of the ``N = m + n`` values is
equally likely, and ``K`` window values are outside the reference's range when the smallest ``a`` and the largest
``b`` of the ``N`` are all window values and the next ones in from each end are reference values, ``a + b = K``.
Counting those orders::

    P(K = k)  = (k + 1) C(N - k - 2, m - 2) / C(N, m)
    P(K >= k) = [(k + 1) C(N - k - 1, m - 1) + C(N - k - 1, m)] / C(N, m)

(the tail by the hockey-stick identity, twice). That is the beta-binomial law, n draws at a Beta(2, m - 1) rate.
Values equal to the reference's extremes are inside the range, so ties (a discrete feature) only make ``K``
smaller: the test stays conservative there.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

__all__ = ["outside_tail"]


def outside_tail(count: np.ndarray, window: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """P(K >= count) per feature: K the values of a window of ``window`` values below the smallest or above the largest
    of ``reference`` values, all exchangeable. 1 where ``count <= 0`` or the reference has fewer than two values (one
    value spans no range to judge by)."""
    k, n, m = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (count, window, reference)))
    out = np.ones(k.shape)
    judged = (k > 0) & (m >= 2) & (k <= n)
    if not judged.any():
        return out
    k, n, m = k[judged], n[judged], m[judged]
    big = n + m
    # log of C(N-k-1, m-1) / C(N, m) and of C(N-k-1, m) / C(N, m), written so that the m! cancel
    common = gammaln(big - k) - gammaln(big + 1) + gammaln(n + 1)
    first = (k + 1) * m * np.exp(common - gammaln(n - k + 1))
    second = np.where(k < n, np.exp(common - gammaln(np.maximum(n - k, 1.0))), 0.0)
    out[judged] = np.minimum(first + second, 1.0)
    return out
