"""The drift window read back from the SQLite file, each stored chunk decoded once.

A health check reads the whole window every time: 2,000 rows of 64 features are twenty 100-row chunks,
about 1 MB of blobs, which cost ~0.9 ms to fetch and decode (``bench/health.py``), while a window moved
on by one request differs by one chunk. The library only ever inserts window rows, and retention deletes
the oldest of a model version (never the newest row of the table, so an id is not given again): a chunk
read before is the chunk under that id. The read takes each chunk's id and row count first, newest first,
from the window's index alone (schema 7: each chunk's table row is a 64 kB page of its own, and reading the
twenty of them after every write cost ~0.5 ms), and fetches and decodes only those it has not kept; it keeps
what this read yielded (at most one window per model version). A row edited by hand in place to hold another
number of rows is read again: the count is part of the key, and of the mark each chunk is given
(:class:`~guarded_serving.drift.window.Chunk`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from ...drift.window import Chunk
from .backlog import Key
from .codec import decode_chunk

__all__ = ["ChunkCache"]

_IDS = "SELECT id, rows FROM window WHERE model = ? AND version = ? ORDER BY id DESC"  # idx_window_chunks covers it
_ONE = "SELECT rows, inputs, outputs, meta FROM window WHERE id = ?"
_MISSING = object()


class ChunkCache:
    """The decoded chunks of the last window read per model version, by id and sizes."""

    def __init__(self) -> None:
        self._generation = 0
        self._kept: dict[Key, dict[tuple[Any, ...], Chunk | None]] = {}

    def read(self, conn: sqlite3.Connection, generation: int, key: Key) -> Iterator[Chunk]:
        """The window chunks of ``key``, newest first, lazily; ``generation`` names the file read (another one:
        the file was replaced, and nothing kept is used)."""
        if generation != self._generation:
            self._generation, self._kept = generation, {}
        before = self._kept.get(key, {})
        now: dict[tuple[Any, ...], Chunk | None] = {}
        try:
            for row in conn.execute(_IDS, key):
                mark = tuple(row)
                chunk = before.get(mark, _MISSING)
                if chunk is _MISSING:
                    stored = conn.execute(_ONE, (row[0],)).fetchone()
                    chunk = decode_chunk(*stored) if stored is not None else None
                    if chunk is not None:  # the same id and sizes in the same file: the same rows
                        chunk = chunk.marked((generation, key, mark))
                now[mark] = chunk  # type: ignore[assignment]
                if chunk is not None:
                    yield chunk  # type: ignore[misc]
        finally:
            self._kept[key] = now  # what this read yielded: a caller stops once it has a window
