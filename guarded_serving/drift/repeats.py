"""Repeated rows: how many independent rows a window is worth when the same rows come back.

The checks' nulls (the calibration's draws, the joint check's spread, the quality check's tails) are those of
independent rows. A stream that serves a small set of rows again and again (a held-out test set replayed, a
client retrying, a cache in front of a feature store) is not that: a window of 1,000 rows drawn from 54 differs
from the reference as those 54 rows do, and judged as 1,000 independent rows the 54's own sampling noise reads
as drift (wine, 54 held-out rows replayed: data drift on 78 of 80 healthy checks, the out-of-range test on 56).

Rows also repeat by chance (discrete features, a few categories), as often as the reference's own rows do. So:

- a row's fingerprint is taken over up to :data:`COLUMNS` numeric features, those with the most distinct values in
  the reference's row sample (one continuous feature already tells a replay from a chance repeat; categorical ones
  only when there is none, :meth:`RowKeys.of`);
- the reference's pair rate ``q`` is the share of its row pairs with equal fingerprints; the window's share is
  judged against what chance gives it (:meth:`RowKeys.chance`: ``q`` plus three standard deviations of both
  shares' noise), so that discrete rows repeating as the reference's do are not taken for a replay;
- the window's share beyond that is read as a pool of ``N`` rows served again and again: it is about
  ``(1 - q) / N``;
- ``n`` rows drawn from a pool of ``N`` that was itself drawn from the reference's population vary like
  ``1 / (1/n + 1/N)`` independent rows (the pool's sampling noise adds to the window's; Kish's effective size
  ``n^2 / sum(c^2)`` when ``q = 0``), and the checks widen their nulls to that size.

Never below :data:`MIN_EFFECTIVE` rows: one row served over and over (a stuck feed) is still judged, as that many
rows holding the same values. The size is rounded down to steps of 2^(1/8), so that the checks' limits, computed
once per size (``drift.limits``), are not computed afresh at every health check of a replayed stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..rowsample import RowSample
from .baseline import Baseline

__all__ = ["COLUMNS", "MIN_EFFECTIVE", "Repeats", "RowKeys"]

COLUMNS = 8
MIN_EFFECTIVE = 50
_STEPS_PER_DOUBLING = 8
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))  # splitmix64's finaliser
_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))
_NAN = np.uint64(0x7FF8000000000000)
_SEED = 20261203


@dataclass(frozen=True, slots=True)
class Repeats:
    """A window of ``rows`` rows, ``distinct`` of them different, judged as ``effective`` independent rows."""

    rows: int
    distinct: int
    effective: int
    pool: float = math.inf  # how many rows the stream seems to replay (infinite: none beyond chance)

    @property
    def replayed(self) -> bool:
        return self.effective < self.rows

    def worth(self, rows: int) -> float:
        """What ``rows`` rows of the same stream are worth as independent rows (labelled rows: concept drift), never
        below MIN_EFFECTIVE (or ``rows``, when fewer), as the window's size."""
        return max(rows / (1 + rows / self.pool), min(rows, MIN_EFFECTIVE))

    def scaled(self, counts: np.ndarray, kept: bool = False) -> np.ndarray:
        """Counts of the window's values (per feature, per bin) as the effective window would hold them; ``kept``:
        a count that was not zero stays at least one (a feature's present values, which its limits divide by)."""
        counts = np.asarray(counts)
        out = np.round(counts * (self.effective / self.rows if self.rows else 1.0)).astype(np.intp)
        return np.where(counts > 0, np.maximum(out, 1), 0) if kept else out

    def describe(self) -> str:
        return f"{self.rows} rows but {self.distinct} distinct: judged as {self.effective} independent rows"


