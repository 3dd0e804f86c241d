"""The writer thread: takes batches from the backlog and writes them to the server, and posts this replica's heartbeat.

It writes every ``flush_interval`` seconds, as soon as enough waits, and on close, in transactions of a
bounded size (the backlog's), one connection of its own. When the server cannot be reached (down,
restarting, a network cut) the batch goes back to the front of the backlog and the writer retries with a
growing back-off (up to 2 s) while records wait in memory: the request path never waits on the network.
A write that broke off once sent may have committed: the writer keeps that batch and, once the server
answers again, asks it (marks.py) before writing it again, so that no request is stored twice.
A record the server refuses (not the connection's fault) is dropped and counted alone, so that one
poisoned record never stops the writer.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from importlib import metadata
from typing import Any

import psycopg

from ...environment import current_fingerprint
from ...envvars import Environment
from ...logs import get_logger
from ..contract import HEARTBEAT
from ..options import StoreOptions
from ..sqlite.backlog import Backlog, Counts, Key, Work
from ..sqlite.batch import Written
from ..sqlite.thread import OPEN_WAIT, WriterThread
from .batch import clean, write_batch
from .connection import Server
from .marks import Marks
from .retention import Retention
from .schema import create_schema

__all__ = ["OPEN_WAIT", "Heartbeat", "Writer"]

Connection = psycopg.Connection[tuple[Any, ...]]
# The server's or the connection's fault (retry the batch), as opposed to a record the server refuses.
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError, OSError)

_BEAT = (
    "INSERT INTO replicas AS r (model, version, replica, host, pid, library, fingerprint, started_at, last_seen,"
    " pending, written, dropped, capacity, last_error, last_error_at, warnings)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, now(), now(), %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (model, version, replica) DO UPDATE SET last_seen = now(), library = excluded.library,"
    " fingerprint = excluded.fingerprint, pending = excluded.pending, written = excluded.written,"
    " dropped = excluded.dropped, capacity = excluded.capacity, last_error = excluded.last_error,"
    " last_error_at = excluded.last_error_at, warnings = excluded.warnings"
)


def _library() -> str:
    try:
        return metadata.version("guarded-serving")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class _OpenError(Exception):
    """The writer could not connect, or could not create the tables; the message says why."""


class _InterruptedError(Exception):
    """The connection broke while a refused batch's records were written one by one: ``done`` were written or
    dropped, the one in flight is the writer's unsure write (it may have committed), ``rest`` were not sent."""

    def __init__(self, done: Work, rest: Work, error: BaseException) -> None:
        super().__init__(str(error))
        self.done, self.rest, self.error = done, rest, error


class Heartbeat:
    """This process as the fleet sees it: who it is, and which model versions it serves."""

    def __init__(self) -> None:
        self.host = Environment.read().host or socket.gethostname()  # a pod's name in Kubernetes
        self.pid = os.getpid()
        self.name = f"{self.host}:{self.pid}"
        self.library = _library()
        self.fingerprint = json.dumps(current_fingerprint().to_json(), sort_keys=True, separators=(",", ":"))
        self._keys: set[Key] = set()
        self._lock = threading.Lock()
        self.warnings: set[tuple[str, str, str]] = set()  # distinct warnings this replica logged (bounded below)
        self.due = 0.0  # monotonic time of the next beat

    def serve(self, key: Key) -> None:
        with self._lock:
            self._keys.add(key)

    def keys(self) -> list[Key]:
        with self._lock:
            return sorted(self._keys)

    def note_warnings(self, work: Work) -> None:
        for p in work.batch:
            for w in p.warnings:
                if len(self.warnings) < 10_000:
                    self.warnings.add((w.category, w.message, w.location))


