"""The writer thread: takes batches from the backlog and writes them, retrying whatever the disk does.

It writes every ``flush_interval`` seconds, as soon as enough waits, and on close, in transactions of a
bounded size so that room frees up as it goes. The file is created by the writer, never by a reader; a
fault opening it (a bad path, a lock held elsewhere) is reported and retried with a growing back-off
(up to 2 s) while records wait. A record that cannot be written (not the disk's fault) is dropped and
counted alone, so that one poisoned record never stops the writer.
"""

from __future__ import annotations

import sqlite3
import time

import sqlite_utils

from ...logs import get_logger
from ..options import StoreOptions
from .backlog import Backlog, Counts, Work
from .batch import Written, write_batch
from .connection import Connections
from .dbfile import DatabaseFile, WalLostError
from .retention import Retention
from .thread import OPEN_WAIT, WriterThread

__all__ = ["OPEN_WAIT", "Writer"]


class _OpenError(Exception):
    """The writer could not open (or create) the database file; the message says why."""


class Writer(WriterThread):
    """The thread that owns the writing connection."""

    def __init__(
        self, file: DatabaseFile, options: StoreOptions, backlog: Backlog, readers: Connections, retention: Retention
    ) -> None:
        self.file = file
        self.options = options
        self.backlog = backlog
        self.readers = readers
        self.retention = retention
        super().__init__()

    def _run(self) -> None:
        db: sqlite_utils.Database | None = None
        backoff = self.options.flush_interval
        try:
            db = self._connection(None)
        except (sqlite3.Error, OSError) as exc:
            self._failed(Work([], {}, [], None, False), self._open_error(exc))
        finally:
            self._started.set()
        while True:
            work = self.backlog.take(backoff)
            if not (work.batch or work.unlogged or work.models_version is not None or not self.backlog.opened):
                self.backlog.idle()
            else:
                written = None
                try:
                    try:
                        db = self._connection(db)
                    except (sqlite3.Error, OSError) as exc:
                        raise _OpenError(self._open_error(exc)) from exc
                    written = self._write(db, work)
                except WalLostError as lost:
                    self.file.recover_wal(db, lost.rescue)
                    db = None
                    self.readers.reconnect()
                    self.backlog.requeue(work, None, again=True)
                    continue
                except (sqlite3.Error, OSError, _OpenError) as exc:
                    self._failed(work, str(exc) if isinstance(exc, _OpenError) else f"{type(exc).__name__}: {exc}")
                    if db is not None:
                        db.conn.close()
                        db = None
                    self.file.forget_wal()
                    backoff = min(backoff * 2, 2.0)
                    if work.closing and time.monotonic() >= self.backlog.close_deadline:
                        pending, error = self.backlog.pending_rows, self.backlog.last_error
                        get_logger().error("store_close_lost_rows", path=self.file.path, pending=pending, error=error)
                        break
                    continue
                except Exception:  # a record that cannot be encoded, not the disk's fault: isolate it
                    self.backlog.unwritten(self._write_each(db or self.file.connect(), work))
                recovered = self.backlog.done(work)
                if recovered is not None:
                    get_logger().info("store_recovered", path=self.file.path, after=recovered, written=len(work.batch))
                backoff = self.options.flush_interval
                if written is not None and db is not None:
                    self._retain(db, written)
            del work  # do not hold the written records (and their rows) while waiting for the next flush
            if self.backlog.closing and self.backlog.empty():
                break
        if db is not None:
            db.conn.close()

    def _connection(self, db: sqlite_utils.Database | None) -> sqlite_utils.Database:
        """The writer's connection, opening the file first (at start, or when it was deleted or replaced)."""
        if not self.backlog.opened or self.file.is_replaced():
            replaced = self.backlog.opened
            if db is not None:
                db.conn.close()
                db = None
            self.file.create()
            self.readers.reconnect()
            self.backlog.opened_file(replaced)
            if replaced:
                self.file.note_replaced()
        return db if db is not None else self.file.connect()

    def _write(self, db: sqlite_utils.Database, work: Work) -> Written:
        written = write_batch(db.conn, work, self.options.window, self.file.check_wal)
        self.file.remember_wal()
        self.retention.note(written.keys)
        return written

    def _retain(self, db: sqlite_utils.Database, written: Written) -> None:
        """Prune what a write made due, after it is counted written: a prune that fails is retried with a
        later write, and never has the write's records written twice."""
        try:
            self.retention.after_write(db.conn, written)
        except (sqlite3.Error, OSError) as exc:
            get_logger().error("store_prune_failed", path=self.file.path, error=f"{type(exc).__name__}: {exc}")

    def _write_each(self, db: sqlite_utils.Database, work: Work) -> Counts:
        """Write records one by one, dropping (and counting) those that cannot be written (only reached when
        a batch failed for a non-disk reason). Returns the counts still to fold into the totals."""
        left: Counts = dict(work.unlogged)
        for record in work.batch:
            try:
                self._write(db, Work([record], left, work.models, work.models_version, work.closing))
                left = {}
            except Exception as exc:
                self.backlog.lost(record, left)
                get_logger().error(
                    "store_record_dropped", request_id=repr(record.request_id)[:80], error=f"{type(exc).__name__}: {exc}"
                )
        return left

    def _failed(self, work: Work, error: str) -> None:
        if self.backlog.requeue(work, error):  # one event per failure streak, not per retry
            get_logger().error("store_write_failed", path=self.file.path, error=error, pending=self.backlog.pending_rows)

    def _open_error(self, exc: BaseException) -> str:
        return f"cannot open the log store at {self.file.path!r}: {type(exc).__name__}: {exc}"