@dataclass(frozen=True, eq=False)
class RowKeys:
    """Which of the window's columns a row's fingerprint is taken over, and the reference's pair rate on them."""

    columns: np.ndarray  # positions among the window's features
    salt: np.ndarray  # one odd 64-bit number per fingerprinted column
    pair_rate: float  # the share of the reference's row pairs that are equal on those columns
    triple_rate: float  # ... and of its row triples (what the pair share's noise depends on)
    reference_rows: int

    @classmethod
    def of(cls, sample: RowSample | None, base: Baseline) -> RowKeys | None:
        """From the reference's row sample (None without one, or with fewer than three rows: too few to compare with).

        Numeric features are fingerprinted; categorical ones only when there are none, and not those whose values are
        mostly new (a user id: each fresh one encodes as an unseen category, so fresh rows would look alike)."""
        if sample is None or sample.rows < 3:
            return None
        matrix = sample.matrix
        position = {n: j for j, n in enumerate(base.names)}
        numeric = {base.names[j] for j in base.num_idx.tolist()}
        kept = [k for k, n in enumerate(sample.names) if n in numeric]
        if not kept:
            mostly_new = base.singletons > 0.5 * base.present
            kept = [k for k, n in enumerate(sample.names) if n in position and not mostly_new[position[n]]]
        if not kept:
            return None
        distinct = [len(np.unique(matrix[:, k])) for k in kept]
        chosen = sorted(sorted(range(len(kept)), key=lambda i: -distinct[i])[:COLUMNS])
        salt = np.random.default_rng(_SEED).integers(1, 2**63, size=len(chosen), dtype=np.uint64) | np.uint64(1)
        columns = np.array([position[sample.names[kept[i]]] for i in chosen], dtype=np.intp)
        keys = cls(columns, salt, 0.0, 0.0, 0)
        counts = _runs(np.sort(keys._fingerprints(matrix[:, [kept[i] for i in chosen]]))).astype(float)
        m = sample.rows
        pairs = float((counts * (counts - 1)).sum()) / (m * (m - 1))
        triples = float((counts * (counts - 1) * (counts - 2)).sum()) / (m * (m - 1) * (m - 2))
        return cls(columns, salt, pairs, triples, m)

    def fingerprints(self, matrix: np.ndarray) -> np.ndarray:
        """One 64-bit fingerprint per row of the window's ``matrix`` (rows x features): equal rows, equal ones."""
        return self._fingerprints(matrix[:, self.columns])

    def _fingerprints(self, values: np.ndarray) -> np.ndarray:
        floats = np.asarray(values, dtype=np.float64) + 0.0  # -0.0 as 0.0
        bits = floats.view(np.uint64)
        if np.isnan(floats).any():  # every NaN alike
            bits = np.where(np.isnan(floats), _NAN, bits)
        mixed = (bits ^ (bits >> _SHIFTS[0])) * _MIX[0]  # integer arrays wrap around silently
        mixed = (mixed ^ (mixed >> _SHIFTS[1])) * _MIX[1]
        mixed ^= mixed >> _SHIFTS[2]
        return np.asarray((mixed * self.salt).sum(axis=1, dtype=np.uint64))

    def chance(self, rows: int) -> float:
        """The most a window of ``rows`` rows' share of equal row pairs reaches by chance: the reference's share
        plus three standard deviations of the two shares' difference (each a U-statistic whose variance is about
        ``4 (t - q^2) / n + 2 q (1 - q) / n^2``, ``q`` and ``t`` the chance that two and three rows are equal) and
        three pairs of the reference's: a reference that never repeats cannot rule out a rate below that."""
        q, t, m = self.pair_rate, self.triple_rate, self.reference_rows

        def variance(n: int) -> float:
            return max(4 * (t - q * q) / n, 0.0) + 2 * q * (1 - q) / (n * (n - 1))

        return q + 3 * math.sqrt(variance(rows) + variance(m)) + 3 / (m * (m - 1) / 2)

    def replayed(self, matrix: np.ndarray) -> Repeats | None:
        """:meth:`repeats` of the rows of the window's ``matrix`` when they repeat beyond chance, else None."""
        found = self.repeats(self.fingerprints(matrix))
        return found if found.replayed else None

    def repeats(self, fingerprints: np.ndarray) -> Repeats:
        """How many independent rows a window with these row ``fingerprints`` is worth (see the module's text)."""
        n = len(fingerprints)
        if n < 2:
            return Repeats(n, n, n)
        ordered = np.sort(fingerprints)
        if not (ordered[1:] == ordered[:-1]).any():  # the common case: ~0.04 ms for 2,000 rows
            return Repeats(n, n, n)
        runs = _runs(ordered)
        distinct = len(runs)
        equal = float((runs * (runs - 1)).sum()) / (n * (n - 1))
        beyond = (equal - self.chance(n)) / (1 - min(self.pair_rate, 0.5))  # about 1 / N, the pool's size
        if beyond <= 0:
            return Repeats(n, distinct, n)
        effective = n / (1 + n * beyond)  # 1 / (1/n + 1/N)
        steps = math.ceil(_STEPS_PER_DOUBLING * math.log2(n / effective))
        rounded = math.floor(n * 2 ** (-steps / _STEPS_PER_DOUBLING))
        return Repeats(n, distinct, min(n, max(rounded, MIN_EFFECTIVE)), 1 / beyond)


def _runs(ordered: np.ndarray) -> np.ndarray:
    """How many times each distinct value of the sorted ``ordered`` occurs."""
    if not len(ordered):
        return np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return np.diff(np.append(starts, len(ordered)))
