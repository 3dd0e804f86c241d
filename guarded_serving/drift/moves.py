"""How a window moved: the rows that left it and the rows that came, found from the two windows' contents.

A window between two health checks usually moved by a few requests: its oldest rows left, new rows came,
and the rest is the same rows in the same order. :func:`move_between` finds that (for a window read from
memory or from the store alike, by comparing the values themselves, bit for bit), so that a check can update
what it computed on the old window from the few rows that changed instead of computing it again on all of
them. It answers None when the new window is not the old one moved (a window of another size policy,
rows replaced in the middle, or more than half of it new: computing afresh is then as cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .window import StreamRows, WindowData

__all__ = ["Move", "departed_between", "departed_by_parts", "departed_rows", "move_between"]

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


def departed_rows(
    old: np.ndarray, new: np.ndarray, max_new_share: float = 1.0, companions: Sequence[tuple[np.ndarray, np.ndarray]] = ()
) -> int | None:
    """How many of ``old``'s oldest rows left when ``new`` is the rest of ``old`` followed by new rows, bit for bit
    (and each pair of ``companions``, arrays row for row beside them, continues the same way); None when it is
    not, or when more than ``max_new_share`` of ``new`` is new."""
    o, n = len(old), len(new)
    if o == 0 or n == 0 or old.shape[1:] != new.shape[1:] or old.ndim != 2:
        return None
    old_bits = _bits(old)
    first = _bits(new[:1])
    # Where the new rows' first could start in the old: by its first value (a column, not the whole matrix, is
    # compared), each candidate then checked whole, with the rows after it.
    candidates = np.flatnonzero(old_bits[:, 0] == first[0, 0])
    if len(candidates) > 1:
        candidates = candidates[(old_bits[candidates] == first[0]).all(axis=1)]
    for departed in candidates[:MAX_CANDIDATES].tolist():
        kept = o - departed
        arrived = n - kept
        if arrived < 0 or arrived > max_new_share * n:
            continue
        if not np.array_equal(old_bits[departed:], _bits(new[:kept])):
            continue
        if all(_same_rows(a[departed:], b[:kept]) for a, b in companions):
            return int(departed)
    return None


def departed_by_parts(old: WindowData, new: WindowData) -> int | None:
    """How many of ``old``'s oldest rows left, when the two windows' marks (:attr:`WindowData.parts`) say that
    ``new`` is the rest of ``old`` followed by new rows (0 and as many rows: the same window); None when they do
    not say (a chunk without a mark, or not such a move).

    What the values would tell (:func:`departed_rows`, comparing every bit: ~0.2-0.4 ms for 2,000 x 64 values), the
    marks tell from the chunks' names. A memory window's blocks name their rows in the stream of all its rows
    (:class:`~guarded_serving.drift.window.StreamRows`), so the two windows are two stretches of it; stored chunks
    are named by id: the new window's oldest part is one of the old's, it takes no more of that chunk's rows, and
    every part after it is the old window's, in order, then new ones."""
    return departed_between(old.parts, old.rows, new.parts, new.rows)


def departed_between(
    a: tuple[tuple[Any, int], ...] | None, a_rows: int, b: tuple[tuple[Any, int], ...] | None, b_rows: int
) -> int | None:
    """:func:`departed_by_parts` of two windows' parts and rows."""
    if a is None or b is None:
        return None
    here, there = _stretch(a, a_rows), _stretch(b, b_rows)
    if here is not None and there is not None:
        (source, first, end), (source_, first_, end_) = here, there
        return first_ - first if source is source_ and first <= first_ <= end <= end_ else None
    if a == b:
        return 0
    if not a or not b:
        return None
    mark, taken = b[0]
    # near the old window's oldest: a health check's window moved by a few chunks
    i = next((k for k, (m, _) in enumerate(a) if m == mark), None)
    if i is None:
        return None
    had = a[i][1]
    common = len(a) - i
    if taken > had or common > len(b) or a[i + 1 :] != b[1:common]:
        return None
    return sum(t for _, t in a[:i]) + had - taken


def _stretch(parts: tuple[tuple[object, int], ...], rows: int) -> tuple[object, int, int] | None:
    """(source, first row, end) of a memory window's rows in its stream, when its parts are a memory window's
    blocks and follow one another (their rows add up to the stretch's)."""
    if not parts:
        return None
    (oldest, taken), (newest, _) = parts[0], parts[-1]
    if not isinstance(oldest, StreamRows) or not isinstance(newest, StreamRows) or oldest.source is not newest.source:
        return None
    first, end = oldest.start + oldest.count - taken, newest.start + newest.count
    return (oldest.source, first, end) if end - first == rows else None


def move_between(old: WindowData, new: WindowData) -> Move | None:
    """How ``old`` became ``new`` (see :class:`Move`), or None when it did not by dropping old rows and adding new ones."""
    if (old.outputs is None) != (new.outputs is None):
        return None
    outputs = [(old.outputs, new.outputs)] if old.outputs is not None and new.outputs is not None else []
    if outputs and old.outputs.shape[1] != new.outputs.shape[1]:  # type: ignore[union-attr]
        return None
    departed = departed_by_parts(old, new)
    if departed is not None:
        if new.rows - (old.rows - departed) > MAX_NEW_SHARE * new.rows:
            return None
    else:
        departed = departed_rows(old.inputs, new.inputs, MAX_NEW_SHARE, outputs)
    if departed is None:
        return None
    kept = old.rows - departed
    return Move(
        departed=departed,
        left_inputs=old.inputs[:departed],
        arrived_inputs=new.inputs[kept:],
        left_outputs=old.outputs[:departed] if old.outputs is not None else None,
        arrived_outputs=new.outputs[kept:] if new.outputs is not None else None,
    )
