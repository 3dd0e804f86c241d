"""The log store: every request and its rows in a SQLite file, written by a background thread.

The request path only appends a record to an in-memory buffer bounded in rows and in bytes; a
writer thread writes the buffer every ``flush_interval`` seconds (and as soon as enough waits, and
on :meth:`Store.close`), in transactions of a bounded size so that room frees up as it goes. The
database runs in WAL mode so that readers (the health endpoint, the ``sqlite-utils`` CLI, another
worker) never block the writer.

A record waits as the JSON text that will be written (the client's own text when it sent numeric
rows) and its encoded window arrays, so its size is known exactly. When the buffer is full while
the writer is making progress, the request waits for room (back-pressure, counted and reported);
when the store is failing, it is dropped and counted. Either way it is counted in ``totals``.

Opening never raises: a file that cannot be created, a directory at its path or a lock held by
another process is reported (:class:`StoreStats`) and retried by the writer, while records wait.

Tables (browse them with ``sqlite-utils rows guarded_serving.db requests``). Everything but
``requests`` is keyed by (model, version), the version ``''`` for an unversioned model:

``requests``  one row per request: request_id, ts, model, version (NULL when unversioned), status
              (ok | rejected | error), rows, latency_ms, stages (JSON of per-stage milliseconds),
              failed_stage, error, worker, inputs and outputs (JSON arrays with one entry per row)
``rows``      a view with one row per input row of an answered request: request_id, row, inputs,
              outputs (JSON). Rows are stored per request, as one array each: one insert and one
              serializer call per request instead of per row, 2-3x the rows per second.
``totals``    running counts, so totals never need a full scan; requests whose record was dropped
              from the log are counted too (``dropped_requests``, ``dropped_rows``)
``warnings``  deprecation / future warnings raised while predicting, with counts (the newest
              ``WARNINGS_KEPT`` per model version)
``feedback``  labels that arrived later, keyed by (model, version, request_id, row)
``window``    the drift window: encoded rows of recent requests, as binary chunks
``models``    the reference (JSON) and monitoring settings, so that the file can be judged again
              offline (``guarded-serving report``)
``health_history``  one health snapshot per model version and ``history_interval`` slot (JSON)
``baselines``  per model version and reference: the output and performance baselines adopted from
              early served traffic (JSON), shared by every worker and kept over restarts

Retention (``max_rows``, ``max_age``) deletes only the rows of the models this store writes, and
the labels of the requests it deletes.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

import numpy as np
import sqlite_utils

from .drift.window import Chunk, merge_chunks
from .environment import WarningRecord
from .errors import StoreError
from .jsontext import dump_text
from .logs import get_logger

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_CAPACITY_BYTES", "RequestRecord", "SavedModel", "Store", "StoreStats", "Totals"]

Status = Literal["ok", "rejected", "error"]
# 2: rows stored per request (inputs/outputs arrays), `rows` is a view; 3: every table keyed by (model, version)
SCHEMA_VERSION = 3
SNAPSHOT_WAIT = 1.0  # seconds a health snapshot write waits for a lock before giving up (the memory copy stays)
DEFAULT_CAPACITY = 100_000  # rows waiting in memory at most ...
DEFAULT_CAPACITY_BYTES = 64 * 1024 * 1024  # ... and bytes: rows over ~670 bytes (text and window) reach this first
FLUSH_ROWS, FLUSH_BYTES = 1000, 4 * 1024 * 1024  # the writer starts early once this much waits
# One transaction takes at most about this much, so that a full buffer frees room while the writer works
# through it, and a request waiting for room waits for one transaction, not for the whole buffer.
BATCH_ROWS, BATCH_BYTES = 20_000, 16 * 1024 * 1024
# A writer busy with one transaction for longer than this is stuck on the disk (a lock, a fault), not behind
# on the load: a request stops waiting for room and is dropped (and counted) instead.
STALL = 2.0
OPEN_WAIT = 1.0  # seconds open() waits for the file to be ready; a fault is then left to the writer to retry
RECORD_OVERHEAD = 400  # bytes a waiting record holds besides its texts and arrays (the tuple, ids, timings)
WARNINGS_KEPT = 1000  # distinct warnings kept per model version in the file, the most recently seen


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What is logged for one request. ``inputs``/``outputs`` hold one entry per row when answered."""

    request_id: str
    ts: float
    model: str
    version: str | None
    status: Status
    rows: int
    latency_ms: float
    stages: dict[str, float] = field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None
    inputs: Sequence[Any] | None = None
    outputs: Sequence[Any] | None = None
    warnings: tuple[WarningRecord, ...] = ()
    window: Chunk | None = None  # the rows encoded for the drift window
    inputs_json: str | None = None  # ``inputs`` as JSON text already (the client's own), written as is
    problem_features: tuple[str, ...] = ()  # features named by a rejected request's problems
    outputs_json: str | None = None  # ``outputs`` as JSON text already (from the answer), written as is


@dataclass(frozen=True, slots=True)
class Totals:
    """Running counts of a model version. Requests whose record was dropped from the log (a full buffer,
    an unwritable record) are counted in the totals too, and in ``dropped_requests`` / ``dropped_rows``."""

    requests: int = 0
    rows: int = 0
    rejected: int = 0
    errors: int = 0
    dropped_requests: int = 0
    dropped_rows: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """The writer's state, as seen by this process."""

    path: str
    pending: int
    written: int
    dropped: int
    capacity: int
    last_error: str | None
    last_error_at: str | None
    last_flush_at: str | None
    flush_interval: float
    replaced: int = 0
    last_replaced_at: str | None = None
    read_only: bool = False  # a reader of another process's file (an offline report), not a writer
    pending_bytes: int = 0  # memory the pending records hold
    capacity_bytes: int = 0
    waits: int = 0  # requests that waited for room in a full buffer (back-pressure), and for how long in all
    waited_s: float = 0.0
    last_wait_at: str | None = None
    opened: bool = True  # False until the file has been opened once (a fault at start-up is being retried)
    wal_replaced: int = 0  # times the write-ahead log file was found deleted or replaced
    last_wal_replaced_at: str | None = None


@dataclass(frozen=True, slots=True)
class SavedModel:
    """What a monitor wrote about its model when it started: enough to judge the file again offline."""

    name: str
    version: str | None
    saved_at: str
    reference: str  # the Reference as JSON text
    settings: dict[str, Any]  # the Monitor's window, methods, redact... (see Monitor.settings)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


_dumps = dump_text  # NaN / Infinity in an output is stored as null: JSON has no literal for them


def version_key(version: str | None) -> str:
    """A version as the tables other than ``requests`` key it: ``''`` for an unversioned model."""
    return version or ""


def _version(key: str) -> str | None:
    return key or None


