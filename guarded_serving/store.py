"""The log store: every request and its rows in a SQLite file, written by a background thread.

The request path only appends a record to an in-memory buffer of bounded size; a writer thread
flushes the buffer in one transaction every ``flush_interval`` seconds (and when it fills up, and
on :meth:`Store.close`). The database runs in WAL mode so that readers (the health endpoint, the
``sqlite-utils`` CLI, another worker) never block the writer.

Tables (browse them with ``sqlite-utils rows guarded_serving.db requests``):

``requests``  one row per request: request_id, ts, model, version, status (ok | rejected | error),
              rows, latency_ms, stages (JSON of per-stage milliseconds), failed_stage, error, worker,
              inputs and outputs (JSON arrays with one entry per row)
``rows``      a view with one row per input row of an answered request: request_id, row, inputs,
              outputs (JSON). Rows are stored per request, as one array each: one insert and one
              serializer call per request instead of per row, 2-3x the rows per second.
``totals``    running counts per model, so totals never need a full scan
``warnings``  deprecation / future warnings raised while predicting, with counts
``feedback``  labels that arrived later, keyed by (model, request_id, row)
``window``    the drift window: encoded rows of recent requests, as binary chunks
``models``    per model: its version, reference (JSON) and monitoring settings, so that the file
              can be judged again offline (``guarded-serving report``)
``health_history``  one health snapshot per model and ``history_interval`` slot (JSON), for the timeline
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import sqlite_utils

from .drift.window import Chunk, merge_chunks
from .environment import WarningRecord
from .errors import StoreError
from .jsontext import dump_text
from .logs import get_logger

__all__ = ["RequestRecord", "SavedModel", "Store", "StoreStats", "Totals"]

Status = Literal["ok", "rejected", "error"]
SCHEMA_VERSION = 2  # 2: rows stored per request (inputs/outputs arrays), `rows` is a view
SNAPSHOT_WAIT = 1.0  # seconds a health snapshot write waits for a lock before giving up (the memory copy stays)


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


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0
    rows: int = 0
    rejected: int = 0
    errors: int = 0


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


def create_schema(db: sqlite_utils.Database) -> None:
    """Create the tables and indexes if they do not exist (safe to run from several workers)."""
    db.execute("PRAGMA journal_mode=WAL")
    with db.conn:
        db.table("requests").create(
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
        db.table("totals").create(
            {"model": str, "requests": int, "rows": int, "rejected": int, "errors": int}, pk="model", if_not_exists=True
        )
        db.table("window").create(
            {"id": int, "model": str, "rows": int, "inputs": bytes, "outputs": bytes, "meta": str},
            pk="id",
            not_null={"model", "rows", "inputs"},
            if_not_exists=True,
        )
        db.table("warnings").create(
            {"model": str, "category": str, "message": str, "location": str, "count": int, "first_seen": str, "last_seen": str},
            pk=("model", "category", "message", "location"),
            if_not_exists=True,
        )
        db.table("requests").create_index(["request_id"], if_not_exists=True)
        db.table("requests").create_index(["model", "id"], if_not_exists=True)
        db.table("window").create_index(["model", "id"], if_not_exists=True)
        db.table("feedback").create(
            {"model": str, "request_id": str, "row": int, "label": str, "ts": str, "updates": int},
            pk=("model", "request_id", "row"),
            if_not_exists=True,
        )
        db.table("health_history").create(
            {"model": str, "slot": int, "ts": str, "status": str, "snapshot": str, "worker": int},
            pk=("model", "slot"),
            not_null={"ts", "status", "snapshot"},
            if_not_exists=True,
        )
        db.table("health_history").create_index(["model", "ts"], if_not_exists=True)
        totals = db.table("totals")
        for column in ("labels", "relabels"):
            if column not in totals.columns_dict:
                totals.add_column(column, int, not_null_default=0)
        db.table("models").create(
            {"model": str, "version": str, "saved_at": str, "reference": str, "settings": str},
            pk="model",
            not_null={"saved_at", "reference", "settings"},
            if_not_exists=True,
        )
        requests = db.table("requests")
        if "problem_features" not in requests.columns_dict:  # files written before the column existed
            requests.add_column("problem_features", str)
        for column in ("inputs", "outputs"):
            if column not in requests.columns_dict:
                requests.add_column(column, str)
        if "rows" in db.table_names():  # schema 1 kept one table row per input row: fold them in
            _fold_rows_table(db.conn)
        db.execute(_ROWS_VIEW)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


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


# One row per input row, read from the per-request arrays (outputs drive it: inputs may be withheld).
_ROWS_VIEW = (
    "CREATE VIEW IF NOT EXISTS rows AS SELECT q.request_id AS request_id, j.key AS row,"
    " q.inputs -> j.key AS inputs, q.outputs -> j.key AS outputs FROM requests q, json_each(q.outputs) j"
)
_INSERT_REQUEST = (
    "INSERT INTO requests (request_id, ts, model, version, status, rows, latency_ms, stages, failed_stage, error,"
    " problem_features, worker, inputs, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_WINDOW = "INSERT INTO window (model, rows, inputs, outputs, meta) VALUES (?, ?, ?, ?, ?)"
_UPSERT_TOTALS = (
    "INSERT INTO totals (model, requests, rows, rejected, errors) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(model) DO UPDATE SET requests = requests + excluded.requests, rows = rows + excluded.rows,"
    " rejected = rejected + excluded.rejected, errors = errors + excluded.errors"
)
_UPSERT_MODEL = (
    "INSERT INTO models (model, version, saved_at, reference, settings) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT(model) DO UPDATE SET version = excluded.version, saved_at = excluded.saved_at,"
    " reference = excluded.reference, settings = excluded.settings"
)
_UPSERT_WARNING = (
    "INSERT INTO warnings (model, category, message, location, count, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(model, category, message, location) DO UPDATE SET count = count + excluded.count,"
    " last_seen = excluded.last_seen"
)


class Store:
    """A SQLite log store with a background batched writer.

    ``capacity`` bounds the rows waiting in memory; when the disk cannot keep up or fails, records
    beyond it are dropped and counted (the service keeps answering). Thread-safe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.2,
        capacity: int = 100_000,
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
        self._buffer: collections.deque[RequestRecord] = collections.deque()
        self._pending_rows = 0
        self._written = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        self._last_flush_at: str | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._in_flight = 0
        self._flush_requested = False
        self._close_deadline = 0.0
        self._inode = 0
        self._replaced = 0
        self._last_replaced_at: str | None = None
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._readers: list[sqlite_utils.Database] = []  # every thread's reader connection, closed by close()
        self._models: dict[str, tuple[str | None, str, str, str]] = {}  # name -> (version, saved_at, reference, settings)
        self._models_changed = 0  # bumped by save_model; the writer writes the models while behind it
        self._models_written = 0

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> Store:
        """Create the file (owner-only permissions) and schema, and start the writer thread."""
        if self._thread is not None:
            return self
        try:
            self._create_file()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the log store at {self.path!r}: {exc}") from exc
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="guarded-serving-writer", daemon=True)
        self._thread.start()
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
        """Queue a record for writing; False (and counted as dropped) when the buffer is full.

        With ``overflow="block"`` a full buffer makes the caller wait (back-pressure on the request)
        up to ``block_timeout`` seconds for the writer to make room, and only then drop.
        """
        size = max(record.rows, 1)
        with self._cond:
            if self._pending_rows + size > self.capacity and self.overflow == "block":
                deadline = time.monotonic() + self.block_timeout
                while self._pending_rows + size > self.capacity and time.monotonic() < deadline and self._thread is not None:
                    self._cond.notify_all()
                    self._cond.wait(min(0.05, max(deadline - time.monotonic(), 0.0)))
            if self._pending_rows + size > self.capacity:
                self._dropped += size
                return False
            self._buffer.append(record)
            self._pending_rows += size
            if self._pending_rows >= 1000:
                self._cond.notify_all()
        return True

    def save_model(self, name: str, version: str | None, reference: str, settings: dict[str, Any]) -> None:
        """Have the writer record a model's reference (JSON text) and settings in the ``models`` table.

        Written with the next flush, retried like every write, and written again into a new file when
        the database file is replaced, so that ``guarded-serving report`` can always judge the file.
        """
        with self._cond:
            self._models[name] = (version, _iso(time.time()), reference, json.dumps(settings, sort_keys=True))
            self._models_changed += 1
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is on disk (for tests and batch jobs)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_requested = True  # seen by the writer even if it is busy writing right now
            self._cond.notify_all()
        with self._cond:
            while self._buffer or self._in_flight or self._models_written != self._models_changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
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
            )

    # -- writer thread ---------------------------------------------------------------------
    def _create_file(self) -> None:
        """Create the database file readable by its owner only, with its schema; remember its inode."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        db = self._connect()
        create_schema(db)
        db.conn.close()
        self._inode = os.stat(self.path).st_ino

    def _file_replaced(self) -> bool:
        """True when the database file was deleted or replaced since it was opened (SQLite would keep
        writing into the deleted file, and those rows would vanish with the process)."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except OSError:
            return True

    def _connect(self) -> sqlite_utils.Database:
        # mode=rw: never create the file here (a reader would otherwise create an empty, schema-less one)
        uri = f"file:{quote(os.path.abspath(self.path))}?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        return sqlite_utils.Database(conn)

    def _run(self) -> None:
        db: sqlite_utils.Database | None = None
        backoff = self.flush_interval
        while True:
            with self._cond:
                if not self._closing and not self._flush_requested and self._pending_rows < 1000:
                    self._cond.wait(backoff)
                self._flush_requested = False
                batch = list(self._buffer)
                self._buffer.clear()
                self._in_flight = len(batch)
                closing = self._closing
                models_due = self._models_written != self._models_changed
            if batch or models_due:
                try:
                    if self._file_replaced():
                        if db is not None:
                            db.conn.close()
                            db = None
                        self._create_file()
                        self._local = threading.local()  # readers reconnect to the new file
                        with self._cond:
                            self._models_written = -1  # the new file needs the models too
                        self._note_replaced()
                    if db is None:
                        db = self._connect()
                    self._write(db, batch)
                except (sqlite3.Error, OSError) as exc:
                    self._requeue(batch, exc)
                    if db is not None:
                        db.conn.close()
                        db = None
                    backoff = min(backoff * 2, 2.0)
                    if closing and time.monotonic() >= self._close_deadline:
                        with self._cond:
                            lost = self._pending_rows
                        get_logger().error("store_close_lost_rows", path=self.path, pending=lost, error=self._last_error)
                        break
                    continue
                except Exception:  # a record that cannot be encoded, not the disk's fault: isolate it
                    self._write_each(db or self._connect(), batch)
                with self._cond:
                    self._pending_rows -= sum(max(r.rows, 1) for r in batch)
                    self._cond.notify_all()  # wake producers waiting for room (overflow="block")
                    self._written += sum(r.rows for r in batch)
                    self._last_flush_at = _iso(time.time())
                    recovered, self._last_error = self._last_error, None
                    self._in_flight = 0
                if recovered is not None:
                    get_logger().info("store_recovered", path=self.path, after=recovered, written=len(batch))
                backoff = self.flush_interval
            else:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
            batch = []  # do not hold the written records (and their rows) while waiting for the next flush
            if closing:
                with self._cond:
                    if not self._buffer:
                        break
        if db is not None:
            db.conn.close()

    def _write_each(self, db: sqlite_utils.Database, batch: list[RequestRecord]) -> None:
        """Write records one by one, dropping (and counting) those that cannot be written, so that one
        poisoned record never stops the writer (only reached when a batch failed for a non-disk reason)."""
        for record in batch:
            try:
                self._write(db, [record])
            except Exception as exc:
                with self._cond:
                    self._dropped += max(record.rows, 1)
                    self._written -= record.rows  # the caller counts the whole batch as written
                    self._last_error_at = _iso(time.time())
                get_logger().error(
                    "store_record_dropped", request_id=repr(record.request_id)[:80], error=f"{type(exc).__name__}: {exc}"
                )

    def _note_replaced(self) -> None:
        with self._cond:
            self._replaced += 1
            self._last_replaced_at = _iso(time.time())
        get_logger().error(
            "store_file_replaced", path=self.path, detail="the database file was deleted or replaced; a new one was started"
        )

    def _requeue(self, batch: list[RequestRecord], exc: BaseException) -> None:
        with self._cond:
            self._buffer.extendleft(reversed(batch))
            self._in_flight = 0
            self._cond.notify_all()
            first = self._last_error is None
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._last_error_at = _iso(time.time())
            pending = self._pending_rows
        if first:  # one event per failure streak, not per retry
            get_logger().error("store_write_failed", path=self.path, error=self._last_error, pending=pending)

    def _write(self, db: sqlite_utils.Database, batch: list[RequestRecord]) -> None:
        worker = os.getpid()
        requests = []
        totals: dict[str, list[int]] = {}
        warnings = []
        chunks: dict[str, list[Chunk]] = {}
        for r in batch:
            inputs = outputs = None
            if r.inputs is not None or r.outputs is not None:  # inputs may be withheld (log_inputs=False)
                count = len(r.inputs) if r.inputs is not None else len(r.outputs or ())
                inputs = r.inputs_json or (_dumps(r.inputs) if r.inputs is not None else None)
                outputs = _dumps(r.outputs) if r.outputs is not None else _dumps([None] * count)
            requests.append(
                (
                    r.request_id,
                    _iso(r.ts),
                    r.model,
                    r.version,
                    r.status,
                    r.rows,
                    round(r.latency_ms, 3),
                    _dumps({k: round(v, 3) for k, v in r.stages.items()}),
                    r.failed_stage,
                    r.error,
                    json.dumps(list(r.problem_features)) if r.problem_features else None,
                    worker,
                    inputs,
                    outputs,
                )
            )
            if r.window is not None and r.window.rows:
                chunks.setdefault(r.model, []).append(r.window)
            t = totals.setdefault(r.model, [0, 0, 0, 0])
            t[0] += 1
            t[1] += r.rows if r.status == "ok" else 0
            t[2] += r.status == "rejected"
            t[3] += r.status == "error"
            for w in r.warnings:
                warnings.append((r.model, w.category, w.message, w.location, w.count, _iso(r.ts), _iso(r.ts)))
        with self._cond:
            models_version = self._models_changed
            models_due = self._models_written != models_version
            models = [(name, *saved) for name, saved in self._models.items()] if models_due else []
        conn = db.conn
        with conn:
            if models:
                conn.executemany(_UPSERT_MODEL, models)
            conn.executemany(_INSERT_REQUEST, requests)
            conn.executemany(_UPSERT_TOTALS, [(m, *t) for m, t in totals.items()])
            if warnings:
                conn.executemany(_UPSERT_WARNING, warnings)
            for model, parts in chunks.items():
                merged = merge_chunks(parts)
                if merged.rows > self.window_capacity:  # older rows than a window are never read
                    merged = merged.tail(self.window_capacity)
                conn.execute(_INSERT_WINDOW, (model, *_encode_chunk(merged)))
        if models_due:
            with self._cond:
                self._models_written = models_version
        self._flushes += 1
        if chunks and self._flushes % 25 == 0:
            self._prune_window(conn, list(chunks))
        if (self.max_rows or self.max_age) and self._flushes % 50 == 1:
            self._prune_retention(conn)

    def prune(self) -> int:
        """Apply ``max_rows`` / ``max_age`` now (the writer also does it about every 10 s); return rows deleted."""
        before = self._pruned
        db = self._connect()
        try:
            self._prune_retention(db.conn)
        finally:
            db.conn.close()
        return self._pruned - before

    def _prune_retention(self, conn: sqlite3.Connection, batch: int = 5000) -> None:
        """Delete the oldest logged rows beyond ``max_rows`` or older than ``max_age`` seconds.

        Runs in the writer thread between flushes, in small transactions, so predictions never wait
        and a write never waits long: requests keep being buffered meanwhile.
        """
        deleted = 0
        if self.max_age:
            cutoff = _iso(time.time() - self.max_age)
            while True:
                with conn:
                    ids = [
                        r for (r,) in conn.execute("SELECT id FROM requests WHERE ts < ? ORDER BY id LIMIT ?", (cutoff, batch))
                    ]
                    if not ids:
                        break
                    marks = ",".join("?" * len(ids))
                    conn.execute(f"DELETE FROM requests WHERE id IN ({marks})", ids)
                    deleted += len(ids)
                with conn:
                    conn.execute("DELETE FROM feedback WHERE ts < ?", (cutoff,))
        if self.max_rows:
            # Keep the newest requests holding at most max_rows rows (a request without rows counts as one).
            kept = 0
            last: int | None = None
            for request_id, rows in conn.execute("SELECT id, max(rows, 1) FROM requests ORDER BY id DESC"):
                kept += rows
                if kept > self.max_rows:
                    last = request_id
                    break
            while last is not None:
                with conn:
                    ids = [r for (r,) in conn.execute("SELECT id FROM requests WHERE id <= ? ORDER BY id LIMIT ?", (last, batch))]
                    if not ids:
                        break
                    conn.execute(f"DELETE FROM requests WHERE id IN ({','.join('?' * len(ids))})", ids)
                    deleted += len(ids)
        self._pruned += deleted

    def _prune_window(self, conn: sqlite3.Connection, models: list[str]) -> None:
        """Delete window chunks older than the newest ``window_capacity`` rows of each model."""
        for model in models:
            total = 0
            cutoff = None
            for chunk_id, rows in conn.execute("SELECT id, rows FROM window WHERE model = ? ORDER BY id DESC", (model,)):
                total += rows
                if total >= self.window_capacity:
                    cutoff = chunk_id
                    break
            if cutoff is not None:
                with conn:
                    conn.execute("DELETE FROM window WHERE model = ? AND id < ?", (model, cutoff))

    # -- queries (any thread; never block the writer thanks to WAL) --------------------------
    def _reader(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
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

    def totals(self, model: str) -> Totals:
        with self._reading() as db:
            rows = list(db.query("SELECT requests, rows, rejected, errors FROM totals WHERE model = ?", [model]))
        if not rows:
            return Totals()
        r = rows[0]
        return Totals(
            requests=_count(r["requests"]), rows=_count(r["rows"]), rejected=_count(r["rejected"]), errors=_count(r["errors"])
        )

    def saved_models(self) -> dict[str, SavedModel]:
        """The models recorded by :meth:`save_model` (none in a file written before the table existed)."""
        with self._reading() as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'models'").fetchone() is None:
                return {}
            return {
                name: SavedModel(name, _text(version), str(saved_at), _text(reference) or "", _settings(settings))
                for name, version, saved_at, reference, settings in db.execute(
                    "SELECT model, version, saved_at, reference, settings FROM models ORDER BY model"
                )
                if isinstance(name, str)
            }

    def model_names(self) -> list[str]:
        """Every model that logged a request or saved its reference in this file, sorted."""
        names = set(self.saved_models())
        with self._reading() as db:
            names.update(name for (name,) in db.execute("SELECT model FROM totals") if isinstance(name, str))
        return sorted(names)

    def recent_requests(self, model: str, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` requests of a model, newest first."""
        with self._reading() as db:
            return list(
                db.query(
                    "SELECT request_id, status, rows, latency_ms, stages, failed_stage, problem_features FROM requests"
                    " WHERE model = ? ORDER BY id DESC LIMIT ?",
                    [model, limit],
                )
            )

    # -- feedback (written synchronously: a label is acknowledged only once it is on disk) -------
    def request_rows(self, model: str, request_ids: Sequence[str]) -> dict[str, int]:
        """Rows of each answered request among ``request_ids`` (unknown ids are absent)."""
        found: dict[str, int] = {}
        ids = list(dict.fromkeys(request_ids))
        with self._reading() as db:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                # A client may send its own X-Request-ID twice: labels join the newest request with it.
                sql = (
                    f"SELECT request_id, rows FROM requests WHERE model = ? AND status = 'ok' AND request_id IN ({marks})"
                    " AND typeof(rows) = 'integer' AND rows > 0 ORDER BY id"
                )
                for request_id, rows in db.execute(sql, [model, *part]):
                    found[request_id] = rows
        return found

    def write_feedback(self, model: str, items: Sequence[tuple[str, int, str]]) -> tuple[int, int]:
        """Store labels (request_id, row, JSON label) in one transaction; return (new, replaced)."""
        now = _iso(time.time())
        with self._reading() as db:
            conn = db.conn
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                replaced = 0
                seen: set[tuple[str, int]] = set()  # a row labelled twice in one call is replaced too
                for request_id, row, _ in items:
                    replaced += (request_id, row) in seen or conn.execute(
                        "SELECT 1 FROM feedback WHERE model = ? AND request_id = ? AND row = ?", (model, request_id, row)
                    ).fetchone() is not None
                    seen.add((request_id, row))
                conn.executemany(
                    "INSERT INTO feedback (model, request_id, row, label, ts, updates) VALUES (?, ?, ?, ?, ?, 0)"
                    " ON CONFLICT(model, request_id, row) DO UPDATE SET label = excluded.label, ts = excluded.ts,"
                    " updates = updates + 1",
                    [(model, rid, row, label, now) for rid, row, label in items],
                )
                conn.execute(
                    "INSERT INTO totals (model, requests, rows, rejected, errors, labels, relabels) VALUES (?, 0, 0, 0, 0, ?, ?)"
                    " ON CONFLICT(model) DO UPDATE SET labels = labels + excluded.labels,"
                    " relabels = relabels + excluded.relabels",
                    (model, len(items) - replaced, replaced),
                )
        return len(items) - replaced, replaced

    def labelled(self, model: str, limit: int, since: str = "") -> list[tuple[Any, Any, Any, Any]]:
        """The newest ``limit`` labelled rows by prediction order: (outputs JSON, label JSON, predicted at, labelled at),
        of requests logged at or after ``since`` (an ISO time).

        A label joins the newest answered request with its id (a client may reuse its own X-Request-ID), and
        only a row whose output was stored: a request sampled out (``sample_rate``) has none. The columns
        are as stored: the caller decodes them, and skips what does not decode.
        """
        with self._reading() as db:
            return list(db.execute(_LABELLED, [model, since, limit]))

    def label_totals(self, model: str) -> tuple[int, int]:
        with self._reading() as db:
            row = db.execute("SELECT labels, relabels FROM totals WHERE model = ?", [model]).fetchone()
        return (_count(row[0]), _count(row[1])) if row else (0, 0)

    # -- health history (written synchronously by whichever worker computes a slot's report first) --
    def write_snapshot(self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int) -> bool:
        """Store a health snapshot unless the slot already has one (another worker's); True when stored.

        Keeps the newest ``keep`` snapshots of the model, and none older than ``max_age``. Waits at most
        ``SNAPSHOT_WAIT`` seconds for a lock (a health request should not hang on a busy or locked file).
        """
        with self._reading() as db:
            conn = db.conn
            conn.execute(f"PRAGMA busy_timeout={int(SNAPSHOT_WAIT * 1000)}")
            try:
                with conn:
                    inserted = conn.execute(
                        "INSERT OR IGNORE INTO health_history (model, slot, ts, status, snapshot, worker)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (model, slot, _iso(ts), status, snapshot, os.getpid()),
                    ).rowcount
                    if inserted:
                        conn.execute(
                            "DELETE FROM health_history WHERE model = ? AND ts < (SELECT ts FROM health_history"
                            " WHERE model = ? ORDER BY ts DESC LIMIT 1 OFFSET ?)",
                            (model, model, keep - 1),
                        )
                        if self.max_age:
                            cutoff = _iso(time.time() - self.max_age)
                            conn.execute("DELETE FROM health_history WHERE model = ? AND ts < ?", (model, cutoff))
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return bool(inserted)

    def snapshots(self, model: str, since: float | None, limit: int) -> list[str]:
        """The newest ``limit`` snapshots (JSON) of a model taken at or after ``since`` (epoch seconds), newest first."""
        with self._reading() as db:
            return [
                text
                for (text,) in db.execute(
                    "SELECT snapshot FROM health_history WHERE model = ? AND ts >= ? ORDER BY ts DESC LIMIT ?",
                    [model, _iso(min(max(since, 0.0), 253402300799.0)) if since is not None else "", limit],
                )
            ]

    def window_chunks(self, model: str) -> Iterator[Chunk]:
        """The model's window chunks, newest first (read lazily: stop iterating once you have enough).

        A chunk that does not decode (a truncated blob, unreadable metadata) is skipped."""
        with self._reading() as db:
            for rows, inputs, outputs, meta in db.execute(
                "SELECT rows, inputs, outputs, meta FROM window WHERE model = ? ORDER BY id DESC", [model]
            ):
                chunk = _decode_chunk_or_none(rows, inputs, outputs, meta)
                if chunk is not None:
                    yield chunk

    def warnings(self, model: str, limit: int = 50) -> tuple[WarningRecord, ...]:
        with self._reading() as db:
            return tuple(
                WarningRecord(str(r["category"]), str(r["message"]), str(r["location"]), _count(r["count"]))
                for r in db.query(
                    "SELECT category, message, location, count FROM warnings WHERE model = ?"
                    " AND typeof(category) = 'text' AND typeof(message) = 'text' ORDER BY count DESC LIMIT ?",
                    [model, limit],
                )
            )


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
    " WHERE r.request_id = f.request_id AND r.model = f.model AND r.status = 'ok')"
    " WHERE f.model = ? AND q.ts >= ? AND output IS NOT NULL ORDER BY q.id DESC, f.row DESC LIMIT ?"
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
