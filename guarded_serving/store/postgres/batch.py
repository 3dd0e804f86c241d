"""One write of the writer thread: a batch of requests (COPY), their totals, warnings and window, in one transaction.

Several replicas write at once: the counters they add to (totals, warnings) are upserted in one order
(sorted by key), so that two transactions never wait for each other's rows crosswise (a deadlock).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import psycopg

from ...drift.window import Chunk, merge_chunks
from ..records import mended
from ..sqlite.backlog import Counts, Key, Work, merge, tally
from ..sqlite.batch import Written
from ..sqlite.codec import encode_chunk, iso, stages_text

__all__ = ["clean", "write_batch"]

_COPY_REQUESTS = (
    "COPY requests (request_id, ts, model, version, status, rows, latency_ms, stages, failed_stage, error,"
    " problem_features, worker, replica, inputs, outputs) FROM STDIN (FORMAT BINARY)"
)
# The columns' types, for COPY's binary format: the rows' JSON text goes as it is, neither escaped nor parsed.
_REQUEST_TYPES = [
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "text",
    "text",
    "text",
]
_INSERT_WINDOW = 'INSERT INTO "window" (model, version, rows, inputs, outputs, meta) VALUES (%s, %s, %s, %s, %s, %s)'
_UPSERT_TOTALS = (
    "INSERT INTO totals AS t (model, version, requests, rows, rejected, errors, dropped_requests, dropped_rows)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (model, version) DO UPDATE SET requests = t.requests + excluded.requests, rows = t.rows + excluded.rows,"
    " rejected = t.rejected + excluded.rejected, errors = t.errors + excluded.errors,"
    " dropped_requests = t.dropped_requests + excluded.dropped_requests, dropped_rows = t.dropped_rows + excluded.dropped_rows"
)
_UPSERT_MODEL = (
    "INSERT INTO models (model, version, saved_at, reference, settings) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (model, version) DO UPDATE SET saved_at = excluded.saved_at,"
    " reference = excluded.reference, settings = excluded.settings"
)
_UPSERT_WARNING = (
    "INSERT INTO warnings AS w (model, version, category, message, location, count, first_seen, last_seen)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (model, version, category, message, location) DO UPDATE SET count = w.count + excluded.count,"
    " last_seen = greatest(w.last_seen, excluded.last_seen)"
)


def write_batch(
    conn: psycopg.Connection[tuple[object, ...]], work: Work, window_rows: int, replica: str, mark: Callable[[], None]
) -> Written:
    """Write ``work`` in one transaction on the writer's connection; ``mark`` sets the writer's mark in it (marks.py)."""
    worker = os.getpid()
    totals: Counts = {}
    merge(totals, work.unlogged)
    warnings: dict[tuple[str, ...], tuple[int, str, str]] = {}
    chunks: dict[Key, list[Chunk]] = {}
    for p in work.batch:
        if p.window is not None and p.window.rows:
            chunks.setdefault(p.key, []).append(p.window)
        tally(totals, p.key, p.status, p.rows)
        for w in p.warnings:  # one row per distinct warning: an upsert may not touch one row twice
            named = (*p.key, *(clean(part) or "" for part in (w.category, w.message, w.location)))
            seen, first, last = warnings.get(named, (0, iso(p.ts), iso(p.ts)))
            warnings[named] = (seen + w.count, first, max(last, iso(p.ts)))
    with conn.transaction():
        mark()
        if work.models:
            conn.cursor().executemany(_UPSERT_MODEL, sorted(work.models))
        with conn.cursor() as cur, cur.copy(_COPY_REQUESTS) as copy:
            copy.set_types(_REQUEST_TYPES)
            for p in work.batch:
                copy.write_row(
                    (
                        clean(p.request_id),
                        iso(p.ts),
                        p.key[0],
                        p.key[1],
                        p.status,
                        p.rows,
                        round(p.latency_ms, 3),
                        stages_text(p.stages),  # copied there: the request thread may still add `log`
                        clean(p.failed_stage),
                        clean(p.error),
                        json.dumps(list(p.problem_features)) if p.problem_features else None,
                        worker,
                        replica,
                        p.inputs,
                        p.outputs,
                    )
                )
        conn.cursor().executemany(_UPSERT_TOTALS, [(*key, *totals[key]) for key in sorted(totals)])
        if warnings:
            conn.cursor().executemany(_UPSERT_WARNING, [(*key, *warnings[key]) for key in sorted(warnings)])
        windows = []
        for key, parts in chunks.items():
            merged = merge_chunks(parts)
            if merged.rows > window_rows:  # older rows than a window are never read
                merged = merged.tail(window_rows)
            windows.append((*key, *encode_chunk(merged)))
        if windows:
            conn.cursor().executemany(_INSERT_WINDOW, windows)
    return Written(frozenset(totals), tuple(chunks), bool(warnings))


def clean(value: str | None) -> str | None:
    """Text as PostgreSQL can hold it: a NUL character (which no ``text`` value may contain) becomes U+FFFD, and
    so does a lone surrogate (:func:`~guarded_serving.store.records.mended`: the request path mends the texts of a
    record already; a warning's category, say, comes here as it was)."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return mended(value)