# The tables keyed by model, as schema 3 has them: (columns, primary key, not-null columns).
_KEYED_TABLES: dict[str, tuple[dict[str, Any], tuple[str, ...] | str, set[str]]] = {
    "totals": (
        {
            "model": str,
            "version": str,
            "requests": int,
            "rows": int,
            "rejected": int,
            "errors": int,
            "labels": int,
            "relabels": int,
            "dropped_requests": int,
            "dropped_rows": int,
        },
        ("model", "version"),
        {"model", "version"},
    ),
    "window": (
        {"id": int, "model": str, "version": str, "rows": int, "inputs": bytes, "outputs": bytes, "meta": str},
        "id",
        {"model", "version", "rows", "inputs"},
    ),
    "warnings": (
        {
            "model": str,
            "version": str,
            "category": str,
            "message": str,
            "location": str,
            "count": int,
            "first_seen": str,
            "last_seen": str,
        },
        ("model", "version", "category", "message", "location"),
        {"model", "version"},
    ),
    "feedback": (
        {"model": str, "version": str, "request_id": str, "row": int, "label": str, "ts": str, "updates": int},
        ("model", "version", "request_id", "row"),
        {"model", "version"},
    ),
    "health_history": (
        {"model": str, "version": str, "slot": int, "ts": str, "status": str, "snapshot": str, "worker": int},
        ("model", "version", "slot"),
        {"model", "version", "ts", "status", "snapshot"},
    ),
    "models": (
        {"model": str, "version": str, "saved_at": str, "reference": str, "settings": str},
        ("model", "version"),
        {"model", "version", "saved_at", "reference", "settings"},
    ),
    "baselines": (  # keyed by the reference's digest too: a new reference collects its own baselines
        {"model": str, "version": str, "reference": str, "kind": str, "since": str, "rows": int, "document": str},
        ("model", "version", "reference", "kind"),
        {"model", "version", "reference", "kind", "since", "rows", "document"},
    ),
}


def _schema_2_version(name: str, schema: str = "") -> str:
    """In a schema-2 file, the version a row ``t`` of a keyed table belonged to: the one its model saved
    last (the version that wrote it, as far as the file can tell); for a label, its request's version."""
    saved = f"coalesce((SELECT m.version FROM {schema}models m WHERE m.model = t.model), '')"
    if name == "models":
        return "coalesce(t.version, '')"
    if name == "feedback":
        return (
            f"coalesce((SELECT q.version FROM {schema}requests q WHERE q.request_id = t.request_id AND q.model = t.model"
            f" ORDER BY q.id DESC LIMIT 1), {saved})"
        )
    return saved


def _keyed_by_version(table: sqlite_utils.db.Table, name: str) -> bool:
    pk = _KEYED_TABLES[name][1]
    return "version" in table.columns_dict and (isinstance(pk, str) or table.pks == list(pk))


def create_schema(db: sqlite_utils.Database) -> None:
    """Create the tables and indexes if they do not exist, and migrate an older file (safe to run from
    several workers: a file whose schema is current is only read, so a lock held elsewhere delays nothing)."""
    db.execute("PRAGMA journal_mode=WAL")
    if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")  # one worker creates or migrates; the others then find it done
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            _create_tables(db)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _create_tables(db: sqlite_utils.Database) -> None:
    requests = db.table("requests")
    requests.create(
        {
            "id": int,
            "request_id": str,
            "ts": str,
            "model": str,
            "version": str,
            "status": str,
            "rows": int,
            "latency_ms": float,
            "stages": str,
            "failed_stage": str,
            "error": str,
            "problem_features": str,
            "worker": int,
            "inputs": str,
            "outputs": str,
        },
        pk="id",
        not_null={"request_id", "ts", "model", "status", "rows"},
        if_not_exists=True,
    )
    for column in ("problem_features", "inputs", "outputs"):  # files written before these columns existed
        if column not in requests.columns_dict:
            requests.add_column(column, str)
    if "rows" in db.table_names():  # schema 1 kept one table row per input row: fold them in
        _fold_rows_table(db.conn)
    for name in ("totals", "warnings", "feedback", "health_history", "window", "models"):  # models last: read by the others
        _migrate_keyed_table(db, name)
    for name, (columns, pk, not_null) in _KEYED_TABLES.items():
        db.table(name).create(columns, pk=pk, not_null=not_null, defaults=_zero_counts(columns), if_not_exists=True)
    requests.create_index(["request_id"], if_not_exists=True)
    requests.create_index(["model", "id"], if_not_exists=True)
    requests.create_index(["model", "version", "id"], if_not_exists=True)
    db.table("window").create_index(["model", "version", "id"], if_not_exists=True)
    db.table("health_history").create_index(["model", "version", "ts"], if_not_exists=True)
    db.execute(_ROWS_VIEW)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _zero_counts(columns: dict[str, Any]) -> dict[str, Any]:
    return {name: 0 for name in ("labels", "relabels", "dropped_requests", "dropped_rows") if name in columns}


def _migrate_keyed_table(db: sqlite_utils.Database, name: str) -> None:
    """Rebuild a schema-2 table keyed by model alone into its schema-3 shape, keyed by (model, version)."""
    if name not in db.table_names() or _keyed_by_version(db.table(name), name):
        return
    columns, pk, not_null = _KEYED_TABLES[name]
    old = db.table(name).columns_dict
    db.table(f"{name}_v3").create(columns, pk=pk, not_null=not_null, defaults=_zero_counts(columns))
    listed = ", ".join(f'"{c}"' for c in columns if c in old and c != "version")
    db.execute(f'INSERT INTO "{name}_v3" ({listed}, version) SELECT {listed}, {_schema_2_version(name)} FROM "{name}" AS t')
    db.execute(f'DROP TABLE "{name}"')
    db.execute(f'ALTER TABLE "{name}_v3" RENAME TO "{name}"')


def _fold_rows_table(conn: sqlite3.Connection) -> None:
    """Move a schema-1 file's ``rows`` table into the requests' inputs/outputs arrays."""
    for column in ("inputs", "outputs"):
        conn.execute(
            f"UPDATE requests SET {column} = (SELECT '[' || group_concat(coalesce(v, 'null'), ',') || ']' FROM"
            f" (SELECT r.{column} AS v FROM rows r WHERE r.request_id = requests.request_id ORDER BY r.row))"
            f" WHERE {column} IS NULL AND EXISTS"
            f" (SELECT 1 FROM rows r WHERE r.request_id = requests.request_id AND r.{column} IS NOT NULL)"
        )
    conn.execute("DROP TABLE rows")


def schema_2_views(db: sqlite_utils.Database) -> None:
    """On a read-only connection to a schema-2 file, temporary views that show its keyed tables as schema 3
    has them (with a ``version``), so that the same queries read both; the file itself is not touched."""
    tables = set(db.table_names())
    for name, (columns, _, _) in _KEYED_TABLES.items():
        if name not in tables or _keyed_by_version(db.table(name), name):
            continue
        present = db.table(name).columns_dict
        listed = [f't."{c}"' if c in present else f'0 AS "{c}"' for c in columns if c != "version"]
        db.execute(
            f'CREATE TEMP VIEW "{name}" AS SELECT {", ".join(listed)}, {_schema_2_version(name, "main.")} AS version'
            f' FROM main."{name}" AS t'
        )


