"""A label join's answer kept between reads as a chain of labelled blocks, moved on by the requests labelled since.

Concept drift joins the newest ``limit`` labelled rows at every health check: requests from the newest back, each
one's block of joined rows, put together. For a service answering one row at a time the window is 2,000 one-row
requests: walking them and putting 2,000 blocks together cost ~4 ms a check in memory and ~2.5 ms with SQLite
(``bench/health.py --breakdown``, one-row requests), though a new request changes one block. A :class:`Chain` is
the blocks a join used, oldest first, with their rows put together; :meth:`Chain.moved` drops the oldest blocks the
new ones push out and appends the new: the same lists and arrays, value for value, as :meth:`Chain.of` putting
every block kept together again (each block's rows are copied as they are, in the same order). Moving on took the
one-row-request health from 12.3 to 7.3 ms in memory and from 18.6 to 9.7 ms with SQLite.

The chain knows no backend. Each one builds its blocks (in memory ``monitor/feedback.py``'s ``labelled_block``,
SQLite ``store/sqlite/joined.py``'s ``block_of``) and decides when it may move on rather than join afresh: only
when nothing the last join read has changed but newer requests' labels (in memory ``Labels`` notes the requests it
touches; SQLite numbers every label change and counts deletions).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

__all__ = ["BAD", "Block", "Chain"]

BAD = object()  # a stored label (or time) that does not decode: its row is left out of the answer, after the limit


class Block(NamedTuple):
    """One request's joined rows, oldest row first: their outputs, labels, delays in seconds (NaN: a time not
    known), and the outputs as :func:`~guarded_serving.performance.plain_matrix` reads them (None: not plain),
    computed once when the request is joined, not at every read. (The chain reads any such 4-tuple.)"""

    outputs: list[Any]
    labels: list[Any]
    delays: np.ndarray
    matrix: np.ndarray | None


@dataclasses.dataclass(frozen=True, eq=False)
class Chain:
    """The blocks of the labelled requests a join used (``ids``, their ``sequences`` and ``blocks``, oldest first):
    the fewest newest ones holding ``limit`` rows, or all there were, made at change number ``changes``; a later
    request is not among them. Their ``rows`` put together: ``outputs``, ``labels``, ``delays``, and the outputs'
    ``matrix`` when every block with rows has one, all of one width (else None); ``plainless``: how many blocks with
    rows have none. The answer is their last ``limit`` rows (:meth:`answer`)."""

    limit: int
    changes: int
    ids: list[str]
    sequences: list[int]
    blocks: list[Block]
    rows: int
    outputs: list[Any]
    labels: list[Any]
    delays: np.ndarray
    matrix: np.ndarray | None
    plainless: int

    @property
    def full(self) -> bool:
        """Whether the blocks hold ``limit`` rows: older requests' labels cannot be among the newest rows."""
        return self.rows >= self.limit

    @property
    def oldest(self) -> int:
        """The sequence of the oldest request among the blocks (1 when there are none)."""
        return self.sequences[0] if self.sequences else 1

    @property
    def newest(self) -> int:
        """The sequence of the newest request among the blocks (0 when there are none): what a later join walks
        back to (later requests were not labelled then, or not yet read)."""
        return self.sequences[-1] if self.sequences else 0

    def answer(self) -> Block:
        """The newest ``limit`` rows, oldest first (the oldest block's first rows may be beyond the limit), less
        those whose label is ``BAD``."""
        skip = max(self.rows - self.limit, 0)
        outputs, labels, delays = self.outputs[skip:], self.labels[skip:], self.delays[skip:]
        matrix = self.matrix[skip:] if self.matrix is not None else None
        if self.plainless and BAD in labels:  # (a block with a BAD label has no matrix: only then is one looked for)
            good = [i for i, label in enumerate(labels) if label is not BAD]
            outputs, labels, delays, matrix = [outputs[i] for i in good], [labels[i] for i in good], delays[good], None
        return Block(outputs, labels, delays, matrix)

    @classmethod
    def of(cls, limit: int, changes: int, ids: list[str], sequences: list[int], blocks: list[Block]) -> Chain:
        """The blocks (oldest first; their ids and sequences alongside) put together."""
        outputs: list[Any] = []
        labels: list[Any] = []
        for block_outputs, block_labels, _, _ in blocks:
            outputs.extend(block_outputs)
            labels.extend(block_labels)
        delays = np.concatenate([delays for _, _, delays, _ in blocks]) if blocks else np.zeros(0)
        plainless = _plainless(blocks)
        matrix = _matrix(blocks) if not plainless else None
        return cls(limit, changes, ids, sequences, blocks, len(outputs), outputs, labels, delays, matrix, plainless)

    @classmethod
    def of_newest(cls, limit: int, changes: int, found: list[tuple[str, int, Block]]) -> Chain:
        """The fewest newest of the blocks ``found`` (id, sequence, block; newest first) that hold ``limit`` rows, or
        all of them, put together."""
        kept = rows = 0
        while kept < len(found) and (rows < limit or not kept):  # the first block counts even for a limit of 0
            rows += len(found[kept][2][0])
            kept += 1
        chosen = found[:kept][::-1]  # oldest first
        return cls.of(limit, changes, [i for i, _, _ in chosen], [s for _, s, _ in chosen], [b for _, _, b in chosen])

    def moved(self, changes: int, new: list[tuple[str, int, Block]]) -> Chain:
        """This chain with the ``new`` requests' blocks (id, sequence, block; oldest first, all newer than this
        chain's) appended, and the oldest blocks they push out dropped: what :meth:`of` answers for the blocks kept."""
        added = [block for _, _, block in new]
        blocks = self.blocks + added
        rows = self.rows + sum(len(block[0]) for block in added)
        dropped = left = 0  # the oldest blocks pushed out, and their rows
        while dropped < len(blocks) and rows - left - len(blocks[dropped][0]) >= self.limit:
            left += len(blocks[dropped][0])
            dropped += 1
        kept = blocks[dropped:]
        ids = self.ids[dropped:] + [rid for rid, _, _ in new][max(dropped - len(self.ids), 0) :]
        sequences = self.sequences[dropped:] + [s for _, s, _ in new][max(dropped - len(self.ids), 0) :]
        if dropped >= len(self.blocks):  # nothing of this chain is kept: the new blocks alone
            return Chain.of(self.limit, changes, ids, sequences, kept)
        outputs = self.outputs[left:]
        labels = self.labels[left:]
        for block_outputs, block_labels, _, _ in added:
            outputs.extend(block_outputs)
            labels.extend(block_labels)
        delays = np.concatenate([self.delays[left:], *(delays for _, _, delays, _ in added)])
        plainless = _plainless(added) + (self.plainless - _plainless(blocks[:dropped]) if self.plainless else 0)
        matrix: np.ndarray | None
        if plainless:  # a block kept has none
            matrix = None
        elif self.matrix is not None and all(m is not None and m.shape[1] == self.matrix.shape[1] for o, _, _, m in added if o):
            matrix = np.concatenate([self.matrix[left:], *(m for o, _, _, m in added if o and m is not None)])
        else:  # not one matrix before (no rows, outputs of several widths, a block without one since dropped)
            matrix = _matrix(kept)
        return Chain(self.limit, changes, ids, sequences, kept, rows - left, outputs, labels, delays, matrix, plainless)


def _plainless(blocks: list[Block]) -> int:
    """How many of the blocks have rows but no matrix."""
    return sum(1 for outputs, _, _, matrix in blocks if outputs and matrix is None)


def _matrix(blocks: list[Block]) -> np.ndarray | None:
    """The blocks' outputs as one matrix when every block with rows has a plain matrix, all of one width; else
    None. A block without rows is skipped: it adds no row to the matrix, so it cannot make the rows not plain."""
    matrices = [matrix for outputs, _, _, matrix in blocks if outputs]
    if matrices and all(m is not None for m in matrices) and len({m.shape[1] for m in matrices if m is not None}) == 1:
        return np.concatenate([m for m in matrices if m is not None])
    return None
