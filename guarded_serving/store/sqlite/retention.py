"""Retention: what the SQLite backend deletes, and when.

Runs in the writer thread between writes (and on ``prune()``), in small transactions, so predictions
never wait and a write never waits long: requests keep being buffered meanwhile. Touches only the
model versions this store writes: a file may be shared by several services and versions.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from ..contract import WARNINGS_KEPT
from ..options import StoreOptions
from ..records import version_of
from .backlog import Key
from .batch import Written
from .codec import iso

__all__ = ["Retention"]

WINDOW_EVERY, RETENTION_EVERY = 25, 50  # writes between two prunes of the window, of the requests (~5 s, ~10 s)


class Retention:
    """Applies ``max_rows`` / ``max_age``, the bound on warnings and the window's length."""

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self.pruned = 0  # requests deleted so far
        self._keys: set[Key] = set()  # the model versions this store writes: the only ones it prunes
        self._lock = threading.Lock()
        self._writes = 0
        self._warned = False  # warnings written since the last prune

    def note(self, keys: frozenset[Key] | set[Key]) -> None:
        """Remember model versions this store writes."""
        with self._lock:
            self._keys.update(keys)

    def after_write(self, conn: sqlite3.Connection, written: Written) -> None:
        """What a write makes due: the window now and then, the requests and warnings less often."""
        self._warned = self._warned or written.warned
        self._writes += 1
        if written.window_keys and self._writes % WINDOW_EVERY == 0:
            self.prune_window(conn, written.window_keys)
        if self._writes % RETENTION_EVERY == 1 and (self.options.max_rows or self.options.max_age or self._warned):
            self.prune(conn)

    def prune(self, conn: sqlite3.Connection) -> None:
        """Delete this store's model versions' oldest requests beyond ``max_rows`` or older than ``max_age``
        seconds, the labels of the requests deleted, warnings beyond ``WARNINGS_KEPT`` or ``max_age``, health
        snapshots older than ``max_age``, and window chunks beyond the newest ``window`` rows."""
        self._warned = False
        max_rows, max_age = self.options.max_rows, self.options.max_age
        with self._lock:
            keys = sorted(self._keys)
        for key in keys:
            if max_age:
                self._delete_requests(conn, key, "ts < ?", iso(time.time() - max_age))
                with conn:
                    cutoff = iso(time.time() - max_age)
                    conn.execute("DELETE FROM feedback WHERE model = ? AND version = ? AND ts < ?", (*key, cutoff))
            if max_rows:
                last = self._oldest_kept(conn, key, max_rows)
                if last is not None:
                    self._delete_requests(conn, key, "id <= ?", last)
            with conn:
                conn.execute(
                    "DELETE FROM warnings WHERE model = ? AND version = ? AND rowid NOT IN (SELECT rowid FROM warnings"
                    " WHERE model = ? AND version = ? ORDER BY last_seen DESC, rowid DESC LIMIT ?)",
                    (*key, *key, WARNINGS_KEPT),
                )
                if max_age:
                    cutoff = iso(time.time() - max_age)
                    conn.execute("DELETE FROM warnings WHERE model = ? AND version = ? AND last_seen < ?", (*key, cutoff))
                    conn.execute("DELETE FROM health_history WHERE model = ? AND version = ? AND ts < ?", (*key, cutoff))
        self.prune_window(conn, tuple(keys))

    def prune_window(self, conn: sqlite3.Connection, keys: tuple[Key, ...]) -> None:
        """Delete window chunks older than the newest ``window`` rows of each model version."""
        for key in keys:
            total = 0
            cutoff = None
            newest_first = "SELECT id, rows FROM window WHERE model = ? AND version = ? ORDER BY id DESC"
            for chunk_id, rows in conn.execute(newest_first, key):
                total += rows
                if total >= self.options.window:
                    cutoff = chunk_id
                    break
            if cutoff is not None:
                with conn:
                    conn.execute("DELETE FROM window WHERE model = ? AND version = ? AND id < ?", (*key, cutoff))

    def prune_history(self, conn: sqlite3.Connection, key: Key, keep: int) -> None:
        """Keep a model version's newest ``keep`` health snapshots, and none older than ``max_age``
        (in the caller's transaction)."""
        conn.execute(
            "DELETE FROM health_history WHERE model = ? AND version = ? AND ts < (SELECT ts FROM"
            " health_history WHERE model = ? AND version = ? ORDER BY ts DESC LIMIT 1 OFFSET ?)",
            (*key, *key, keep - 1),
        )
        if self.options.max_age:
            cutoff = iso(time.time() - self.options.max_age)
            conn.execute("DELETE FROM health_history WHERE model = ? AND version = ? AND ts < ?", (*key, cutoff))

    def _oldest_kept(self, conn: sqlite3.Connection, key: Key, max_rows: int) -> int | None:
        """The id of the newest request beyond ``max_rows`` rows (a request without rows counts as one)."""
        kept = 0
        newest_first = "SELECT id, max(rows, 1) FROM requests WHERE model = ? AND version IS ? ORDER BY id DESC"
        for request_id, rows in conn.execute(newest_first, (key[0], version_of(key[1]))):
            kept += rows
            if kept > max_rows:
                return int(request_id)
        return None

    def _delete_requests(self, conn: sqlite3.Connection, key: Key, where: str, bound: Any, batch: int = 5000) -> None:
        """Delete a model version's requests matching ``where``, oldest first, a batch per transaction, with the
        labels that joined them (unless another request of the version has the same id)."""
        model, version = key[0], version_of(key[1])
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
                self.pruned += len(found)