# One row per input row, read from the per-request arrays (outputs drive it: inputs may be withheld).
_ROWS_VIEW = (
    "CREATE VIEW IF NOT EXISTS rows AS SELECT q.request_id AS request_id, j.key AS row,"
    " q.inputs -> j.key AS inputs, q.outputs -> j.key AS outputs FROM requests q, json_each(q.outputs) j"
)
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
Key = tuple[str, str]  # (model, version key)


class _Pending(NamedTuple):
    """A record as it waits for the writer: its rows already the JSON text that will be written, and
    the bytes it holds. The stages stay a dict: the guard adds the ``log`` stage after queuing it."""

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
    problem_features: tuple[str, ...]
    inputs: str | None
    outputs: str | None
    warnings: tuple[WarningRecord, ...]
    window: Chunk | None
    size: int


def _pending(r: RequestRecord) -> _Pending:
    """The record as it will wait: lists of rows and outputs written to JSON text now, so that what it
    holds is known exactly (and is 2-10x less than the same values as Python objects)."""
    inputs = r.inputs_json if r.inputs_json is not None else _dumps(r.inputs) if r.inputs is not None else None
    outputs = r.outputs_json if r.outputs_json is not None else _dumps(r.outputs) if r.outputs is not None else None
    if inputs is not None and outputs is None:
        outputs = _dumps([None] * r.rows)  # the `rows` view spreads a request by its outputs
    size = RECORD_OVERHEAD + sys.getsizeof(r.request_id)
    for text in (inputs, outputs, r.error):
        size += sys.getsizeof(text) if text is not None else 0
    if r.window is not None:
        size += r.window.inputs.nbytes + (r.window.outputs.nbytes if r.window.outputs is not None else 0)
        size += sum(sys.getsizeof(name) + 100 for names in r.window.unseen.values() for name in names)
    size += sum(sys.getsizeof(w.message) + sys.getsizeof(w.location) + 100 for w in r.warnings)
    return _Pending(
        (r.model, version_key(r.version)),
        r.request_id,
        r.ts,
        r.version,
        r.status,
        r.rows,
        r.latency_ms,
        r.stages,
        r.failed_stage,
        r.error,
        r.problem_features,
        inputs,
        outputs,
        r.warnings,
        r.window,
        size,
    )


class _WalLostError(Exception):
    """The write-ahead log the writer's connection writes to is no longer the file at its path."""

    def __init__(self, rescue: bool) -> None:
        super().__init__("the write-ahead log file was deleted or replaced")
        self.rescue = rescue  # no other writer has started a new log: move what the old one holds into the file


