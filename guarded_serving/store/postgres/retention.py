"""Retention on a store the whole fleet writes: one replica at a time prunes, for every replica.

Each replica's writer comes here as often as a SQLite writer would (see the SQLite backend's
``retention``), but a prune only runs while its connection holds the advisory lock
:data:`RETENTION_LOCK`, taken without waiting: a replica that finds it held skips this turn, as another
replica is pruning the same rows right now. Requests are deleted in batches, a transaction each, so
that the other replicas' writes never wait long. The rules are the contract's ("Retention").
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from ..contract import STALE_AFTER, WARNINGS_KEPT
from ..options import StoreOptions
from ..sqlite.backlog import Key
from ..sqlite.batch import Written
from ..sqlite.codec import iso

__all__ = ["RETENTION_LOCK", "Retention"]

RETENTION_LOCK = 0x6775_6172_6472  # held by the one replica pruning right now
WINDOW_EVERY, RETENTION_EVERY = 25, 50  # writes between two prunes of the window, of the requests (~5 s, ~10 s)
REPLICAS_KEPT = 86400.0  # seconds a replica that stopped without saying so stays listed (as stale)
Connection = psycopg.Connection[tuple[Any, ...]]


class Retention:
    """Applies ``max_rows`` / ``max_age``, the bound on warnings and the window's length, fleet-wide."""

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self.pruned = 0  # requests deleted so far by this replica
        self.skipped = 0  # turns skipped because another replica was pruning
        self._keys: set[Key] = set()
        self._lock = threading.Lock()
        self._running = threading.Lock()  # held while this replica prunes
        self._writes = 0
        self._warned = False

    def note(self, keys: frozenset[Key] | set[Key]) -> None:
        with self._lock:
            self._keys.update(keys)

    def after_write(self, conn: Connection, written: Written) -> None:
        self._warned = self._warned or written.warned
        self._writes += 1
        if written.window_keys and self._writes % WINDOW_EVERY == 0:
            self._exclusively(conn, lambda: self.prune_window(conn, written.window_keys))
        if self._writes % RETENTION_EVERY == 1:
            self.prune(conn)

    def prune(self, conn: Connection) -> bool:
        """Prune every model version this replica writes, unless another replica is pruning; True when it ran."""
        return self._exclusively(conn, lambda: self._prune(conn))

    def _exclusively(self, conn: Connection, prune: Any) -> bool:
        # This replica's own prunes (its writer's, and Store.prune()'s on its own connection) take turns here:
        # the advisory lock cannot tell them apart, so a prune() called while the writer was pruning used to
        # be skipped as if another replica were doing it, and returned before the writer's prune had deleted
        # anything (the contract test on max_age caught it under load).
        with self._running:
            (locked,) = conn.execute("SELECT pg_try_advisory_lock(%s)", (RETENTION_LOCK,)).fetchone() or (False,)
            if not locked:
                self.skipped += 1
                return False
            try:
                prune()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (RETENTION_LOCK,))
            return True

    def _prune(self, conn: Connection) -> None:
        self._warned = False
        max_rows, max_age = self.options.max_rows, self.options.max_age
        with self._lock:
            keys = sorted(self._keys)
        for key in keys:
            if max_age:
                cutoff = iso(time.time() - max_age)
                self._delete_requests(conn, key, "ts < %s", cutoff)
                with conn.transaction():
                    conn.execute("DELETE FROM feedback WHERE model = %s AND version = %s AND ts < %s", (*key, cutoff))
                    conn.execute("DELETE FROM warnings WHERE model = %s AND version = %s AND last_seen < %s", (*key, cutoff))
                    conn.execute("DELETE FROM health_history WHERE model = %s AND version = %s AND ts < %s", (*key, cutoff))
            self.prune_window(conn, (key,))
            if max_rows:
                last = self._oldest_kept(conn, key, max_rows)
                if last is not None:
                    self._delete_requests(conn, key, "id <= %s", last)
            with conn.transaction():
                conn.execute(
                    "DELETE FROM warnings w WHERE model = %s AND version = %s AND (category, message, location) NOT IN"
                    " (SELECT category, message, location FROM warnings WHERE model = %s AND version = %s"
                    " ORDER BY last_seen DESC LIMIT %s)",
                    (*key, *key, WARNINGS_KEPT),
                )
                conn.execute(
                    "DELETE FROM replicas WHERE model = %s AND version = %s AND last_seen < now() - make_interval(secs => %s)",
                    (*key, max(REPLICAS_KEPT, STALE_AFTER)),
                )
                # marks of writers that died without closing (a live writer sets its own at every write)
                conn.execute("DELETE FROM writer_marks WHERE at < now() - make_interval(secs => %s)", (REPLICAS_KEPT,))

    def prune_window(self, conn: Connection, keys: tuple[Key, ...]) -> None:
        """Delete window chunks older than the newest ``window`` rows of each model version."""
        for key in keys:
            conn.execute(
                'DELETE FROM "window" WHERE model = %s AND version = %s AND id < (SELECT min(id) FROM'
                ' (SELECT id, sum(rows) OVER (ORDER BY id DESC) - rows AS newer FROM "window"'
                " WHERE model = %s AND version = %s) t WHERE newer < %s)",
                (*key, *key, self.options.window),
            )

    def prune_history(self, conn: Connection, key: Key, keep: int) -> None:
        """Keep a model version's newest ``keep`` health snapshots, and none older than ``max_age``."""
        conn.execute(
            "DELETE FROM health_history WHERE model = %s AND version = %s AND ts < (SELECT ts FROM health_history"
            " WHERE model = %s AND version = %s ORDER BY ts DESC LIMIT 1 OFFSET %s)",
            (*key, *key, keep - 1),
        )
        if self.options.max_age:
            cutoff = iso(time.time() - self.options.max_age)
            conn.execute("DELETE FROM health_history WHERE model = %s AND version = %s AND ts < %s", (*key, cutoff))

    def _oldest_kept(self, conn: Connection, key: Key, max_rows: int) -> int | None:
        """The id of the newest request beyond ``max_rows`` rows (a request without rows counts as one)."""
        found = conn.execute(
            "SELECT max(id) FROM (SELECT id, sum(greatest(rows, 1)) OVER (ORDER BY id DESC) AS kept FROM requests"
            " WHERE model = %s AND version = %s) t WHERE kept > %s",
            (*key, max_rows),
        ).fetchone()
        return int(found[0]) if found is not None and found[0] is not None else None

    def _delete_requests(self, conn: Connection, key: Key, where: str, bound: Any, batch: int = 5000) -> None:
        """Delete a model version's requests matching ``where``, oldest first, a batch per transaction, with the
        labels that joined them (unless another request of the version has the same id)."""
        while True:
            with conn.transaction():
                deleted, request_ids = conn.execute(
                    "WITH gone AS (DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE model = %s AND version = %s"
                    f" AND {where} ORDER BY id LIMIT %s) RETURNING request_id)"
                    " SELECT count(*), coalesce(array_agg(DISTINCT request_id), '{}') FROM gone",
                    (*key, bound, batch),
                ).fetchone() or (0, [])
                if not deleted:
                    return
                conn.execute(
                    "DELETE FROM feedback f WHERE model = %s AND version = %s AND request_id = ANY(%s) AND NOT EXISTS"
                    " (SELECT 1 FROM requests q WHERE q.request_id = f.request_id AND q.model = f.model"
                    " AND q.version = f.version)",
                    (*key, request_ids),
                )
                self.pruned += deleted
