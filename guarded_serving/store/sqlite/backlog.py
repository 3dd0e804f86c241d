"""What waits for the writer: records bounded in rows and in bytes, and the writer's progress as requests see it.

The request path only appends a record here. A record waits as the JSON text that will be written (the
client's own text when it sent numeric rows) and its encoded window arrays, so its size is known
exactly. When the buffer is full while the writer is making progress, the request waits for room
(back-pressure, counted and reported); when the writer is failing or stuck, the record is dropped and
counted, unless ``overflow="block"``. Either way the request is counted in the totals.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import threading
import time
from typing import Any, NamedTuple

from ...drift.window import Chunk
from ...environment import WarningRecord
from ...jsontext import dump_text
from ...logs import get_logger
from ..options import StoreOptions
from ..records import RequestRecord, StoreStats, mended, version_key
from .codec import iso

__all__ = ["Backlog", "Counts", "Key", "Pending", "Work", "pending", "tally"]

Key = tuple[str, str]  # (model, version key)
Counts = dict[Key, list[int]]  # per model version: requests, ok rows, rejected, errors, dropped requests, dropped rows
# The writer starts early once this much waits. Each write adds one window chunk of its rows' newest `window`
# (1,000); starting at 1,000 rows, 64-row requests wrote a whole window's chunk every 16 requests.
FLUSH_ROWS, FLUSH_BYTES = 10_000, 4 * 1024 * 1024
# One transaction takes at most about this much, so that a full buffer frees room while the writer works
# through it, and a request waiting for room waits for one transaction, not for the whole buffer.
BATCH_ROWS, BATCH_BYTES = 20_000, 16 * 1024 * 1024
# A writer busy with one transaction for longer than this is stuck on the disk (a lock, a fault), not behind
# on the load: a request stops waiting for room and is dropped (and counted) instead.
STALL = 2.0
RECORD_OVERHEAD = 400  # bytes a waiting record holds besides its texts and arrays (the tuple, ids, timings)


class Pending(NamedTuple):
    """A record as it waits for the writer: its rows already the JSON text that will be written, and
    the bytes it holds. The stages stay a dict: the guard adds the ``log`` stage after queuing it, so
    ``codec.stages_text`` copies it (one step under the GIL) before walking it: walking it while ``log`` is
    added would raise."""

    key: Key
    request_id: str
    ts: float
    version: str | None
    status: str
    rows: int
    latency_ms: float
    stages: dict[str, float]
    failed_stage: str | None
    error: str | None
    problem_features: tuple[str | dict[str, str], ...]
    inputs: str | None
    outputs: str | None
    warnings: tuple[WarningRecord, ...]
    window: Chunk | None
    size: int


def pending(r: RequestRecord) -> Pending:
    """The record as it will wait: lists of rows and outputs written to JSON text now, so that what it
    holds is known exactly (and is 2-10x less than the same values as Python objects). NaN and infinity
    are stored as null: JSON has no literal for them."""
    inputs = r.inputs_json if r.inputs_json is not None else dump_text(r.inputs) if r.inputs is not None else None
    outputs = r.outputs_json if r.outputs_json is not None else dump_text(r.outputs) if r.outputs is not None else None
    if inputs is not None and outputs is None:
        outputs = dump_text([None] * r.rows)  # the `rows` view spreads a request by its outputs
    size = RECORD_OVERHEAD + sys.getsizeof(r.request_id)
    if inputs is not None:
        size += sys.getsizeof(inputs)
    if outputs is not None:
        size += sys.getsizeof(outputs)
    if r.error is not None:
        size += sys.getsizeof(r.error)
    window = r.window
    if window is not None:
        size += window.inputs.nbytes + (window.outputs.nbytes if window.outputs is not None else 0)
        if window.unseen:
            size += sum(sys.getsizeof(name) + 100 for names in window.unseen.values() for name in names)
    if r.warnings:
        size += sum(sys.getsizeof(w.message) + sys.getsizeof(w.location) + 100 for w in r.warnings)
    # stored as one JSON list: the names of values of the wrong type, then {"missing": name} per refused null,
    # then {"range": name} per number refused as far beyond the reference's
    problems: tuple[str | dict[str, str], ...] = r.problem_features
    if r.missing_features:
        problems += tuple({"missing": name} for name in r.missing_features)
    if r.range_features:
        problems += tuple({"range": name} for name in r.range_features)
    warnings = r.warnings
    if warnings and not all(w.message.isascii() and w.location.isascii() for w in warnings):
        warnings = tuple(dataclasses.replace(w, message=mended(w.message), location=mended(w.location)) for w in warnings)
    return Pending(
        (r.model, version_key(r.version)), mended(r.request_id), r.ts, r.version, r.status, r.rows, r.latency_ms,
        r.stages, r.failed_stage and mended(r.failed_stage), r.error and mended(r.error), problems, inputs, outputs,
        warnings, r.window, size,
    )  # fmt: skip


def tally(counts: Counts, key: Key, status: str, rows: int, *, dropped: bool = False) -> None:
    """Count a request into the totals of its model version (and as dropped from the log)."""
    found = counts.setdefault(key, [0, 0, 0, 0, 0, 0])
    found[0] += 1
    found[1] += rows if status == "ok" else 0
    found[2] += status == "rejected"
    found[3] += status == "error"
    if dropped:
        found[4] += 1
        found[5] += rows


def merge(into: Counts, counts: Counts) -> None:
    for key, found in counts.items():
        merged = into.setdefault(key, [0, 0, 0, 0, 0, 0])
        merged[:] = [a + b for a, b in zip(merged, found, strict=True)]


class Work(NamedTuple):
    """What the writer took for one transaction."""

    batch: list[Pending]
    unlogged: Counts  # counts of dropped requests, folded into the totals by this write
    models: list[tuple[str, str, str, str, str]]  # saved models to write (every one), when any changed
    models_version: int | None  # the save_model count they make up; None when none changed
    closing: bool


class Backlog:
    """The bounded buffer between the request path and the writer thread, and the state both read.

    Every attribute is guarded by ``cond``; the writer notifies it after every transaction.
    """

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        # The request path holds the condition's lock directly: entering a Condition runs Python code, the
        # lock's own `with` does not (0.4 µs of a request's 1.1 in put).
        self._mutex = threading.RLock()
        self.cond = threading.Condition(self._mutex)
        self._buffer: collections.deque[Pending] = collections.deque()
        self.pending_rows = self.pending_bytes = 0
        self.written = self.dropped = 0
        # Counts of requests dropped from the buffer, per model version: folded into the totals by the next
        # write, so that the totals count every request.
        self.unlogged: Counts = {}
        self.waits, self.waited = 0, 0.0
        self.last_wait_at: str | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_flush_at: str | None = None
        self.running = self.opened = self.closing = False
        self.close_deadline = 0.0
        self.in_flight = 0
        self.busy_since: float | None = None  # monotonic start of the transaction the writer is in, if any
        self.flush_requested = False
        self._models: dict[Key, tuple[str, str, str]] = {}  # (name, version) -> (saved_at, reference, settings)
        self._models_changed = self._models_written = 0

    def stats(self, path: str, **backend: Any) -> StoreStats:
        """The buffer's figures as a backend reports them; ``backend`` adds the backend's own (a file's
        replacements)."""
        options = self.options
        with self.cond:
            return StoreStats(
                path=path,
                pending=self.pending_rows,
                written=self.written,
                dropped=self.dropped,
                capacity=options.capacity,
                last_error=self.last_error,
                last_error_at=self.last_error_at,
                last_flush_at=self.last_flush_at,
                flush_interval=options.flush_interval,
                pending_bytes=self.pending_bytes,
                capacity_bytes=options.capacity_bytes,
                waits=self.waits,
                waited_s=round(self.waited, 3),
                last_wait_at=self.last_wait_at,
                opened=self.opened,
                **backend,
            )

    # -- the request path ------------------------------------------------------------------------
    def put_record(self, record: RequestRecord) -> bool:
        """Queue a finished request (``put`` of its ``pending`` form); a record that cannot be written as JSON is
        dropped and counted, never queued."""
        try:
            waiting = pending(record)
        except Exception as exc:
            with self.cond:
                self.drop((record.model, version_key(record.version)), record.status, record.rows)
            get_logger().error("store_record_dropped", request_id=repr(record.request_id)[:80], error=repr(exc)[:300])
            return False
        return self.put(waiting)

    def put(self, record: Pending) -> bool:
        """Append a record, waiting for room while the writer makes progress; False: dropped (and counted)."""
        rows = max(record.rows, 1)
        with self._mutex:
            if not self._has_room(rows, record.size):
                self._wait_for_room(rows, record.size)
                if not self._has_room(rows, record.size):
                    self.drop(record.key, record.status, record.rows)
                    return False
            self._buffer.append(record)
            self.pending_rows += rows
            self.pending_bytes += record.size
            if self._due():
                self.cond.notify_all()
        return True

    def drop(self, key: Key, status: str, rows: int) -> None:
        """Count a request whose record will not be written (with ``cond`` held)."""
        self.dropped += max(rows, 1)
        tally(self.unlogged, key, status, rows, dropped=True)

    def save_model(self, key: Key, reference: str, settings: str) -> None:
        with self.cond:
            self._models[key] = (iso(time.time()), reference, settings)
            self._models_changed += 1
            self.cond.notify_all()

    def drained(self, timeout: float) -> bool:
        """Wait until everything queued so far is written; False when not within ``timeout`` or not running."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._buffer or self.in_flight or self.unlogged or self._models_written != self._models_changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.running:
                    return False
                self.flush_requested = True  # seen by the writer even if it is busy writing right now
                self.cond.notify_all()
                self.cond.wait(remaining)  # the writer notifies after every batch
            return True

    def _has_room(self, rows: int, size: int) -> bool:
        return self.pending_rows + rows <= self.options.capacity and self.pending_bytes + size <= self.options.capacity_bytes

    def _due(self) -> bool:
        return self.pending_rows >= FLUSH_ROWS or self.pending_bytes >= FLUSH_BYTES

    def _wait_for_room(self, rows: int, size: int) -> None:
        """Wait until a record fits, the writer stalls or fails, or ``block_timeout`` (with ``cond`` held)."""
        if rows > self.options.capacity or size > self.options.capacity_bytes:
            return  # it never fits
        started = time.monotonic()
        deadline = started + self.options.block_timeout
        waited = False
        while not self._has_room(rows, size) and self.running:
            now = time.monotonic()
            if now >= deadline or (self.options.overflow != "block" and not self._progressing(now)):
                break
            waited = True
            self.cond.notify_all()
            self.cond.wait(min(0.05, deadline - now))
        if waited:
            self.waits += 1
            self.waited += time.monotonic() - started
            self.last_wait_at = iso(time.time())

    def _progressing(self, now: float) -> bool:
        """The writer is working through the buffer: open, not failing, and not stuck in one transaction."""
        busy = self.busy_since
        return self.opened and self.last_error is None and (busy is None or now - busy < STALL)

    # -- the writer thread -----------------------------------------------------------------------
    def take(self, wait: float) -> Work:
        """The oldest records, up to one transaction's worth, once they are due or after ``wait`` seconds."""
        with self.cond:
            if not self.closing and not self.flush_requested and not self._due():
                self.cond.wait(wait)
            self.flush_requested = False
            batch: list[Pending] = []
            rows = size = 0
            while self._buffer and rows < BATCH_ROWS and size < BATCH_BYTES:
                record = self._buffer.popleft()
                batch.append(record)
                rows += record.rows
                size += record.size
            unlogged, self.unlogged = self.unlogged, {}
            self.in_flight = len(batch)
            self.busy_since = time.monotonic()
            version = self._models_changed if self._models_written != self._models_changed else None
            models = [(*key, *saved) for key, saved in self._models.items()] if version is not None else []
            return Work(batch, unlogged, models, version, self.closing)

    def done(self, work: Work) -> str | None:
        """Account for a written batch; return the error the writer recovered from, if it was failing."""
        with self.cond:
            self.pending_rows -= sum(max(p.rows, 1) for p in work.batch)
            self.pending_bytes -= sum(p.size for p in work.batch)
            self.written += sum(p.rows for p in work.batch)
            if work.models_version is not None:
                self._models_written = work.models_version
            self.last_flush_at = iso(time.time())
            recovered, self.last_error = self.last_error, None
            self._settle()
        return recovered

    def requeue(self, work: Work, error: str | None, *, again: bool = False) -> bool:
        """Put a batch that was not written back in front; ``error`` None: not a failure (``again``: write
        it again at once). True when this failure starts a streak (worth one log event, not one per retry)."""
        with self.cond:
            self._buffer.extendleft(reversed(work.batch))
            merge(self.unlogged, work.unlogged)
            self.flush_requested = self.flush_requested or again
            self._settle()
            return self.failing(error) if error is not None else False

    def failing(self, error: str) -> bool:
        """Note that a write failed (its batch kept by the writer, or put back); True when this starts a streak."""
        with self.cond:
            first = self.last_error is None
            self.last_error = error
            self.last_error_at = iso(time.time())
            return first

    def pause(self, wait: float) -> None:
        """Wait ``wait`` seconds before the writer tries again, or less when the store is closing."""
        with self.cond:
            if not self.closing:
                self.cond.wait(wait)

    def lost(self, record: Pending, unlogged: Counts) -> None:
        """Count a record of a written batch that could not be written itself (``done`` counts it written)."""
        with self.cond:
            self.written -= record.rows
            self.dropped += max(record.rows, 1)
            self.last_error_at = iso(time.time())
            tally(unlogged, record.key, record.status, record.rows, dropped=True)

    def unwritten(self, counts: Counts) -> None:
        """Fold the counts of records a batch could not write into the next write's totals."""
        with self.cond:
            merge(self.unlogged, counts)

    def idle(self) -> None:
        with self.cond:
            self._settle()

    def opened_file(self, replaced: bool) -> None:
        """The writer opened the file; a replaced one needs the saved models again."""
        with self.cond:
            self.opened = True
            if replaced:
                self._models_written = -1

    def empty(self) -> bool:
        with self.cond:
            return not self._buffer and not self.unlogged

    def _settle(self) -> None:
        self.in_flight = 0
        self.busy_since = None
        self.cond.notify_all()  # wake producers waiting for room, and flush()
