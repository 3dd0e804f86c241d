"""One write of the writer thread: a batch of requests, their totals, warnings and window, in one transaction."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from ...drift.window import Chunk, newest_rows
from .backlog import Counts, Key, Work, merge, tally
from .codec import encode_chunk, iso, stages_text

__all__ = ["Written", "write_batch"]

_INSERT_REQUEST = (
    "INSERT INTO requests (request_id, ts, model, version, status, rows, latency_ms, stages, failed_stage, error,"
    " problem_features, worker, inputs, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_WINDOW = "INSERT INTO window (model, version, rows, inputs, outputs, meta) VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_TOTALS = (
    "INSERT INTO totals (model, version, requests, rows, rejected, errors, dropped_requests, dropped_rows)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(model, version) DO UPDATE SET requests = requests + excluded.requests, rows = rows + excluded.rows,"
    " rejected = rejected + excluded.rejected, errors = errors + excluded.errors,"
    " dropped_requests = dropped_requests + excluded.dropped_requests, dropped_rows = dropped_rows + excluded.dropped_rows"
)
_UPSERT_MODEL = (
    "INSERT INTO models (model, version, saved_at, reference, settings) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(model, version) DO UPDATE SET saved_at = excluded.saved_at,"
    " reference = excluded.reference, settings = excluded.settings"
)
_UPSERT_WARNING = (
    "INSERT INTO warnings (model, version, category, message, location, count, first_seen, last_seen)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(model, version, category, message, location) DO UPDATE SET count = count + excluded.count,"
    " last_seen = excluded.last_seen"
)


@dataclass(frozen=True, slots=True)
class Written:
    """What a write touched: the model versions it counted, those it added window rows to, and whether
    it stored warnings (retention looks at all three)."""

    keys: frozenset[Key]
    window_keys: tuple[Key, ...]
    warned: bool


def write_batch(conn: sqlite3.Connection, work: Work, window_rows: int, check: Callable[[], None]) -> Written:
    """Write ``work`` in one transaction, taking the write lock first and then calling ``check`` (which
    raises to abandon the write, e.g. when the write-ahead log was replaced)."""
    worker = os.getpid()
    requests = []
    totals: Counts = {}
    merge(totals, work.unlogged)
    warnings: list[tuple[str | int, ...]] = []
    chunks: dict[Key, list[Chunk]] = {}
    for p in work.batch:
        ts = iso(p.ts)
        requests.append(
            (
                p.request_id,
                ts,
                p.key[0],
                p.version,
                p.status,
                p.rows,
                round(p.latency_ms, 3),
                stages_text(p.stages),  # copied there: the request thread may still add `log`
                p.failed_stage,
                p.error,
                json.dumps(list(p.problem_features)) if p.problem_features else None,
                worker,
                p.inputs,
                p.outputs,
            )
        )
        window = p.window
        if window is not None and window.inputs.shape[0]:
            chunks.setdefault(p.key, []).append(window)
        tally(totals, p.key, p.status, p.rows)
        if p.warnings:
            warnings.extend((*p.key, w.category, w.message, w.location, w.count, ts, ts) for w in p.warnings)
    conn.execute("BEGIN IMMEDIATE")
    try:
        check()
        if work.models:
            conn.executemany(_UPSERT_MODEL, work.models)
        conn.executemany(_INSERT_REQUEST, requests)
        conn.executemany(_UPSERT_TOTALS, [(*key, *counts) for key, counts in totals.items()])
        if warnings:
            conn.executemany(_UPSERT_WARNING, warnings)
        for key, parts in chunks.items():  # older rows than a window are never read
            conn.execute(_INSERT_WINDOW, (*key, *encode_chunk(newest_rows(parts, window_rows))))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return Written(frozenset(totals), tuple(chunks), bool(warnings))
