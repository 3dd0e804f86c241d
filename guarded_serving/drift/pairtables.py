"""The joint drift check's per-pair arrays as each check of a window uses them (:mod:`guarded_serving.drift.joint`).

A check judges ~2,000 pairs of 64 columns with a few dozen numpy calls of ~5 us each: the arrays it takes from
the baseline are indexed once per baseline here (pairs' shares, Fisher's z of the reference correlations, the
pairs grouped by feature for blaming), and a full window's spreads, bounds and the places of its clip bounds once
per window size.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .correlation import block_rows, clipped, trim_positions

if TYPE_CHECKING:
    from .joint import JointBaseline

__all__ = ["MIN_CELL", "PairTables", "Scratch", "Workspace"]

MIN_CELL = 10  # rows a window must expect with both members of a pair present (categories: the level too)


@dataclass(frozen=True, eq=False)
class Scratch:
    """The arrays a check of a complete window (no value missing) computes its scores' Gram matrix in, and the
    views :meth:`products_of` multiplies: the window's clipped values (float64, ``scores``), its centred scores
    in float32 (``single``), every block's product, and the views of ``single`` that
    :func:`~guarded_serving.drift.correlation.gram` multiplies, made once: its whole blocks of rows, each
    multiplied with itself (BLAS's symmetric product), then the rows after them."""

    scores: np.ndarray  # the clipped values, before centring
    single: np.ndarray
    products: np.ndarray
    left_blocks: np.ndarray  # per whole block: its rows of ``single``, transposed (columns x block)
    right_blocks: np.ndarray  # per whole block: its rows of ``single`` (block x columns)
    tail: np.ndarray  # the rows after the whole blocks (none when there are none)

    @classmethod
    def of(cls, shape: tuple[int, int]) -> Scratch:
        rows, columns = shape
        block = max(min(block_rows(columns, columns), rows), 1)  # gram multiplies fewer rows than a block at once
        whole = rows // block
        single = np.empty(shape, dtype=np.float32)
        products = np.empty((-(-rows // block), columns, columns), dtype=np.float32)
        right_blocks = single[: whole * block].reshape(whole, block, columns)
        return cls(np.empty(shape), single, products, right_blocks.transpose(0, 2, 1), right_blocks, single[whole * block :])

    def products_of(self, columns: np.ndarray, levels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The Gram matrix (float32) of the scores of ``columns`` (rows x columns, C-ordered, no value missing):
        bit for bit ``gram(s, s)`` of ``s = complete_scores(columns, levels, lo, hi).astype(np.float32)``, the same
        operations in the same order, with every array computed in place."""
        values = clipped(columns, levels, lo, hi, self.scores)
        mean = np.add.reduce(values, axis=0) / len(values)  # as complete_scores centres
        np.subtract(values, mean, out=self.single, casting="same_kind")  # in float64, rounded to float32 once
        whole = len(self.right_blocks)
        np.matmul(self.left_blocks, self.right_blocks, out=self.products[:whole])
        if len(self.tail):
            np.matmul(self.tail.T, self.tail, out=self.products[whole])
        return np.asarray(np.add.reduce(self.products, axis=0))  # the blocks' products added in row order


class Workspace:
    """The arrays a check computes a window's scores and their product into, kept from one check to the next.

    A fresh array of 128 KiB or more is a fresh mmap whose pages the kernel maps one by one as they are first
    written: the 2,000 x 64 scores and their float32 copy cost ~250-300 page faults, ~1 ms, whenever malloc's
    state had it so (in a process serving one-row requests, one health check in two); the blocks' products at
    once would cost ~130 more, a few at a time ~0.1 ms more of numpy calls. One set per baseline, the size of
    the window last checked; a check that finds it in use (two checks at once) allocates its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scratch: Scratch | None = None

    def __reduce__(self) -> tuple[type[Workspace], tuple[()]]:  # a copy starts empty (a lock cannot be pickled)
        return (Workspace, ())

    @contextmanager
    def borrowed(self, shape: tuple[int, int]) -> Iterator[Scratch | None]:
        """This workspace's arrays of ``shape`` while the block runs, or None when another check holds them."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            if self._scratch is None or self._scratch.scores.shape != shape:
                self._scratch = Scratch.of(shape)
            yield self._scratch
        finally:
            self._lock.release()


@dataclass(frozen=True, eq=False)
class PairTables:
    """The baseline's per-pair arrays as each check of a window uses them, indexed once (each numpy call costs
    ~5 us, most of a check's time after the product), and the spread and bound of every pair for a window with
    no value missing, by its size (the same for every full window)."""

    every_feature: bool  # the columns are the features, in order (a window's matrix is taken whole)
    numeric: np.ndarray  # columns of numeric features
    ranks: np.ndarray  # their features' positions among the baseline's numeric features
    trim: np.ndarray  # their share clipped off each end
    flat: np.ndarray  # per pair: its position in a columns x columns matrix
    gathered: np.ndarray  # ``flat``, then the positions of each pair's left and right column's square
    share_left: np.ndarray
    share_right: np.ndarray
    fisher_reference: np.ndarray  # arctanh of the reference correlation
    left_name: np.ndarray  # per pair: the positions in ``names`` of its two features
    right_name: np.ndarray
    # every pair twice, once under each of its features, grouped by feature, pairs in order within a group
    by_feature: np.ndarray  # the pairs so grouped
    group_starts: np.ndarray  # where each group starts in ``by_feature``
    group_of: np.ndarray  # per entry of ``by_feature``: its group
    mine: np.ndarray  # per entry of ``by_feature``: the pair's column of the group's feature
    other: np.ndarray  # ... and the partner's column
    grouped_names: np.ndarray  # per group: its feature's position in ``names`` (features with no pair have none)
    group_names: tuple[str, ...]  # ... and its name
    other_labels: np.ndarray  # per entry of ``by_feature``: the partner's label (objects, to take from)
    complete: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]  # rows -> spread, bound, judgeable
    positions: dict[int, np.ndarray]  # rows -> where a full window's clip bounds are in its sorted numeric features
    workspace: Workspace = field(default_factory=Workspace)

    @classmethod
    def of(cls, joint: JointBaseline) -> PairTables:
        numeric = np.flatnonzero(joint.levels < 0)
        width = len(joint.levels)
        flat = joint.left * width + joint.right
        left_name, right_name = joint.name_of[joint.left], joint.name_of[joint.right]
        ends = np.concatenate([left_name, right_name])
        pairs = np.concatenate([np.arange(len(joint.left))] * 2)
        order = np.lexsort((pairs, ends))
        columns = np.concatenate([joint.left, joint.right])
        partners = np.concatenate([joint.right, joint.left])
        grouped_names, group_starts, counts = np.unique(ends[order], return_index=True, return_counts=True)
        return cls(
            every_feature=bool((joint.feature_of == np.arange(len(joint.feature_of))).all()),
            numeric=numeric,
            ranks=joint.numeric_rank[numeric],
            trim=joint.trim[numeric],
            flat=flat,
            gathered=np.concatenate([flat, joint.left * (width + 1), joint.right * (width + 1)]),
            share_left=joint.share[joint.left],
            share_right=joint.share[joint.right],
            fisher_reference=np.arctanh(joint.reference),
            left_name=left_name,
            right_name=right_name,
            by_feature=pairs[order],
            group_starts=group_starts,
            group_of=np.repeat(np.arange(len(counts)), counts),
            mine=columns[order],
            other=partners[order],
            grouped_names=grouped_names,
            group_names=tuple(joint.names[k] for k in grouped_names.tolist()),
            other_labels=np.array(joint.labels, dtype=object)[partners[order]] if len(joint.labels) else np.zeros(0, object),
            complete={},
            positions={},
        )

    def complete_bounds(self, sorted_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~guarded_serving.drift.correlation.order_bounds` of the numeric columns for a window with no value
        missing (``sorted_rows``: its numeric features, each sorted): the order statistics are at the same places in
        every full window of a size, so they are taken at once from positions kept per size."""
        rows = sorted_rows.shape[1]
        positions = self.positions.get(rows)
        if positions is None:
            counts = np.full(len(self.ranks), rows)
            low, high = trim_positions(self.trim, counts)  # as order_bounds places them
            last = np.maximum(counts - 1, 0)
            positions = self.ranks * rows + np.stack([low, high, np.zeros_like(low), last])
            self.positions.clear()  # bounded: one window size at a time
            self.positions[rows] = positions
        lo, hi, first, last_value = sorted_rows.take(positions)
        same = lo == hi
        return np.where(same, first, lo), np.where(same, last_value, hi)

    def spread(self, joint: JointBaseline, pair_rows: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pair, for a window with ``pair_rows`` rows holding both values: the spread of the change in Fisher's
        z, the bound it is judged by, and whether the pair can be judged (a finite bound, rows enough)."""
        if isinstance(pair_rows, int):
            known = self.complete.get(pair_rows)
            if known is None:
                known = self.spread(joint, np.full(len(joint.left), float(pair_rows)))
                self.complete.clear()  # bounded: one window size at a time
                self.complete[pair_rows] = known
            return known
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.sqrt(joint.variance * (1 / pair_rows + 1 / joint.reference_rows))
            skew = joint.third * (1 / pair_rows**2 - 1 / joint.reference_rows**2) / spread**3
        t = joint.threshold
        bound = t + (t * t - 1) * np.abs(skew) / 6  # Cornish-Fisher, on the heavier side
        expected = pair_rows * self.share_left * self.share_right
        return spread, bound, np.isfinite(bound) & (expected >= MIN_CELL)
