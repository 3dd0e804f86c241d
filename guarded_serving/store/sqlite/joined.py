"""The SQLite label join's rows: one request's block of joined rows, and the blocks a read hands back put together.

A read of the join (``labels.py``) hands back the newest ``limit`` labelled rows, oldest first. They were put
together from the blocks on every read: for a service answering one row at a time that is 2,000 blocks, ~1.5 ms
(plus ~1 ms of sorting and counting them), though one new request changes one block. :class:`Joined` keeps the
blocks a read used, oldest first, with their rows put together, and :meth:`Joined.moved` appends a newer request's
block and drops the oldest it pushes out. Each block keeps its rows oldest first, so putting blocks together is
concatenating them: the answer is the same lists and arrays, value for value, however the blocks were gathered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any

import numpy as np

from ...performance import plain_matrix
from ..records import LabelledRows

__all__ = ["BAD", "Block", "Joined", "block_of", "newest"]


@dataclasses.dataclass(frozen=True, eq=False)
class Block:
    """One request's labelled rows as stored (newest row first) and as joined, oldest row first: the rows that have
    an output, with their output, decoded label (``BAD`` when it does not decode) and delay in seconds (``known``:
    where both times are known)."""

    rows: list[Any]
    ts: Any
    outs: list[Any]
    outputs: list[Any]
    labels: list[Any]
    delays: np.ndarray
    known: np.ndarray
    bad: bool  # a label does not decode
    matrix: np.ndarray | None  # the outputs as plain_matrix reads them (None: not plain)

    @property
    def request(self) -> int:
        """The stored request's id (its ``requests.id``)."""
        return int(self.rows[0][0])

    @property
    def request_id(self) -> str:
        """The request id its labels name."""
        return str(self.rows[0][5])


def block_of(rows: list[Any], ts: Any, outs: list[Any], seconds: dict[Any, float]) -> Block:
    """``rows`` (id, row, label, label valid, label time, request id; last row first) of one request joined to its
    outputs."""
    kept = rows if rows[0][1] < len(outs) else [r for r in rows if r[1] < len(outs)]  # the first fits: all do
    kept = kept[::-1]
    labels = _decode([r[2] for r in kept], [r[3] for r in kept])
    # epoch seconds as the monitor always read them, parsed once per distinct time, not twice per row
    for text in {ts, *(r[4] for r in kept)} - seconds.keys():
        seconds[text] = _seconds(text)
    begun = seconds[ts]
    outputs = [outs[r[1]] for r in kept]
    bad = any(label is BAD for label in labels)
    # read once per request, not per health check (converting a window's 2,000 outputs cost ~0.8 ms each time)
    matrix = plain_matrix(outputs) if outputs and not bad else None
    ended = np.array([seconds[r[4]] for r in kept], dtype=float)
    known = ~(np.isnan(ended) | math.isnan(begun))
    return Block(rows, ts, outs, outputs, labels, ended - begun, known, bad, matrix)


def newest(blocks: list[Block], limit: int) -> list[Block]:
    """The blocks (newest first) that hold the newest ``limit`` joined rows: what a read hands back and keeps."""
    rows = 0
    for i, block in enumerate(blocks):
        rows += len(block.outputs)
        if rows >= limit:
            return blocks[: i + 1]
    return blocks


