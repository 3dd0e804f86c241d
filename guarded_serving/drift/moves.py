"""How a window moved: the rows that left it and the rows that came, found from the two windows' contents.

A window between two health checks usually moved by a few requests: its oldest rows left, new rows came,
and the rest is the same rows in the same order. :func:`move_between` finds that (for a window read from
memory or from the store alike, by comparing the values themselves, bit for bit), so that a check can update
what it computed on the old window from the few rows that changed instead of computing it again on all of
them. It answers None when the new window is not the old one moved (a window of another size policy,
rows replaced in the middle, or more than half of it new: computing afresh is then as cheap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .window import WindowData

__all__ = ["Move", "move_between"]

MAX_CANDIDATES = 4  # positions of the new window's first row in the old one tried before giving up
MAX_NEW_SHARE = 0.5  # beyond this share of new rows, a check computed afresh costs no more than an update


@dataclass(frozen=True, eq=False)
class Move:
    """The old window's ``departed`` oldest rows left it and ``arrived`` rows were appended.

    ``new == concatenate([old[departed:], arrived])`` for inputs and outputs alike, bit for bit.
    """

    departed: int
    left_inputs: np.ndarray  # the rows that left, oldest first
    arrived_inputs: np.ndarray  # the rows that came, oldest first
    left_outputs: np.ndarray | None
    arrived_outputs: np.ndarray | None

    @property
    def arrived(self) -> int:
        return int(self.arrived_inputs.shape[0])


def _bits(matrix: np.ndarray) -> np.ndarray:
    """The matrix as unsigned integers of its width: equal exactly when the values' bits are (NaN equal to itself)."""
    values = np.ascontiguousarray(matrix, dtype=np.float64)
    return values.view(np.uint64)


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(_bits(a), _bits(b)))


def move_between(old: WindowData, new: WindowData) -> Move | None:
    """How ``old`` became ``new`` (see :class:`Move`), or None when it did not by dropping old rows and adding new ones."""
    o, n = old.rows, new.rows
    if o == 0 or n == 0 or old.inputs.shape[1] != new.inputs.shape[1]:
        return None
    if (old.outputs is None) != (new.outputs is None):
        return None
    if old.outputs is not None and new.outputs is not None and old.outputs.shape[1] != new.outputs.shape[1]:
        return None
    old_bits = _bits(old.inputs)
    first = _bits(new.inputs[:1])
    # Where the new window's first row could start in the old one: by its first value (a column, not the whole
    # matrix, is compared), each candidate then checked whole, with the rows after it.
    candidates = np.flatnonzero(old_bits[:, 0] == first[0, 0])
    if len(candidates) > 1:
        candidates = candidates[(old_bits[candidates] == first[0]).all(axis=1)]
    for departed in candidates[:MAX_CANDIDATES].tolist():
        kept = o - departed
        arrived = n - kept
        if arrived < 0 or arrived > MAX_NEW_SHARE * n:
            continue
        if not np.array_equal(old_bits[departed:], _bits(new.inputs[:kept])):
            continue
        if old.outputs is not None and new.outputs is not None and not _same_rows(old.outputs[departed:], new.outputs[:kept]):
            continue
        return Move(
            departed=departed,
            left_inputs=old.inputs[:departed],
            arrived_inputs=new.inputs[kept:],
            left_outputs=old.outputs[:departed] if old.outputs is not None else None,
            arrived_outputs=new.outputs[kept:] if new.outputs is not None else None,
        )
    return None