class Store:
    """A SQLite log store with a background batched writer.

    ``capacity`` rows and ``capacity_bytes`` bytes bound what waits in memory. A request that finds
    the buffer full waits for room while the writer is making progress (back-pressure), and with
    ``overflow="block"`` also while it is failing, up to ``block_timeout``; otherwise its record is
    dropped and counted (the service keeps answering), and still counted in ``totals``. Thread-safe.
    """

    read_only_views = False  # a reader that must not migrate an older file reads it through schema_2_views

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.2,
        capacity: int = DEFAULT_CAPACITY,
        capacity_bytes: int = DEFAULT_CAPACITY_BYTES,
        busy_timeout: float = 5.0,
        window_capacity: int = 1000,
        max_rows: int | None = None,
        max_age: float | None = None,
        overflow: str = "drop",
        block_timeout: float = 5.0,
    ) -> None:
        self.path = str(path)
        self.max_rows = max_rows
        self.max_age = max_age
        self.overflow = overflow
        self.block_timeout = block_timeout
        self._pruned = 0
        self.window_capacity = window_capacity
        self._flushes = 0
        self.busy_timeout = busy_timeout
        self.flush_interval = flush_interval
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self._buffer: collections.deque[_Pending] = collections.deque()
        self._pending_rows = 0
        self._pending_bytes = 0
        self._written = 0
        self._dropped = 0
        # Counts of requests dropped from the buffer, per (model, version): folded into `totals` by the next
        # write, so that the totals count every request (requests, ok rows, rejected, errors, dropped, dropped rows).
        self._unlogged: dict[Key, list[int]] = {}
        self._waits = 0
        self._waited = 0.0
        self._last_wait_at: str | None = None
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        self._last_flush_at: str | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._in_flight = 0
        self._busy_since: float | None = None  # monotonic start of the transaction the writer is in, if any
        self._flush_requested = False
        self._close_deadline = 0.0
        self._opened = False
        self._started = threading.Event()  # set once the writer has first tried to open the file
        self._inode = 0
        self._wal_inode = 0  # the write-ahead log the writer's connection writes to (0: not known yet)
        self._replaced = 0
        self._last_replaced_at: str | None = None
        self._wal_replaced = 0
        self._last_wal_replaced_at: str | None = None
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._generation = 0  # bumped when readers must reconnect (a new file, a new write-ahead log)
        self._readers: list[sqlite_utils.Database] = []  # every thread's reader connection, closed by close()
        self._models: dict[Key, tuple[str, str, str]] = {}  # (name, version) -> (saved_at, reference, settings)
        self._models_changed = 0  # bumped by save_model; the writer writes the models while behind it
        self._models_written = 0
        self._keys: set[Key] = set()  # the model versions this store writes: the only ones its retention prunes
        self._warned = False  # warnings written since the last prune

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> Store:
        """Start the writer thread, which creates the file (owner-only permissions) and its schema.

        Never raises: waits up to ``OPEN_WAIT`` seconds for the file, and when it cannot be opened (a
        bad path, a lock held elsewhere), the writer reports it in :meth:`stats` and keeps retrying
        while records wait in memory.
        """
        if self._thread is not None:
            return self
        self._closing = False
        self._opened = False
        self._started.clear()
        self._thread = threading.Thread(target=self._run, name="guarded-serving-writer", daemon=True)
        self._thread.start()
        self._started.wait(OPEN_WAIT)
        return self

    def close(self, timeout: float = 10.0) -> bool:
        """Flush what is pending and stop the writer; return False if it did not finish in time."""
        thread = self._thread
        if thread is None:
            return True
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + max(timeout - 0.5, 0.0)  # failing writes retry until then
            self._cond.notify_all()
        thread.join(timeout)
        self._thread = None
        with self._cond:
            pending = self._pending_rows
            readers, self._readers = self._readers, []
            self._cond.notify_all()  # producers waiting for room stop waiting
        self._local = threading.local()
        for db in readers:  # every thread's reader: the last connection to close folds the WAL into the file
            with contextlib.suppress(sqlite3.Error):
                db.conn.close()
        return not thread.is_alive() and pending == 0

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- request path ----------------------------------------------------------------------
    def put(self, record: RequestRecord) -> bool:
        """Queue a record for writing; False (dropped, and counted) when there is no room for it.

        A full buffer makes the caller wait for the writer to make room (back-pressure on the request),
        while the writer is making progress, up to ``block_timeout`` seconds; with ``overflow="block"``
        also while it is failing. A record larger than the whole buffer is dropped at once.
        """
        rows = max(record.rows, 1)
        try:
            pending = _pending(record)
        except Exception as exc:  # a record that cannot be written as JSON: dropped and counted, never queued
            with self._cond:
                self._drop((record.model, version_key(record.version)), record.status, record.rows)
            get_logger().error("store_record_dropped", request_id=repr(record.request_id)[:80], error=repr(exc)[:300])
            return False
        with self._cond:
            if not self._has_room(rows, pending.size):
                self._wait_for_room(rows, pending.size)
                if not self._has_room(rows, pending.size):
                    self._drop(pending.key, pending.status, pending.rows)
                    return False
            self._buffer.append(pending)
            self._pending_rows += rows
            self._pending_bytes += pending.size
            if self._pending_rows >= FLUSH_ROWS or self._pending_bytes >= FLUSH_BYTES:
                self._cond.notify_all()
        return True

    def _has_room(self, rows: int, size: int) -> bool:
        return self._pending_rows + rows <= self.capacity and self._pending_bytes + size <= self.capacity_bytes

    def _wait_for_room(self, rows: int, size: int) -> None:
        """Wait (holding the condition) until a record fits, the writer stalls or fails, or ``block_timeout``."""
        if rows > self.capacity or size > self.capacity_bytes:
            return  # it never fits
        started = time.monotonic()
        deadline = started + self.block_timeout
        waited = False
        while not self._has_room(rows, size) and self._thread is not None:
            now = time.monotonic()
            if now >= deadline or (self.overflow != "block" and not self._progressing(now)):
                break
            waited = True
            self._cond.notify_all()
            self._cond.wait(min(0.05, deadline - now))
        if waited:
            self._waits += 1
            self._waited += time.monotonic() - started
            self._last_wait_at = _iso(time.time())

    def _progressing(self, now: float) -> bool:
        """The writer is working through the buffer: open, not failing, and not stuck in one transaction."""
        busy = self._busy_since
        return self._opened and self._last_error is None and (busy is None or now - busy < STALL)

    def _drop(self, key: Key, status: str, rows: int) -> None:
        """Count a request whose record will not be written (call with the condition held)."""
        self._dropped += max(rows, 1)
        counts = self._unlogged.setdefault(key, [0, 0, 0, 0, 0, 0])
        counts[0] += 1
        counts[1] += rows if status == "ok" else 0
        counts[2] += status == "rejected"
        counts[3] += status == "error"
        counts[4] += 1
        counts[5] += rows

    def save_model(self, name: str, version: str | None, reference: str, settings: dict[str, Any]) -> None:
        """Have the writer record a model version's reference (JSON text) and settings in the ``models`` table.

        Written with the next flush, retried like every write, and written again into a new file when
        the database file is replaced, so that ``guarded-serving report`` can always judge the file.
        """
        with self._cond:
            key = (name, version_key(version))
            self._models[key] = (_iso(time.time()), reference, json.dumps(settings, sort_keys=True))
            self._keys.add(key)
            self._models_changed += 1
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is on disk (for tests and batch jobs)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._buffer or self._in_flight or self._unlogged or self._models_written != self._models_changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._flush_requested = True  # seen by the writer even if it is busy writing right now
                self._cond.notify_all()
                self._cond.wait(remaining)  # the writer notifies after every batch
            return True

    def stats(self) -> StoreStats:
        with self._cond:
            return StoreStats(
                path=self.path,
                pending=self._pending_rows,
                written=self._written,
                dropped=self._dropped,
                capacity=self.capacity,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
                last_flush_at=self._last_flush_at,
                flush_interval=self.flush_interval,
                replaced=self._replaced,
                last_replaced_at=self._last_replaced_at,
                pending_bytes=self._pending_bytes,
                capacity_bytes=self.capacity_bytes,
                waits=self._waits,
                waited_s=round(self._waited, 3),
                last_wait_at=self._last_wait_at,
                opened=self._opened,
                wal_replaced=self._wal_replaced,
                last_wal_replaced_at=self._last_wal_replaced_at,
            )

    # -- writer thread ---------------------------------------------------------------------
    def _create_file(self) -> None:
        """Create the database file readable by its owner only, with its schema; remember its inode."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        db = self._connect()
        try:
            create_schema(db)
        finally:
            db.conn.close()
        self._inode = os.stat(self.path).st_ino

    def _file_replaced(self) -> bool:
        """True when the database file was deleted or replaced since it was opened (SQLite would keep
        writing into the deleted file, and those rows would vanish with the process)."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except OSError:
            return True

    def _wal_lost(self) -> bool | None:
        """With the write lock held: None while the write-ahead log at the path is the one the writer's
        connection writes to. Otherwise (deleted, or replaced), whether what the old log holds must be moved
        into the database file: True unless another writer has already started a new log there."""
        if not self._wal_inode:
            return None
        try:
            found = os.stat(self.path + "-wal")
        except FileNotFoundError:
            return True
        if found.st_ino == self._wal_inode:
            return None
        return found.st_size == 0  # an empty new log: only opened by a reader since, nothing written to it

    def _connect(self) -> sqlite_utils.Database:
        # mode=rw: never create the file here (a reader would otherwise create an empty, schema-less one)
        uri = f"file:{quote(os.path.abspath(self.path))}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        db = sqlite_utils.Database(conn)
        if self.read_only_views:
            schema_2_views(db)
        return db

    def _connection(self, db: sqlite_utils.Database | None) -> sqlite_utils.Database:
        """The writer's connection, opening the file first (at start, or when it was deleted or replaced)."""
        if not self._opened or self._file_replaced():
            replaced = self._opened
            if db is not None:
                db.conn.close()
                db = None
            self._create_file()
            self._wal_inode = 0
            self._reconnect_readers()
            with self._cond:
                self._opened = True
                if replaced:
                    self._models_written = -1  # the new file needs the models too
            if replaced:
                self._note_replaced()
        return db if db is not None else self._connect()

    def _run(self) -> None:
        db: sqlite_utils.Database | None = None
        backoff = self.flush_interval
        try:
            db = self._connection(None)
        except (sqlite3.Error, OSError) as exc:
            self._requeue([], {}, self._open_error(exc))
        finally:
            self._started.set()
        while True:
            with self._cond:
                due = self._pending_rows >= FLUSH_ROWS or self._pending_bytes >= FLUSH_BYTES
                if not self._closing and not self._flush_requested and not due:
                    self._cond.wait(backoff)
                self._flush_requested = False
                batch = self._take()
                unlogged, self._unlogged = self._unlogged, {}
                self._in_flight = len(batch)
                self._busy_since = time.monotonic()
                closing = self._closing
                models_due = self._models_written != self._models_changed
            if batch or unlogged or models_due or not self._opened:
                try:
                    try:
                        db = self._connection(db)
                    except (sqlite3.Error, OSError) as exc:
                        raise _OpenError(self._open_error(exc)) from exc
                    self._write(db, batch, unlogged)
                except _WalLostError as lost:
                    self._recover_wal(db, lost.rescue)  # db is not None: _write ran on it
                    db = None
                    self._requeue(batch, unlogged, None)
                    continue
                except (sqlite3.Error, OSError, _OpenError) as exc:
                    self._requeue(batch, unlogged, str(exc) if isinstance(exc, _OpenError) else f"{type(exc).__name__}: {exc}")
                    if db is not None:
                        db.conn.close()
                        db = None
                    self._wal_inode = 0
                    backoff = min(backoff * 2, 2.0)
                    if closing and time.monotonic() >= self._close_deadline:
                        with self._cond:
                            lost_rows = self._pending_rows
                        get_logger().error("store_close_lost_rows", path=self.path, pending=lost_rows, error=self._last_error)
                        break
                    continue
                except Exception:  # a record that cannot be encoded, not the disk's fault: isolate it
                    unwritten = self._write_each(db or self._connect(), batch, unlogged)
                    with self._cond:
                        for key, counts in unwritten.items():
                            merged = self._unlogged.setdefault(key, [0, 0, 0, 0, 0, 0])
                            merged[:] = [a + b for a, b in zip(merged, counts, strict=True)]
                with self._cond:
                    self._pending_rows -= sum(max(p.rows, 1) for p in batch)
                    self._pending_bytes -= sum(p.size for p in batch)
                    self._written += sum(p.rows for p in batch)
                    self._last_flush_at = _iso(time.time())
                    recovered, self._last_error = self._last_error, None
                    self._in_flight = 0
                    self._busy_since = None
                    self._cond.notify_all()  # wake producers waiting for room, and flush()
                if recovered is not None:
                    get_logger().info("store_recovered", path=self.path, after=recovered, written=len(batch))
                backoff = self.flush_interval
            else:
                with self._cond:
                    self._in_flight = 0
                    self._busy_since = None
                    self._cond.notify_all()
            batch = []  # do not hold the written records (and their rows) while waiting for the next flush
            if closing:
                with self._cond:
                    if not self._buffer and not self._unlogged:
                        break
        if db is not None:
            db.conn.close()

    def _open_error(self, exc: BaseException) -> str:
        return f"cannot open the log store at {self.path!r}: {type(exc).__name__}: {exc}"

    def _take(self) -> list[_Pending]:
        """The oldest records, up to one transaction's worth (call with the condition held)."""
        batch: list[_Pending] = []
        rows = size = 0
        while self._buffer and rows < BATCH_ROWS and size < BATCH_BYTES:
            pending = self._buffer.popleft()
            batch.append(pending)
            rows += pending.rows
            size += pending.size
        return batch

    def _write_each(
        self, db: sqlite_utils.Database, batch: list[_Pending], unlogged: dict[Key, list[int]]
    ) -> dict[Key, list[int]]:
        """Write records one by one, dropping (and counting) those that cannot be written, so that one
        poisoned record never stops the writer (only reached when a batch failed for a non-disk reason).
        Returns the counts still to fold into the totals: the dropped requests'."""
        left: dict[Key, list[int]] = dict(unlogged)
        for pending in batch:
            try:
                self._write(db, [pending], left)
                left = {}
            except Exception as exc:
                with self._cond:
                    self._written -= pending.rows  # the caller counts the whole batch as written
                    self._dropped += max(pending.rows, 1)
                    self._last_error_at = _iso(time.time())
                    counts = left.setdefault(pending.key, [0, 0, 0, 0, 0, 0])
                    counts[0] += 1
                    counts[1] += pending.rows if pending.status == "ok" else 0
                    counts[2] += pending.status == "rejected"
                    counts[3] += pending.status == "error"
                    counts[4] += 1
                    counts[5] += pending.rows
                get_logger().error(
                    "store_record_dropped", request_id=repr(pending.request_id)[:80], error=f"{type(exc).__name__}: {exc}"
                )
        return left

    def _note_replaced(self) -> None:
        with self._cond:
            self._replaced += 1
            self._last_replaced_at = _iso(time.time())
        get_logger().error(
            "store_file_replaced", path=self.path, detail="the database file was deleted or replaced; a new one was started"
        )

    def _recover_wal(self, db: sqlite_utils.Database | None, rescue: bool) -> None:
        """The write-ahead log was deleted under the writer: SQLite would go on committing into the unlinked
        file, and a crash would lose every row since. Move what it holds into the database file through the
        connection that still has it open (a checkpoint), then reconnect everything to a new log."""
        result: Any = None
        if db is not None:
            if rescue:
                try:
                    result = db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                except sqlite3.Error as exc:
                    result = f"{type(exc).__name__}: {exc}"
            db.conn.close()
        self._wal_inode = 0
        self._reconnect_readers()
        with self._cond:
            self._wal_replaced += 1
            self._last_wal_replaced_at = _iso(time.time())
            self._flush_requested = True  # write the batch again at once, to the new log
        get_logger().error(
            "store_wal_replaced",
            path=self.path + "-wal",
            detail="the write-ahead log was deleted or replaced; what it held was moved into the database file"
            if rescue
            else "the write-ahead log was replaced by another writer's; reconnected to it",
            checkpoint=repr(result),
        )

    def _reconnect_readers(self) -> None:
        """Have every thread's reader connection reopen before its next read (see :meth:`_reader`)."""
        with self._cond:
            self._generation += 1

    def _requeue(self, batch: list[_Pending], unlogged: dict[Key, list[int]], error: str | None) -> None:
        """Put a batch that was not written back in front of the buffer; ``error`` None: not a failure."""
        with self._cond:
            self._buffer.extendleft(reversed(batch))
            for key, counts in unlogged.items():
                merged = self._unlogged.setdefault(key, [0, 0, 0, 0, 0, 0])
                merged[:] = [a + b for a, b in zip(merged, counts, strict=True)]
            self._in_flight = 0
            self._busy_since = None
            self._cond.notify_all()
            if error is None:
                return
            first = self._last_error is None
            self._last_error = error
            self._last_error_at = _iso(time.time())
            pending = self._pending_rows
        if first:  # one event per failure streak, not per retry
            get_logger().error("store_write_failed", path=self.path, error=error, pending=pending)

    def _write(self, db: sqlite_utils.Database, batch: list[_Pending], unlogged: dict[Key, list[int]]) -> None:
        worker = os.getpid()
        requests = []
        totals: dict[Key, list[int]] = {key: list(counts) for key, counts in unlogged.items()}
        warnings = []
        chunks: dict[Key, list[Chunk]] = {}
        for p in batch:
            requests.append(
                (
                    p.request_id,
                    _iso(p.ts),
                    p.key[0],
                    p.version,
                    p.status,
                    p.rows,
                    round(p.latency_ms, 3),
                    _dumps({k: round(v, 3) for k, v in p.stages.items()}),
                    p.failed_stage,
                    p.error,
                    json.dumps(list(p.problem_features)) if p.problem_features else None,
                    worker,
                    p.inputs,
                    p.outputs,
                )
            )
            if p.window is not None and p.window.rows:
                chunks.setdefault(p.key, []).append(p.window)
            t = totals.setdefault(p.key, [0, 0, 0, 0, 0, 0])
            t[0] += 1
            t[1] += p.rows if p.status == "ok" else 0
            t[2] += p.status == "rejected"
            t[3] += p.status == "error"
            for w in p.warnings:
                warnings.append((*p.key, w.category, w.message, w.location, w.count, _iso(p.ts), _iso(p.ts)))
        with self._cond:
            models_version = self._models_changed
            models_due = self._models_written != models_version
            models = [(*key, *saved) for key, saved in self._models.items()] if models_due else []
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: the write-ahead log is checked under it
        try:
            lost = self._wal_lost()
            if lost is not None:
                raise _WalLostError(lost)
            if models:
                conn.executemany(_UPSERT_MODEL, models)
            conn.executemany(_INSERT_REQUEST, requests)
            conn.executemany(_UPSERT_TOTALS, [(*key, *t) for key, t in totals.items()])
            if warnings:
                conn.executemany(_UPSERT_WARNING, warnings)
            for key, parts in chunks.items():
                merged = merge_chunks(parts)
                if merged.rows > self.window_capacity:  # older rows than a window are never read
                    merged = merged.tail(self.window_capacity)
                conn.execute(_INSERT_WINDOW, (*key, *_encode_chunk(merged)))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        if not self._wal_inode:
            with contextlib.suppress(OSError):
                self._wal_inode = os.stat(self.path + "-wal").st_ino
        if models_due:
            with self._cond:
                self._models_written = models_version
        with self._cond:
            self._keys.update(totals)
        self._warned = self._warned or bool(warnings)
        self._flushes += 1
        if chunks and self._flushes % 25 == 0:
            self._prune_window(conn, list(chunks))
        if self._flushes % 50 == 1 and (self.max_rows or self.max_age or self._warned):
            self._prune_retention(conn)

    def prune(self) -> int:
        """Apply ``max_rows`` / ``max_age`` and the bound on warnings now, to the model versions this store
        writes (the writer also does it about every 10 s); return the requests deleted."""
        before = self._pruned
        db = self._connect()
        try:
            self._prune_retention(db.conn)
        finally:
            db.conn.close()
        return self._pruned - before

    def _prune_retention(self, conn: sqlite3.Connection) -> None:
        """Delete this store's model versions' oldest requests beyond ``max_rows`` or older than ``max_age``
        seconds, the labels of the requests deleted, and warnings beyond ``WARNINGS_KEPT`` or ``max_age``.

        Runs in the writer thread between flushes, in small transactions, so predictions never wait
        and a write never waits long: requests keep being buffered meanwhile. Never touches another
        model's or version's rows: a file may be shared by several services.
        """
        self._warned = False
        with self._cond:
            keys = sorted(self._keys)
        for key in keys:
            if self.max_age:
                self._delete_requests(conn, key, "ts < ?", _iso(time.time() - self.max_age))
                with conn:
                    conn.execute(
                        "DELETE FROM feedback WHERE model = ? AND version = ? AND ts < ?",
                        (*key, _iso(time.time() - self.max_age)),
                    )
            if self.max_rows:
                last = self._oldest_kept(conn, key)
                if last is not None:
                    self._delete_requests(conn, key, "id <= ?", last)
            with conn:
                conn.execute(
                    "DELETE FROM warnings WHERE model = ? AND version = ? AND rowid NOT IN (SELECT rowid FROM warnings"
                    " WHERE model = ? AND version = ? ORDER BY last_seen DESC, rowid DESC LIMIT ?)",
                    (*key, *key, WARNINGS_KEPT),
                )
                if self.max_age:
                    conn.execute(
                        "DELETE FROM warnings WHERE model = ? AND version = ? AND last_seen < ?",
                        (*key, _iso(time.time() - self.max_age)),
                    )

    def _oldest_kept(self, conn: sqlite3.Connection, key: Key) -> int | None:
        """The id of the newest request beyond ``max_rows`` rows (a request without rows counts as one)."""
        kept = 0
        for request_id, rows in conn.execute(
            "SELECT id, max(rows, 1) FROM requests WHERE model = ? AND version IS ? ORDER BY id DESC", (key[0], _version(key[1]))
        ):
            kept += rows
            if kept > (self.max_rows or 0):
                return int(request_id)
        return None

    def _delete_requests(self, conn: sqlite3.Connection, key: Key, where: str, bound: Any, batch: int = 5000) -> None:
        """Delete a model version's requests matching ``where``, oldest first, a batch per transaction, with the
        labels that joined them (unless another request of the version has the same id)."""
        model, version = key[0], _version(key[1])
        while True:
            with conn:
                found = conn.execute(
                    f"SELECT id, request_id FROM requests WHERE model = ? AND version IS ? AND {where} ORDER BY id LIMIT ?",
                    (model, version, bound, batch),
                ).fetchall()
                if not found:
                    return
                conn.execute(f"DELETE FROM requests WHERE id IN ({','.join('?' * len(found))})", [i for i, _ in found])
                request_ids = list({rid for _, rid in found})
                conn.execute(
                    f"DELETE FROM feedback WHERE model = ? AND version = ? AND request_id IN ({','.join('?' * len(request_ids))})"
                    " AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.request_id = feedback.request_id AND q.model = ?"
                    " AND q.version IS ?)",
                    (*key, *request_ids, model, version),
                )
                self._pruned += len(found)

    def _prune_window(self, conn: sqlite3.Connection, keys: list[Key]) -> None:
        """Delete window chunks older than the newest ``window_capacity`` rows of each model version."""
        for key in keys:
            total = 0
            cutoff = None
            for chunk_id, rows in conn.execute(
                "SELECT id, rows FROM window WHERE model = ? AND version = ? ORDER BY id DESC", key
            ):
                total += rows
                if total >= self.window_capacity:
                    cutoff = chunk_id
                    break
            if cutoff is not None:
                with conn:
                    conn.execute("DELETE FROM window WHERE model = ? AND version = ? AND id < ?", (*key, cutoff))

    # -- queries (any thread; never block the writer thanks to WAL) --------------------------
    def _reader(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "generation", None) != self._generation:
            with self._cond:  # a new file or write-ahead log: this thread's connection still has the old one open
                if db in self._readers:
                    self._readers.remove(db)
            with contextlib.suppress(sqlite3.Error):
                db.conn.close()
            db = None
        if db is None:
            generation = self._generation
            db = self._local.db = self._connect()
            self._local.generation = generation
            with self._cond:
                self._readers.append(db)
        return db

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite_utils.Database]:
        """A reader connection; a failure is a StoreError, and the next read reconnects."""
        try:
            yield self._reader()
        except (sqlite3.Error, OSError) as exc:
            db = getattr(self._local, "db", None)
            self._local = threading.local()
            if db is not None:
                db.conn.close()
            raise StoreError(f"cannot read the log store at {self.path!r}: {exc}") from exc

    def totals(self, model: str, *, version: str | None = None) -> Totals:
        with self._reading() as db:
            found = db.execute(
                "SELECT requests, rows, rejected, errors, dropped_requests, dropped_rows FROM totals"
                " WHERE model = ? AND version = ?",
                [model, version_key(version)],
            ).fetchone()
        if found is None:
            return Totals()
        return Totals(*(_count(n) for n in found))

    def saved_models(self) -> dict[str, SavedModel]:
        """Per model name, the version whose reference was saved last by :meth:`save_model` (none in a file
        written before the table existed). :meth:`saved_model` reads a given version's."""
        return {saved.name: saved for saved in sorted(self.saved_versions(), key=lambda s: s.saved_at)}

    def saved_versions(self) -> list[SavedModel]:
        """Every model version recorded by :meth:`save_model`, by name and version."""
        with self._reading() as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'models'").fetchone() is None:
                return []
            return [
                SavedModel(name, _version(_text(version) or ""), str(saved_at), _text(reference) or "", _settings(settings))
                for name, version, saved_at, reference, settings in db.execute(
                    "SELECT model, version, saved_at, reference, settings FROM models ORDER BY model, version"
                )
                if isinstance(name, str)
            ]

    def saved_model(self, name: str, version: str | None) -> SavedModel | None:
        return next((s for s in self.saved_versions() if s.name == name and s.version == version), None)

    def model_names(self) -> list[str]:
        """Every model that logged a request or saved its reference in this file, sorted."""
        return sorted({name for name, _ in self.model_versions()})

    def model_versions(self) -> list[tuple[str, str | None]]:
        """Every (model, version) that logged a request or saved its reference in this file, sorted."""
        keys = {(s.name, version_key(s.version)) for s in self.saved_versions()}
        with self._reading() as db:
            keys.update(
                (name, version)
                for name, version in db.execute("SELECT model, version FROM totals")
                if isinstance(name, str) and isinstance(version, str)
            )
        return [(name, _version(version)) for name, version in sorted(keys)]

    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        """The latest ``limit`` requests of a model version, newest first."""
        with self._reading() as db:
            return list(
                db.query(
                    "SELECT request_id, status, rows, latency_ms, stages, failed_stage, problem_features FROM requests"
                    " WHERE model = ? AND version IS ? ORDER BY id DESC LIMIT ?",
                    [model, version, limit],
                )
            )

    # -- feedback (written synchronously: a label is acknowledged only once it is on disk) -------
    def request_rows(self, model: str, request_ids: Sequence[str], *, version: str | None = None) -> dict[str, int]:
        """Rows of each answered request of the model version among ``request_ids`` (unknown ids are absent)."""
        found: dict[str, int] = {}
        ids = list(dict.fromkeys(request_ids))
        with self._reading() as db:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                # A client may send its own X-Request-ID twice: labels join the newest request with it.
                sql = (
                    "SELECT request_id, rows FROM requests WHERE model = ? AND version IS ? AND status = 'ok'"
                    f" AND request_id IN ({marks}) AND typeof(rows) = 'integer' AND rows > 0 ORDER BY id"
                )
                for request_id, rows in db.execute(sql, [model, version, *part]):
                    found[request_id] = rows
        return found

    def write_feedback(self, model: str, items: Sequence[tuple[str, int, str]], *, version: str | None = None) -> tuple[int, int]:
        """Store labels (request_id, row, JSON label) in one transaction; return (new, replaced)."""
        now = _iso(time.time())
        key = (model, version_key(version))
        with self._reading() as db:
            conn = db.conn
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                replaced = 0
                seen: set[tuple[str, int]] = set()  # a row labelled twice in one call is replaced too
                for request_id, row, _ in items:
                    replaced += (request_id, row) in seen or conn.execute(
                        "SELECT 1 FROM feedback WHERE model = ? AND version = ? AND request_id = ? AND row = ?",
                        (*key, request_id, row),
                    ).fetchone() is not None
                    seen.add((request_id, row))
                conn.executemany(
                    "INSERT INTO feedback (model, version, request_id, row, label, ts, updates) VALUES (?, ?, ?, ?, ?, ?, 0)"
                    " ON CONFLICT(model, version, request_id, row) DO UPDATE SET label = excluded.label, ts = excluded.ts,"
                    " updates = updates + 1",
                    [(*key, rid, row, label, now) for rid, row, label in items],
                )
                conn.execute(
                    "INSERT INTO totals (model, version, requests, rows, rejected, errors, labels, relabels)"
                    " VALUES (?, ?, 0, 0, 0, 0, ?, ?) ON CONFLICT(model, version) DO UPDATE SET"
                    " labels = labels + excluded.labels, relabels = relabels + excluded.relabels",
                    (*key, len(items) - replaced, replaced),
                )
        return len(items) - replaced, replaced

    def labelled(self, model: str, limit: int, since: str = "", *, version: str | None = None) -> list[tuple[Any, Any, Any, Any]]:
        """The newest ``limit`` labelled rows of a model version by prediction order: (outputs JSON, label JSON,
        predicted at, labelled at), of requests logged at or after ``since`` (an ISO time).

        A label joins the newest answered request with its id (a client may reuse its own X-Request-ID), and
        only a row whose output was stored: a request sampled out (``sample_rate``) has none. The columns
        are as stored: the caller decodes them, and skips what does not decode.
        """
        with self._reading() as db:
            return list(db.execute(_LABELLED, [model, version_key(version), since, limit]))

    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        with self._reading() as db:
            row = db.execute(
                "SELECT labels, relabels FROM totals WHERE model = ? AND version = ?", [model, version_key(version)]
            ).fetchone()
        return (_count(row[0]), _count(row[1])) if row else (0, 0)

    # -- health history (written synchronously by whichever worker computes a slot's report first) --
    def write_snapshot(
        self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int, *, version: str | None = None
    ) -> bool:
        """Store a health snapshot unless the slot already has one (another worker's); True when stored.

        Keeps the newest ``keep`` snapshots of the model version, and none older than ``max_age``. Waits at
        most ``SNAPSHOT_WAIT`` seconds for a lock (a health request should not hang on a busy or locked file).
        """
        key = (model, version_key(version))
        with self._reading() as db:
            conn = db.conn
            conn.execute(f"PRAGMA busy_timeout={int(SNAPSHOT_WAIT * 1000)}")
            try:
                with conn:
                    inserted = conn.execute(
                        "INSERT OR IGNORE INTO health_history (model, version, slot, ts, status, snapshot, worker)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*key, slot, _iso(ts), status, snapshot, os.getpid()),
                    ).rowcount
                    if inserted:
                        conn.execute(
                            "DELETE FROM health_history WHERE model = ? AND version = ? AND ts < (SELECT ts FROM"
                            " health_history WHERE model = ? AND version = ? ORDER BY ts DESC LIMIT 1 OFFSET ?)",
                            (*key, *key, keep - 1),
                        )
                        if self.max_age:
                            cutoff = _iso(time.time() - self.max_age)
                            conn.execute("DELETE FROM health_history WHERE model = ? AND version = ? AND ts < ?", (*key, cutoff))
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return bool(inserted)

    def snapshots(self, model: str, since: float | None, limit: int, *, version: str | None = None) -> list[str]:
        """The newest ``limit`` snapshots (JSON) of a model version taken at or after ``since`` (epoch seconds),
        newest first."""
        with self._reading() as db:
            return [
                text
                for (text,) in db.execute(
                    "SELECT snapshot FROM health_history WHERE model = ? AND version = ? AND ts >= ? ORDER BY ts DESC LIMIT ?",
                    [
                        model,
                        version_key(version),
                        _iso(min(max(since, 0.0), 253402300799.0)) if since is not None else "",
                        limit,
                    ],
                )
            ]

    # -- adopted baselines (written synchronously; the first worker to adopt one wins) -----------------
    def save_baseline(self, model: str, version: str | None, reference: str, kind: str, rows: int, document: str) -> None:
        """Keep a baseline adopted from served traffic, unless another worker already kept one for this key."""
        with self._reading() as db, db.conn:
            db.conn.execute(
                "INSERT OR IGNORE INTO baselines (model, version, reference, kind, since, rows, document)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model, version_key(version), reference, kind, _iso(time.time()), rows, document),
            )

    def baseline(self, model: str, version: str | None, reference: str, kind: str) -> tuple[str, int, str] | None:
        """The kept baseline for this key as (since, rows, document), or None (also for files written before the table)."""
        with self._reading() as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'baselines'").fetchone() is None:
                return None
            row = db.execute(
                "SELECT since, rows, document FROM baselines WHERE model = ? AND version = ? AND reference = ? AND kind = ?",
                (model, version_key(version), reference, kind),
            ).fetchone()
        return (str(row[0]), int(row[1]), str(row[2])) if row else None

    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        """The model version's window chunks, newest first (read lazily: stop iterating once you have enough).

        A chunk that does not decode (a truncated blob, unreadable metadata) is skipped."""
        with self._reading() as db:
            for rows, inputs, outputs, meta in db.execute(
                "SELECT rows, inputs, outputs, meta FROM window WHERE model = ? AND version = ? ORDER BY id DESC",
                [model, version_key(version)],
            ):
                chunk = _decode_chunk_or_none(rows, inputs, outputs, meta)
                if chunk is not None:
                    yield chunk

    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[WarningRecord, ...]:
        with self._reading() as db:
            return tuple(
                WarningRecord(str(r["category"]), str(r["message"]), str(r["location"]), _count(r["count"]))
                for r in db.query(
                    "SELECT category, message, location, count FROM warnings WHERE model = ? AND version = ?"
                    " AND typeof(category) = 'text' AND typeof(message) = 'text' ORDER BY count DESC LIMIT ?",
                    [model, version_key(version), limit],
                )
            )