@dataclasses.dataclass(frozen=True, eq=False)
class Joined:
    """The blocks a read handed back (``blocks``, oldest first: the fewest newest holding ``limit`` rows, or all),
    by request id (``ids``: the ids their labels name, to their stored requests), and their ``rows`` put together:
    ``outputs``, ``labels``, ``delays``, ``known``, how many blocks have a ``bad`` label, the outputs' ``matrix``
    when every block with rows has one of one width (else None), and how many blocks with rows have none
    (``plainless``)."""

    limit: int
    blocks: list[Block]
    ids: dict[str, int]
    rows: int
    outputs: list[Any]
    labels: list[Any]
    delays: np.ndarray
    known: np.ndarray
    bad: int
    matrix: np.ndarray | None
    plainless: int

    @classmethod
    def of(cls, blocks: list[Block], limit: int) -> Joined:
        """The blocks (oldest first) put together."""
        outputs: list[Any] = []
        labels: list[Any] = []
        for block in blocks:
            outputs.extend(block.outputs)
            labels.extend(block.labels)
        return cls(
            limit,
            blocks,
            {block.request_id: block.request for block in blocks},
            len(outputs),
            outputs,
            labels,
            np.concatenate([block.delays for block in blocks]) if blocks else np.zeros(0),
            np.concatenate([block.known for block in blocks]) if blocks else np.zeros(0, dtype=bool),
            sum(block.bad for block in blocks),
            _matrix(blocks),
            sum(block.matrix is None for block in blocks if block.outputs),
        )

    @property
    def newest(self) -> int:
        """The newest block's stored request (0 when there are none)."""
        return self.blocks[-1].request if self.blocks else 0

    def moved(self, new: list[Block]) -> Joined:
        """These blocks with the ``new`` ones (oldest first, each of a stored request newer than every one here)
        appended, and the oldest they push out dropped: what :meth:`of` answers for the blocks kept. This one's
        ``ids`` are handed on to it: only its blocks may be read after (a reader that fails before keeping the
        moved one reads the whole join next time, from the blocks)."""
        blocks = self.blocks + new
        rows = self.rows + sum(len(block.outputs) for block in new)
        dropped = left = 0  # the oldest blocks pushed out, and their rows
        while dropped < len(blocks) and rows - left - len(blocks[dropped].outputs) >= self.limit:
            left += len(blocks[dropped].outputs)
            dropped += 1
        kept = blocks[dropped:]
        plainless = self.plainless + sum(b.matrix is None for b in blocks[len(self.blocks) :] if b.outputs)
        plainless -= sum(b.matrix is None for b in blocks[:dropped] if b.outputs)
        if dropped >= len(self.blocks) or (self.matrix is None and not plainless):  # one matrix again, or no rows kept
            return Joined.of(kept, self.limit)
        ids = self.ids  # handed on, not copied (2,000 entries): the reader keeps only the moved one
        for block in self.blocks[:dropped]:
            del ids[block.request_id]
        ids.update((block.request_id, block.request) for block in new)
        outputs = self.outputs[left:]
        labels = self.labels[left:]
        for block in new:
            outputs.extend(block.outputs)
            labels.extend(block.labels)
        matrix: np.ndarray | None = None  # None while a block kept has none: plainless
        width = self.matrix.shape[1] if self.matrix is not None else None
        if self.matrix is not None and all(b.matrix is not None and b.matrix.shape[1] == width for b in new if b.outputs):
            matrix = np.concatenate([self.matrix[left:], *(b.matrix for b in new if b.matrix is not None and b.outputs)])
        return Joined(
            self.limit,
            kept,
            ids,
            rows - left,
            outputs,
            labels,
            np.concatenate([self.delays[left:], *(block.delays for block in new)]),
            np.concatenate([self.known[left:], *(block.known for block in new)]),
            self.bad - sum(block.bad for block in self.blocks[:dropped]) + sum(block.bad for block in new),
            matrix,
            plainless,
        )

    def answer(self) -> LabelledRows:
        """The newest ``limit`` joined rows, oldest first; a label that does not decode left out after the limit."""
        skip = max(self.rows - self.limit, 0)
        outputs, labels, delays, known = self.outputs[skip:], self.labels[skip:], self.delays[skip:], self.known[skip:]
        matrix = self.matrix[skip:] if self.matrix is not None else None
        if self.bad:
            good = [i for i, label in enumerate(labels) if label is not BAD]
            outputs, labels, delays, known = [outputs[i] for i in good], [labels[i] for i in good], delays[good], known[good]
            matrix = None
        return LabelledRows(outputs, labels, delays[known], matrix)


def _matrix(blocks: list[Block]) -> np.ndarray | None:
    """The blocks' outputs as one matrix when every block with rows has a plain matrix, of one width; else None."""
    matrices = [block.matrix for block in blocks if block.outputs]
    if matrices and all(m is not None for m in matrices) and len({m.shape[1] for m in matrices if m is not None}) == 1:
        return np.concatenate([m for m in matrices if m is not None])
    return None


BAD = object()  # a label that does not decode


def _decode(texts: list[Any], valid: list[Any]) -> list[Any]:
    """JSON texts decoded, ``BAD`` for one that does not decode. When SQLite found them all valid, one
    ``json.loads`` of them as an array (about 20x faster than one call each)."""
    if valid.count(1) == len(valid):
        try:
            decoded = json.loads("[" + ",".join(texts) + "]")
        except (TypeError, ValueError):  # a label stored as a number, not text; NaN...
            decoded = None
        if isinstance(decoded, list) and len(decoded) == len(texts):
            return decoded
    return [_loads(text) for text in texts]


def _seconds(text: Any) -> float:
    """Epoch seconds of a stored time; NaN when it is not one (a damaged row)."""
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return BAD
