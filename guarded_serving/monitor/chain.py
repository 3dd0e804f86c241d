"""The in-memory label join's answer kept between health checks and moved on by the requests labelled since.

Without a store, concept drift joins the newest ``limit`` labelled rows at every health check: requests from the
newest back, each one's block of joined rows (kept per request), put together. For a service answering one row at
a time the window is 2,000 one-row requests: walking them and putting 2,000 blocks together cost ~4 ms a check
(``bench/health.py --breakdown``, one-row requests), though a new request changes one block. A :class:`Chain` is
the blocks a join used, oldest first, with their rows put together; :meth:`Chain.moved` drops the oldest blocks the
new ones push out and appends the new: the same lists and arrays, value for value, as putting every block together
again (each block's rows are copied as they are, in the same order). ``Labels`` decides when it may move on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..performance import plain_matrix

__all__ = ["Block", "Chain", "labelled_block"]

# one request's joined rows (outputs, labels, delays in seconds), and its outputs' matrix
Block = tuple[list[Any], list[Any], np.ndarray, np.ndarray | None]


def labelled_block(labelled_rows: dict[int, tuple[Any, float]], ts: float, outs: list[Any]) -> Block:
    """One request's labelled rows in row order: their outputs, labels, delays (rows past its outputs left out),
    and the outputs as a plain matrix (None when they are not one): read once per request, not per health check."""
    rows = [row for row in sorted(labelled_rows) if row < len(outs)]
    outputs = [outs[row] for row in rows]
    delays = np.array([labelled_rows[row][1] - ts for row in rows], dtype=float)
    return outputs, [labelled_rows[row][0] for row in rows], delays, plain_matrix(outputs)


@dataclasses.dataclass(frozen=True, eq=False)
class Chain:
    """The blocks of the labelled requests a join used (``ids``, their ``sequences`` and ``blocks``, oldest first):
    the fewest newest ones holding ``limit`` rows, or all there were, made at change number ``changes``; a later
    request is not among them. Their ``rows`` put together: ``outputs``, ``labels``, ``delays`` and the
    outputs' ``matrix`` when every block's is one of one width (else None). The answer is their last ``limit``."""

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
        back to (later requests were not labelled then, or not yet remembered)."""
        return self.sequences[-1] if self.sequences else 0

    @classmethod
    def of(cls, limit: int, changes: int, ids: list[str], sequences: list[int], blocks: list[Block]) -> Chain:
        """The blocks (oldest first) put together."""
        outputs: list[Any] = []
        labels: list[Any] = []
        for block in blocks:
            outputs.extend(block[0])
            labels.extend(block[1])
        delays = np.concatenate([block[2] for block in blocks]) if blocks else np.zeros(0)
        return cls(limit, changes, ids, sequences, blocks, len(outputs), outputs, labels, delays, _matrix(blocks))

    def moved(self, changes: int, new: list[tuple[str, int, Block]]) -> Chain:
        """This chain with the ``new`` requests' blocks (id, sequence, block; oldest first, all newer than this
        chain's) appended, and the oldest blocks they push out dropped: as :meth:`of` the blocks kept puts them."""
        blocks = self.blocks + [block for _, _, block in new]
        rows = self.rows + sum(len(block[0]) for block in blocks[len(self.blocks) :])
        dropped = 0
        left = 0  # rows of the dropped blocks
        while dropped < len(blocks) and rows - left - len(blocks[dropped][0]) >= self.limit:
            left += len(blocks[dropped][0])
            dropped += 1
        ids = self.ids[dropped:] + [rid for rid, _, _ in new][max(dropped - len(self.ids), 0) :]
        sequences = self.sequences[dropped:] + [s for _, s, _ in new][max(dropped - len(self.ids), 0) :]
        if dropped > len(self.blocks):  # the new blocks alone hold the limit: nothing of this chain is kept
            return Chain.of(self.limit, changes, ids, sequences, blocks[dropped:])
        added = blocks[len(self.blocks) :]
        outputs = self.outputs[left:]
        labels = self.labels[left:]
        for block in added:
            outputs.extend(block[0])
            labels.extend(block[1])
        kept = blocks[dropped:]
        delays = np.concatenate([self.delays[left:], *(block[2] for block in added)])
        if self.matrix is None or not added:  # not one matrix (or no blocks) before: look at every block kept
            matrix = _matrix(kept) if self.matrix is None else self.matrix[left:]
        elif all(b[3] is not None and b[3].shape[1] == self.matrix.shape[1] for b in added):
            matrix = np.concatenate([self.matrix[left:], *(block[3] for block in added if block[3] is not None)])
        else:
            matrix = None
        return Chain(self.limit, changes, ids, sequences, kept, rows - left, outputs, labels, delays, matrix)


def _matrix(blocks: list[Block]) -> np.ndarray | None:
    """The blocks' outputs as one matrix when every block's is a plain matrix of one width, else None."""
    matrices = [block[3] for block in blocks if block[3] is not None]
    if matrices and len(matrices) == len(blocks) and len({m.shape[1] for m in matrices}) == 1:
        return np.concatenate(matrices)
    return None
