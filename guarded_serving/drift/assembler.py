"""The window assembled again and again (a health check per request or per scrape): its rows kept in a buffer
that the new ones are appended to, instead of every chunk concatenated anew.

:func:`~guarded_serving.drift.window.assemble` copies the whole window each time: 10,000 rows of 8 features
cost ~0.5 ms (a tenth of such a health check), 2,000 x 64 ~0.2 ms, while a window moved on by a request
differs by its rows. When the chunks carry marks (:class:`~guarded_serving.drift.window.WindowData`) and say
the window moved (:func:`~guarded_serving.drift.moves.departed_between`), :class:`WindowAssembler` copies only
the rows that came, after the last window's in a buffer of twice the window, and hands out a read-only view
of the window's stretch of it. Rows a view handed out covers are never written again: a new buffer is taken
when the old one is full (once per window's worth of rows), and the old one lives as long as a view of it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from .moves import departed_between
from .window import Chunk, WindowData, merged_counts, take, window_of

__all__ = ["WindowAssembler"]


class WindowAssembler:
    """:func:`~guarded_serving.drift.window.assemble` for one window size, its rows appended to a buffer kept
    from one call to the next (twice the window: bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # two health checks at once: one appends at a time
        self._last: WindowData | None = None
        self._inputs: np.ndarray | None = None  # the buffer; the last window is its rows start:end
        self._outputs: np.ndarray | None = None
        self._start = self._end = 0

    def assemble(self, newest_first: Iterable[Chunk], capacity: int, width: int, output_width: int | None) -> WindowData:
        taken, parts = take(newest_first, capacity)
        if parts is None or not taken or (output_width is not None and any(c.outputs is None for c in taken)):
            return window_of(taken, parts, width, output_width)  # nothing names the rows (or no outputs): concatenated
        rows = sum(c.rows for c in taken)
        unseen, errors = merged_counts(taken)
        with self._lock:
            last = self._last
            departed = departed_between(last.parts, last.rows, parts, rows) if last is not None else None
            if departed is None or not self._fits(width, output_width):
                self._refill(taken, rows, capacity, width, output_width)
            else:
                kept = self._end - self._start - departed
                self._append(taken, rows - kept, capacity, departed)
            inputs = _read_only(self._inputs, self._start, self._end)
            outputs = _read_only(self._outputs, self._start, self._end) if output_width is not None else None
            window = WindowData(inputs, outputs, unseen, errors, parts)
            self._last = window
            return window

    def _fits(self, width: int, output_width: int | None) -> bool:
        if self._inputs is None or self._inputs.shape[1] != width:
            return False
        if output_width is None:
            return self._outputs is None
        return self._outputs is not None and self._outputs.shape[1] == output_width

    def _refill(self, taken: list[Chunk], rows: int, capacity: int, width: int, output_width: int | None) -> None:
        """A new buffer holding the window's rows (the window is not the last one moved on)."""
        size = max(2 * capacity, rows)
        self._inputs = np.empty((size, width))
        self._outputs = np.empty((size, output_width)) if output_width is not None else None
        self._start, self._end = 0, 0
        self._write(taken, rows)

    def _append(self, taken: list[Chunk], arrived: int, capacity: int, departed: int) -> None:
        """The rows that came appended after the last window's, the departed ones left behind."""
        assert self._inputs is not None
        self._start += departed
        if self._end + arrived > len(self._inputs):  # full: the rows kept move to a new buffer
            kept = self._end - self._start
            size = max(2 * capacity, kept + arrived)
            inputs = np.empty((size, self._inputs.shape[1]))
            inputs[:kept] = self._inputs[self._start : self._end]
            if self._outputs is not None:
                outputs = np.empty((size, self._outputs.shape[1]))
                outputs[:kept] = self._outputs[self._start : self._end]
                self._outputs = outputs
            self._inputs, self._start, self._end = inputs, 0, kept
        self._write(taken, arrived)

    def _write(self, taken: list[Chunk], count: int) -> None:
        """The newest ``count`` rows of the chunks written at the buffer's end."""
        assert self._inputs is not None
        pieces: list[Chunk] = []
        need = count
        for chunk in reversed(taken):  # the newest chunks hold the rows that came
            if need <= 0:
                break
            pieces.append(chunk if chunk.rows <= need else chunk.tail(need))
            need -= chunk.rows
        at = self._end
        for piece in reversed(pieces):
            end = at + piece.rows
            self._inputs[at:end] = piece.inputs
            if self._outputs is not None and piece.outputs is not None:
                self._outputs[at:end] = piece.outputs
            at = end
        self._end = at


def _read_only(buffer: np.ndarray | None, start: int, end: int) -> np.ndarray:
    assert buffer is not None
    view = buffer[start:end]
    view.flags.writeable = False
    return view