class _OpenError(Exception):
    """The writer could not open (or create) the database file; the message says why."""


def _encode_chunk(chunk: Chunk) -> tuple[int, bytes, bytes | None, str]:
    meta = {
        "width": chunk.inputs.shape[1],
        "output_width": None if chunk.outputs is None else chunk.outputs.shape[1],
        "unseen": {str(j): names for j, names in chunk.unseen.items()},
        "type_errors": {str(j): n for j, n in chunk.type_errors.items()},
    }
    outputs = None if chunk.outputs is None else np.ascontiguousarray(chunk.outputs, dtype="<f8").tobytes()
    return chunk.rows, np.ascontiguousarray(chunk.inputs, dtype="<f8").tobytes(), outputs, json.dumps(meta)


# The newest labelled rows; see Store.labelled. The output is read only from a JSON array and an integer row.
_LABELLED = (
    "SELECT CASE WHEN typeof(q.outputs) = 'text' AND json_valid(q.outputs) AND typeof(f.row) = 'integer'"
    " THEN q.outputs -> f.row END AS output, f.label, q.ts, f.ts FROM feedback f"
    " JOIN requests q ON q.id = (SELECT max(r.id) FROM requests r"
    " WHERE r.request_id = f.request_id AND r.model = f.model AND r.version IS nullif(f.version, '') AND r.status = 'ok')"
    " WHERE f.model = ? AND f.version = ? AND q.ts >= ? AND output IS NOT NULL ORDER BY q.id DESC, f.row DESC LIMIT ?"
)


