"""The SQLite log store: a reader of the file that also writes it, through a background batched writer.

The request path only appends a record to the backlog (see :mod:`.backlog`); the writer thread
(:mod:`.writer`) writes it within about ``flush_interval`` seconds. The database runs in WAL mode so
that readers (the health endpoint, the ``sqlite-utils`` CLI, another worker) never block the writer.
Labels and health snapshots are written synchronously, on the caller's connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Self

from ..contract import Store
from ..options import StoreOptions
from ..records import RequestRecord, StoreStats, version_key
from .backlog import Backlog
from .codec import iso
from .connection import Connections
from .dbfile import DatabaseFile
from .reader import SqliteReader
from .retention import Retention
from .writer import Writer

__all__ = ["SNAPSHOT_WAIT", "SqliteStore"]

# Labels written by one statement (8 values each, within SQLite's limit on a statement's values)
_LABELS_PER_STATEMENT = 500
_LABELLED_ROWS = "SELECT row FROM feedback WHERE model = ? AND version = ? AND request_id = ?"
_PUT_LABELS = (
    "INSERT INTO feedback (model, version, request_id, row, label, ts, updates, changed) VALUES {values}"
    " ON CONFLICT(model, version, request_id, row) DO UPDATE SET"
    " label = excluded.label, ts = excluded.ts, updates = updates + 1, changed = excluded.changed"
)
SNAPSHOT_WAIT = 1.0  # seconds a health snapshot write waits for a lock before giving up (the memory copy stays)


class SqliteStore(SqliteReader, Store):
    """A SQLite log store with a background batched writer. Thread-safe.

    ``options.capacity`` rows and ``options.capacity_bytes`` bytes bound what waits in memory. A request
    that finds the buffer full waits for room while the writer is making progress (back-pressure), and
    with ``overflow="block"`` also while it is failing, up to ``block_timeout``; otherwise its record is
    dropped and counted (the service keeps answering), and still counted in ``totals``.
    """

    def __init__(self, path: str | os.PathLike[str], options: StoreOptions | None = None) -> None:
        self.options = options if options is not None else StoreOptions()
        super().__init__(Connections(str(path), self.options.busy_timeout))
        self._backlog = Backlog(self.options)
        self._retention = Retention(self.options)
        self._file = DatabaseFile(self.path, self.options.busy_timeout)
        self._writer = Writer(self._file, self.options, self._backlog, self.connections, self._retention)

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> Self:
        """Start the writer thread, which creates the file (owner-only permissions) and its schema.

        Never raises: waits up to ``OPEN_WAIT`` seconds for the file, and when it cannot be opened (a
        bad path, a lock held elsewhere), the writer reports it in :meth:`stats` and keeps retrying
        while records wait in memory.
        """
        self._writer.start()
        return self

    def close(self, timeout: float = 10.0) -> bool:
        """Flush what is pending and stop the writer; return False if it did not finish in time."""
        finished = self._writer.stop(timeout)
        self.connections.close()  # every thread's reader: the last connection to close folds the WAL into the file
        return finished

    # -- the request path --------------------------------------------------------------------
    def put(self, record: RequestRecord) -> bool:
        """Queue a record for writing; False (dropped, and counted) when there is no room for it.

        A full buffer makes the caller wait for the writer to make room (back-pressure on the request),
        while the writer is making progress, up to ``block_timeout`` seconds; with ``overflow="block"``
        also while it is failing. A record larger than the whole buffer is dropped at once.
        """
        return self._backlog.put_record(record)

    def save_model(self, name: str, version: str | None, reference: str, settings: dict[str, Any]) -> None:
        """Have the writer record a model version's reference and settings in the ``models`` table (with the
        next write, retried like every write, and again into a new file should the file be replaced)."""
        key = (name, version_key(version))
        self._retention.note({key})
        self._backlog.save_model(key, reference, json.dumps(settings, sort_keys=True))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is on disk (for tests and batch jobs)."""
        return self._backlog.drained(timeout)

    def stats(self) -> StoreStats:
        file = self._file
        return self._backlog.stats(
            self.path,
            replaced=file.replaced,
            last_replaced_at=file.last_replaced_at,
            wal_replaced=file.wal_replaced,
            last_wal_replaced_at=file.last_wal_replaced_at,
        )

    def prune(self) -> int:
        """Apply ``max_rows`` / ``max_age`` and the bound on warnings now, to the model versions this store
        writes (the writer also does it about every 10 s); return the requests deleted."""
        before = self._retention.pruned
        db = self.connections.connect()
        try:
            self._retention.prune(db.conn)
        finally:
            db.conn.close()
        return self._retention.pruned - before

    # -- synchronous writes: acknowledged only once they are on disk ----------------------------
    def write_feedback(self, model: str, items: Sequence[tuple[str, int, str]], *, version: str | None = None) -> tuple[int, int]:
        """Store labels (request_id, row, JSON label) in one transaction; return (new, replaced).

        The labels go in by statements of many rows each: SQLite keeps a statement journal of every page a
        statement changes (an upsert on a table with triggers may have to undo itself), so one statement per
        label copied each changed 64 KB page once per label, 9 ms of CPU for a request's 100 labels."""
        now = iso(time.time())
        key = (model, version_key(version))
        with self.connections.reading() as db, db.conn as conn:
            conn.execute("BEGIN IMMEDIATE")
            ids = dict.fromkeys(rid for rid, _, _ in items)
            stored = {rid: {row for (row,) in conn.execute(_LABELLED_ROWS, (*key, rid))} for rid in ids}
            replaced = 0
            seen: set[tuple[str, int]] = set()  # a row labelled twice in one call is replaced too
            for request_id, row, _ in items:
                replaced += (request_id, row) in seen or row in stored[request_id]
                seen.add((request_id, row))
            # this transaction's change number (see schema.py): the label join reads what changed since a number
            conn.execute("UPDATE changes SET value = value + 1 WHERE name = 'label'")
            (number,) = conn.execute("SELECT value FROM changes WHERE name = 'label'").fetchone()
            per_statement = max(1, min(_LABELS_PER_STATEMENT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8))
            for start in range(0, len(items), per_statement):
                part = items[start : start + per_statement]
                conn.execute(  # rows inserted in the order given: a row labelled twice keeps its last label
                    _PUT_LABELS.format(values=",".join(["(?, ?, ?, ?, ?, ?, 0, ?)"] * len(part))),
                    [value for rid, row, label in part for value in (*key, rid, row, label, now, number)],
                )
            conn.execute(
                "INSERT INTO totals (model, version, requests, rows, rejected, errors, labels, relabels)"
                " VALUES (?, ?, 0, 0, 0, 0, ?, ?) ON CONFLICT(model, version) DO UPDATE SET"
                " labels = labels + excluded.labels, relabels = relabels + excluded.relabels",
                (*key, len(items) - replaced, replaced),
            )
        return len(items) - replaced, replaced

    def save_baseline(self, model: str, version: str | None, reference: str, kind: str, rows: int, document: str) -> None:
        """Keep a baseline adopted from served traffic, unless another worker already kept one for this key."""
        with self.connections.reading() as db, db.conn as conn:
            conn.execute(
                "INSERT OR IGNORE INTO baselines (model, version, reference, kind, since, rows, document)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model, version_key(version), reference, kind, iso(time.time()), rows, document),
            )

    def write_snapshot(
        self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int, *, version: str | None = None
    ) -> bool:
        """Store a health snapshot unless the slot already has one (another worker's); True when stored.

        Keeps the newest ``keep`` snapshots of the model version, and none older than ``max_age``. Waits at
        most ``SNAPSHOT_WAIT`` seconds for a lock (a health request should not hang on a busy or locked file).
        """
        key = (model, version_key(version))
        with self.connections.reading() as db:
            conn = db.conn
            conn.execute(f"PRAGMA busy_timeout={int(SNAPSHOT_WAIT * 1000)}")
            try:
                with conn:
                    inserted = conn.execute(
                        "INSERT OR IGNORE INTO health_history (model, version, slot, ts, status, snapshot, worker)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*key, slot, iso(ts), status, snapshot, os.getpid()),
                    ).rowcount
                    if inserted:
                        self._retention.prune_history(conn, key, keep)
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(self.options.busy_timeout * 1000)}")
        return bool(inserted)
