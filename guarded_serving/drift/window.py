"""The window: the most recent rows, encoded as numbers, in bounded memory.

Each observed request becomes a :class:`Chunk`: a float matrix with one column per feature
(numeric values as they are, categories as their reference code, an unseen category as -1, a
missing value as NaN), the unseen category names with counts, and the count of values of the
wrong type. Encoding is O(features) per row. A window is the newest chunks holding ``capacity``
rows: kept in memory by :class:`MemoryWindow`, or in the store so that every worker sees the
rows of all workers.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Chunk",
    "MemoryWindow",
    "StreamRows",
    "WindowData",
    "assemble",
    "merge_chunks",
    "merged_counts",
    "take",
    "window_of",
]

UNSEEN = -1.0


@dataclass(frozen=True, eq=False)
class Chunk:
    """Encoded rows of one or more requests.

    ``mark`` names the rows where they were read from (a memory window's block by its stretch of all the rows the
    window was given, :class:`StreamRows`; a stored chunk by its file, id and row count): two chunks with the same
    mark hold the same rows, so a health check tells an unchanged or moved window from the marks alone
    (:func:`~guarded_serving.drift.moves.departed_by_parts`). None when nothing names them (a chunk just encoded,
    one read from PostgreSQL).
    """

    inputs: np.ndarray  # rows x features
    outputs: np.ndarray | None  # rows x outputs, when the reference profiles outputs
    unseen: dict[int, dict[str, int]] = field(default_factory=dict)  # feature index -> name -> count
    type_errors: dict[int, int] = field(default_factory=dict)
    mark: Hashable | None = None

    @property
    def rows(self) -> int:
        return int(self.inputs.shape[0])

    def tail(self, rows: int) -> Chunk:
        """The last ``rows`` rows (unseen names and type errors are kept whole: they are per chunk)."""
        outputs = self.outputs[-rows:] if self.outputs is not None else None
        return Chunk(self.inputs[-rows:], outputs, self.unseen, self.type_errors)

    def marked(self, mark: Hashable) -> Chunk:
        return Chunk(self.inputs, self.outputs, self.unseen, self.type_errors, mark)


@dataclass(frozen=True, slots=True)
class StreamRows:
    """The mark of a memory window's block: its rows ``start`` to ``start + count`` of all the window was given
    (a block the next read merges new rows into keeps its start and counts more)."""

    source: object  # the window's own: equal to no other's
    start: int
    count: int


@dataclass(frozen=True, eq=False)
class WindowData:
    """The assembled window: the newest rows, oldest first.

    ``parts``: per chunk it was assembled from, oldest first, the chunk's mark and how many of its newest rows
    the window took (all but the oldest's, whole); None when some chunk had no mark. Equal parts are equal
    windows, and a window that moved keeps the older one's newest parts, or in memory its stretch of rows
    (:func:`~guarded_serving.drift.moves.departed_by_parts`).
    """

    inputs: np.ndarray
    outputs: np.ndarray | None
    unseen: dict[int, dict[str, int]]
    type_errors: dict[int, int]
    parts: tuple[tuple[Hashable, int], ...] | None = None
    refused_missing: Mapping[int, int] = field(default_factory=dict)  # per feature: requests refused for a null
    refused_range: Mapping[int, int] = field(default_factory=dict)  # ... and for a number far beyond the reference's

    @property
    def rows(self) -> int:
        return int(self.inputs.shape[0])


def assemble(newest_first: Iterable[Chunk], capacity: int, width: int, output_width: int | None) -> WindowData:
    """Concatenate the newest chunks up to ``capacity`` rows (with their marks: see :class:`WindowData`)."""
    return window_of(*take(newest_first, capacity), width, output_width)


def window_of(
    taken: list[Chunk], parts: tuple[tuple[Hashable, int], ...] | None, width: int, output_width: int | None
) -> WindowData:
    """The window of the chunks :func:`take` took, concatenated."""
    if not taken:
        return WindowData(np.empty((0, width)), None if output_width is None else np.empty((0, output_width)), {}, {}, ())
    merged = merge_chunks(taken)
    outputs = merged.outputs
    if output_width is not None and outputs is None:
        outputs = np.empty((0, output_width))
    return WindowData(merged.inputs, outputs if output_width is not None else None, merged.unseen, merged.type_errors, parts)


def take(newest_first: Iterable[Chunk], capacity: int) -> tuple[list[Chunk], tuple[tuple[Hashable, int], ...] | None]:
    """The newest chunks holding up to ``capacity`` rows, oldest first (the oldest cut to its newest rows when
    it holds more than the window needs), and their marks as :attr:`WindowData.parts` (None when one has none)."""
    taken: list[Chunk] = []
    marks: list[tuple[Hashable, int]] | None = []
    rows = 0
    for chunk in newest_first:
        if rows >= capacity:
            break
        need = capacity - rows
        size = chunk.rows
        taken.append(chunk if size <= need else chunk.tail(need))
        if marks is not None:
            if chunk.mark is None:
                marks = None
            else:
                marks.append((chunk.mark, min(size, need)))
        rows += min(size, need)
    taken.reverse()
    return taken, tuple(reversed(marks)) if marks is not None else None


def merge_chunks(parts: list[Chunk]) -> Chunk:
    """One chunk holding the rows of several, in order (outputs kept only if every part has them)."""
    if len(parts) == 1:
        return parts[0]
    unseen, errors = merged_counts(parts)
    outputs = None
    if all(p.outputs is not None for p in parts):
        outputs = np.concatenate([p.outputs for p in parts if p.outputs is not None])
    return Chunk(np.concatenate([p.inputs for p in parts]), outputs, unseen, errors)


def merged_counts(parts: list[Chunk]) -> tuple[dict[int, dict[str, int]], dict[int, int]]:
    """The unseen names and type errors of several chunks, added up (each chunk's counted whole)."""
    unseen: dict[int, dict[str, int]] = {}
    errors: dict[int, int] = {}
    for part in parts:
        for j, names in part.unseen.items():
            target = unseen.setdefault(j, {})
            for name, count in names.items():
                target[name] = target.get(name, 0) + count
        for j, count in part.type_errors.items():
            errors[j] = errors.get(j, 0) + count
    return unseen, errors


def newest_rows(parts: list[Chunk], rows: int) -> Chunk:
    """``merge_chunks(parts).tail(rows)`` without copying the older rows it drops (a batch of 10,000 rows
    keeps a window's 1,000): unseen names and type errors still counted over every part."""
    kept: list[Chunk] = []
    total = 0
    for part in reversed(parts):
        if total >= rows:
            break
        kept.append(part)
        total += part.rows
    kept.reverse()
    merged = merge_chunks(kept)
    if len(kept) < len(parts):
        older = parts[: len(parts) - len(kept)]
        counts = merge_chunks([Chunk(p.inputs[:0], None, p.unseen, p.type_errors) for p in older] + [merged])
        outputs = merged.outputs if all(p.outputs is not None for p in older) else None
        merged = Chunk(merged.inputs, outputs, counts.unseen, counts.type_errors)
    return merged.tail(rows) if merged.rows > rows else merged


BLOCK_ROWS = 64  # small chunks of this process are kept merged into blocks of up to this many rows


def _plain(chunk: Chunk) -> bool:
    """Whether merging the chunk changes nothing a check reads: no unseen names or type errors (those are counted
    per chunk, whole, even when only part of it is in the window)."""
    return not chunk.unseen and not chunk.type_errors


def _mergeable(a: Chunk, b: Chunk) -> bool:
    if not (_plain(a) and _plain(b)):
        return False
    if a.outputs is None or b.outputs is None:
        return a.outputs is None and b.outputs is None
    return bool(a.outputs.shape[1] == b.outputs.shape[1])


class MemoryWindow:
    """The newest chunks of this process, holding at most ``capacity`` rows (plus one chunk).

    A service answering one row per request adds a chunk per row; a window of 2,000 one-row chunks cost ~14 ms
    to assemble for every health check (merging 2,000 small arrays and dicts). So the chunks added since the last
    read are merged into blocks of up to :data:`BLOCK_ROWS` rows when the window is read (on the health check's
    thread, once per chunk: the request path only appends). Only plain chunks merge (see :func:`_plain`), so what
    the checks count is the same as unmerged. Each block read is marked with where its rows sit among all this
    window was given (see :class:`Chunk`).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: collections.deque[Chunk] = collections.deque()
        self._sizes: collections.deque[int] = collections.deque()  # each chunk's rows, read without its property
        self._rows = 0
        self._given = 0  # rows added since the start: the end of the newest chunk's
        self._added = 0  # chunks appended since the last merge
        self._source = object()  # this window's marks: equal to no other's
        self._lock = threading.Lock()

    def add(self, chunk: Chunk) -> None:
        rows = int(chunk.inputs.shape[0])
        with self._lock:
            self._chunks.append(chunk)
            self._sizes.append(rows)
            self._rows += rows
            self._given += rows
            self._added += 1
            self._evict()

    def _evict(self) -> None:
        sizes = self._sizes
        while sizes and self._rows - sizes[0] >= self.capacity:
            self._rows -= sizes.popleft()
            self._chunks.popleft()
        self._added = min(self._added, len(sizes))

    def _merge_added(self) -> None:
        """Merge the chunks added since the last read, and the newest block before them, into marked blocks."""
        if not self._added:
            return
        fresh = min(self._added + 1, len(self._chunks))
        tail = [self._chunks.pop() for _ in range(fresh)][::-1]
        for _ in range(fresh):
            self._sizes.pop()
        groups: list[list[Chunk]] = [[tail[0]]]
        rows = tail[0].rows
        for chunk in tail[1:]:
            if _mergeable(groups[-1][-1], chunk) and rows + chunk.rows <= BLOCK_ROWS:
                groups[-1].append(chunk)
                rows += chunk.rows
            else:
                groups.append([chunk])
                rows = chunk.rows
        start = self._given - sum(chunk.rows for chunk in tail)
        for group in groups:
            block = merge_chunks(group).marked(StreamRows(self._source, start, sum(chunk.rows for chunk in group)))
            start += block.rows
            self._chunks.append(block)
            self._sizes.append(block.rows)
        self._added = 0
        self._evict()

    def newest_first(self) -> list[Chunk]:
        with self._lock:
            self._merge_added()
            return list(reversed(self._chunks))

    @property
    def rows(self) -> int:
        return min(self._rows, self.capacity)