def _count(value: Any) -> int:
    """A stored count as an int: 0 for anything that is not a whole number (a hand-edited or damaged row)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _settings(text: Any) -> dict[str, Any]:
    """Saved monitoring settings; {} (the defaults) when they do not decode to an object."""
    try:
        settings = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _decode_chunk_or_none(rows: Any, inputs: Any, outputs: Any, meta_text: Any) -> Chunk | None:
    """A stored window chunk, or None when it does not decode to the shape its metadata names."""
    try:
        chunk = _decode_chunk(rows, inputs, outputs, meta_text)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    width = chunk.inputs.shape[1]
    if (
        chunk.rows < 1
        or width < 1
        or any(not 0 <= j < width or any(n < 0 for n in names.values()) for j, names in chunk.unseen.items())
        or any(not 0 <= j < width or n < 0 for j, n in chunk.type_errors.items())
    ):
        return None
    return chunk


def _decode_chunk(rows: int, inputs: bytes, outputs: bytes | None, meta_text: str) -> Chunk:
    meta = json.loads(meta_text)
    matrix = np.frombuffer(inputs, dtype="<f8").reshape(rows, meta["width"])
    out = None
    if outputs is not None and meta.get("output_width"):
        out = np.frombuffer(outputs, dtype="<f8").reshape(rows, meta["output_width"])
    unseen = {int(j): {str(k): int(v) for k, v in names.items()} for j, names in meta.get("unseen", {}).items()}
    errors = {int(j): int(n) for j, n in meta.get("type_errors", {}).items()}
    return Chunk(matrix, out, unseen, errors)