class Writer(WriterThread):
    """The thread that owns the writing connection."""

    def __init__(self, server: Server, options: StoreOptions, backlog: Backlog, retention: Retention) -> None:
        self.server = server
        self.options = options
        self.backlog = backlog
        self.retention = retention
        self.heartbeat = Heartbeat()
        self.marks = Marks(self.heartbeat.name)
        self._unsure: tuple[int, Work] | None = None  # a write that broke off, by its mark: it may have committed
        super().__init__()

    def _run(self) -> None:
        conn: Connection | None = None
        backoff = self.options.flush_interval
        try:
            conn = self._connection(None)
        except Exception as exc:  # reported and retried: the writer never dies
            self._failed(Work([], {}, [], None, False), self._error(exc))
        finally:
            self._started.set()
        while True:
            unsure = self._unsure
            if unsure is not None:  # settled before anything newer is written
                self.backlog.pause(backoff)
                work = unsure[1]
            else:
                work = self.backlog.take(backoff)
            if work.batch or work.unlogged or work.models_version is not None or not self.backlog.opened:
                written = None
                try:
                    try:
                        conn = self._connection(conn)
                    except Exception as exc:  # not reachable, or the tables cannot be made: retried alike
                        raise _OpenError(self._error(exc)) from exc
                    written = self._settle_and_write(conn, work)
                except (*_UNREACHABLE, _OpenError) as exc:
                    error = str(exc) if isinstance(exc, _OpenError) else self._error(exc)
                    if self._unsure is None:  # nothing was sent: back in the buffer
                        self._failed(work, error)
                    elif self.backlog.failing(error):  # it may have committed: kept, settled first once reachable
                        pending = self.backlog.pending_rows
                        get_logger().error("store_write_failed", path=self.server.path, error=error, pending=pending)
                    conn = self._drop(conn)
                    backoff = min(backoff * 2, 2.0)
                    if work.closing and time.monotonic() >= self.backlog.close_deadline:
                        lost, last = self.backlog.pending_rows, self.backlog.last_error
                        get_logger().error("store_close_lost_rows", path=self.server.path, pending=lost, error=last)
                        break
                    continue
                except Exception:  # a record the server refuses, not the connection's fault: isolate it
                    self._unsure = None  # the transaction was refused whole: nothing of it committed
                    conn = self._drop(conn)
                    try:
                        conn = self._connection(None)
                        self.backlog.unwritten(self._write_each(conn, work))
                    except _InterruptedError as cut:  # the one in flight settled first (it is unsure), then the rest
                        self.backlog.done(cut.done)
                        self._failed(cut.rest, self._error(cut.error))
                        conn = self._drop(conn)
                        continue
                    except _UNREACHABLE as exc:  # no connection to write them with: nothing was sent
                        self._unsure = None
                        self._failed(work, self._error(exc))
                        conn = self._drop(conn)
                        continue
                recovered = self.backlog.done(work)
                if recovered is not None:
                    get_logger().info("store_recovered", path=self.server.path, after=recovered, written=len(work.batch))
                backoff = self.options.flush_interval
                if written is not None and conn is not None:
                    self._retain(conn, written)
            else:
                self.backlog.idle()
            del work, unsure  # do not hold the written records while waiting for the next flush
            conn = self._beat(conn)
            if self.backlog.closing and self.backlog.empty():
                break
        self._leave(conn)

    def _settle_and_write(self, conn: Connection, work: Work) -> Written | None:
        """Write ``work``; when it is the batch whose last write broke off, first ask whether that write committed
        (then it is not written again: None). While a write is under way, it is the unsure one."""
        if self._unsure is not None:
            seq = self._unsure[0]
            if self.marks.committed(conn, seq):
                self._unsure = None
                self.heartbeat.note_warnings(work)
                get_logger().info("store_write_confirmed", path=self.server.path, records=len(work.batch))
                return None
        else:
            seq = self.marks.take()
        self._unsure = (seq, work)
        written = self._write(conn, work, seq)
        self._unsure = None
        return written

    def _connection(self, conn: Connection | None) -> Connection:
        """The writer's connection; the first one also creates the tables (once across the fleet)."""
        if conn is not None and not conn.closed:
            return conn
        conn = self.server.connect()
        if not self.backlog.opened:
            try:
                create_schema(conn)
            except BaseException:
                conn.close()
                raise
            self.backlog.opened_file(False)
        return conn

    def _write(self, conn: Connection, work: Work, seq: int | None = None) -> Written:
        number = self.marks.take() if seq is None else seq
        written = write_batch(conn, work, self.options.window, self.heartbeat.name, lambda: self.marks.set(conn, number))
        self.retention.note(written.keys)
        self.heartbeat.note_warnings(work)
        return written

    def _retain(self, conn: Connection, written: Written) -> None:
        try:
            self.retention.after_write(conn, written)
        except psycopg.Error as exc:
            get_logger().error("store_prune_failed", path=self.server.path, error=self._error(exc))

    def _write_each(self, conn: Connection, work: Work) -> Counts:
        """Write records one by one, dropping (and counting) those the server refuses. Returns the counts
        still to fold into the totals. Each write is numbered as a batch is (see :class:`Marks`): when the
        connection breaks, the record in flight is left as the unsure write and the rest is raised back
        (:class:`_InterruptedError`), so that a write whose answer was lost is not made twice."""
        left: Counts = dict(work.unlogged)
        for k, record in enumerate(work.batch):
            one = Work([record], left, work.models, work.models_version, work.closing)
            seq = self.marks.take()
            self._unsure = (seq, one)
            try:
                self._write(conn, one, seq)
                left = {}
            except _UNREACHABLE as exc:
                rest = Work(work.batch[k + 1 :], {}, work.models, work.models_version, work.closing)
                raise _InterruptedError(Work(work.batch[:k], {}, [], None, False), rest, exc) from exc
            except Exception as exc:
                self.backlog.lost(record, left)
                get_logger().error("store_record_dropped", request_id=repr(record.request_id)[:80], error=self._error(exc)[:300])
            self._unsure = None
        return left

    def _beat(self, conn: Connection | None) -> Connection | None:
        """Post this replica's heartbeat for every model version it serves, when one is due (connecting
        first if need be: an idle replica keeps beating after the server comes back)."""
        beat = self.heartbeat
        keys = beat.keys()
        if not keys or time.monotonic() < beat.due:
            return conn
        beat.due = time.monotonic() + HEARTBEAT
        with self.backlog.cond:
            b = self.backlog
            state = (b.pending_rows, b.written, b.dropped, self.options.capacity, clean(b.last_error), b.last_error_at)
        try:
            conn = self._connection(conn)
            with conn.transaction():
                conn.cursor().executemany(
                    _BEAT,
                    [
                        (*key, beat.name, beat.host, beat.pid, beat.library, beat.fingerprint, *state, len(beat.warnings))
                        for key in keys
                    ],
                )
        except Exception as exc:  # the next write finds the server unreachable too, and reports it
            get_logger().debug("store_heartbeat_failed", path=self.server.path, error=self._error(exc))
            return self._drop(conn)
        return conn

    def _leave(self, conn: Connection | None) -> None:
        """Take this replica off the fleet's list (it closed; one that is killed goes stale instead)."""
        if conn is not None:
            try:
                if self.heartbeat.keys():
                    conn.execute("DELETE FROM replicas WHERE replica = %s", (self.heartbeat.name,))
                self.marks.remove(conn)
            except psycopg.Error as exc:
                get_logger().debug("store_heartbeat_failed", path=self.server.path, error=self._error(exc))
        self._drop(conn)

    def _drop(self, conn: Connection | None) -> Connection | None:
        """Close a connection (quietly: it may be broken already); None, the connection there is now."""
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error as exc:
                get_logger().debug("store_connection_close_failed", error=self._error(exc))
        return None

    def _failed(self, work: Work, error: str) -> None:
        if self.backlog.requeue(work, error):  # one event per failure streak, not per retry
            get_logger().error("store_write_failed", path=self.server.path, error=error, pending=self.backlog.pending_rows)

    def _error(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {self.server.scrub(str(exc)).strip()}"[:500]
