"""Retention on a store the whole fleet writes: one replica at a time prunes, for every replica.

Each replica's writer comes here as often as a SQLite writer would (see the SQLite backend's
``retention``), but a prune only runs while its connection holds the advisory lock
:data:`RETENTION_LOCK`, taken without waiting: a replica that finds it held skips this turn, as another
replica is pruning the same rows right now. Requests are deleted in batches, a transaction each, so
that the other replicas' writes never wait long. The rules are the contract's ("Retention").

``max_rows`` is kept by counting, as the SQLite backend does, but with what the last prune kept stored in the
database (``retention_kept``), since the next prune may be another replica's: the rows of the requests up to an
id, and the value of the deletion counter then (see schema.py). A prune adds what was logged since and walks
only the requests it deletes: counting every request kept took ~1.1 s of the server's CPU per prune at a million
requests, every ~10 s. The count is trusted only while the deletion counter moved by this store's own deletions
alone (anything else that deleted or edited a request makes the next prune count them all), and every
:data:`COUNT_EVERY` prunes it is made again anyway. The newest :data:`LATE_IDS` ids are counted again at each
prune: ids are taken when a request is inserted, not when its transaction commits, so a request may become
visible after newer ones were counted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
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
LATE_IDS = 5_000  # ids below the newest whose requests each prune counts again (see the module's doc)
COUNT_EVERY = 100  # prunes of a model version between two counts of every request kept
Connection = psycopg.Connection[tuple[Any, ...]]

_DELETIONS = "SELECT value FROM changes WHERE name = 'deletion'"
_KEPT = "SELECT deletion, cutoff, counted, rows, prunes FROM retention_kept WHERE model = %s AND version = %s"
_SAVE = (
    "INSERT INTO retention_kept (model, version, deletion, cutoff, counted, rows, prunes) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (model, version) DO UPDATE SET deletion = excluded.deletion, cutoff = excluded.cutoff,"
    " counted = excluded.counted, rows = excluded.rows, prunes = excluded.prunes"
)
_NEWEST = "SELECT coalesce(max(id), 0) FROM requests WHERE model = %s AND version = %s"
_ALL = (
    "SELECT coalesce(min(id), 1) - 1, coalesce(sum(greatest(rows, 1)) FILTER (WHERE id <= %s), 0) FROM requests"
    " WHERE model = %s AND version = %s"
)
_SINCE = (
    "SELECT coalesce(sum(greatest(rows, 1)), 0), coalesce(sum(greatest(rows, 1)) FILTER (WHERE id <= %s), 0)"
    " FROM requests WHERE model = %s AND version = %s AND id > %s"
)
_OLDEST_FIRST = "SELECT id, greatest(rows, 1) FROM requests WHERE model = %s AND version = %s AND id > %s ORDER BY id LIMIT %s"


@dataclass
class _Kept:
    """A model version's requests with ids up to ``counted`` hold ``rows`` rows (one at least each), none is left
    with an id up to ``cutoff``, and the deletion counter was ``deletion`` then (-1: not known)."""

    deletion: int
    cutoff: int
    counted: int
    rows: int
    prunes: int


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
            kept = self._last_kept(conn, key) if max_rows else None
            moved = 0  # how far this prune's own deletions moved the deletion counter
            if max_age:
                cutoff = iso(time.time() - max_age)
                moved += self._delete_requests(conn, key, "ts < %s", (cutoff,), kept)
                with conn.transaction():
                    gone = conn.execute("DELETE FROM feedback WHERE model = %s AND version = %s AND ts < %s", (*key, cutoff))
                    moved += gone.rowcount > 0
                    conn.execute("DELETE FROM warnings WHERE model = %s AND version = %s AND last_seen < %s", (*key, cutoff))
                    conn.execute("DELETE FROM health_history WHERE model = %s AND version = %s AND ts < %s", (*key, cutoff))
            self.prune_window(conn, (key,))
            if max_rows:
                self._keep_rows(conn, key, max_rows, kept, moved)
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

    def _last_kept(self, conn: Connection, key: Key) -> _Kept | None:
        """What the last prune of ``key`` kept, as it stored it (None: never pruned, or not known)."""
        found = conn.execute(_KEPT, key).fetchone()
        return _Kept(*(int(v) for v in found)) if found is not None else None

    def _keep_rows(self, conn: Connection, key: Key, max_rows: int, kept: _Kept | None, moved: int) -> None:
        """Delete a model version's oldest requests beyond its newest ``max_rows`` rows (a request without rows
        counting one), from what the last prune kept and what was logged since (``moved``: how far this prune's
        deletions so far moved the deletion counter), then store what this one keeps."""
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for the counts and the walk
            (deletion,) = conn.execute(_DELETIONS).fetchone() or (-1,)
            newest = int(conn.execute(_NEWEST, key).fetchone()[0])  # type: ignore[index]
            if kept is None or kept.deletion < 0 or kept.deletion + moved != deletion or kept.prunes % COUNT_EVERY == 0:
                kept = self._count_all(conn, key, newest, kept.prunes if kept is not None else 0)
            kept.deletion = int(deletion)  # what its deletions so far left the counter at (checked when it is stored)
            counted = max(kept.counted, newest - LATE_IDS)
            since, advanced = (int(v) for v in conn.execute(_SINCE, (counted, *key, kept.counted)).fetchone())  # type: ignore[union-attr]
            kept.rows += advanced
            kept.counted = counted
            excess = kept.rows + since - advanced - max_rows
            last = self._oldest_beyond(conn, key, kept.cutoff, excess) if excess > 0 else None
        own = 0
        if last is not None:
            # from the last cutoff on: the index entries of the requests deleted before stay until a vacuum, and an
            # index scan from the first id walked them all (~140 ms for 500 requests after a prune of 100,000)
            own = self._delete_requests(conn, key, "id > %s AND id <= %s", (kept.cutoff, last), kept)
            kept.cutoff = last
        with conn.transaction():  # stored as true only when nothing but this prune's deletions moved the counter
            (now,) = conn.execute(_DELETIONS + " FOR UPDATE").fetchone() or (-1,)
            kept.deletion = int(now) if now == kept.deletion + own else -1
            kept.prunes += 1
            conn.execute(_SAVE, (*key, kept.deletion, kept.cutoff, kept.counted, kept.rows, kept.prunes))

    def _count_all(self, conn: Connection, key: Key, newest: int, prunes: int) -> _Kept:
        """What is kept of ``key``, counted request by request (up to ``LATE_IDS`` below the ``newest`` id); its
        deletion counter is the caller's to set."""
        counted = max(newest - LATE_IDS, 0)
        cutoff, rows = (int(v) for v in conn.execute(_ALL, (counted, *key)).fetchone())  # type: ignore[union-attr]
        return _Kept(-1, cutoff, max(counted, cutoff), rows, prunes)

    def _oldest_beyond(self, conn: Connection, key: Key, after: int, excess: int) -> int | None:
        """The id of the oldest request after ``after`` whose deletion, with those before it, takes ``excess`` rows
        out (None: there are not that many)."""
        walked, page = 0, 256  # requests read at once, doubled as the walk goes on (each holds one row or more)
        while True:
            found = conn.execute(_OLDEST_FIRST, (*key, after, min(excess - walked, page))).fetchall()
            page *= 2
            for request_id, rows in found:
                walked += rows
                if walked >= excess:
                    return int(request_id)
            if not found:
                return None
            after = int(found[-1][0])

    def _delete_requests(
        self, conn: Connection, key: Key, where: str, bounds: tuple[Any, ...], kept: _Kept | None, batch: int = 5000
    ) -> int:
        """Delete a model version's requests matching ``where``, oldest first, a batch per transaction, with the
        labels that joined them (unless another request of the version has the same id); their rows are counted
        out of ``kept``. Returns how far the deletions moved the deletion counter (a statement that deleted)."""
        moved = 0
        counted = kept.counted if kept is not None else 0
        while True:
            with conn.transaction():
                deleted, rows, request_ids = conn.execute(
                    "WITH gone AS (DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE model = %s AND version = %s"
                    f" AND {where} ORDER BY id LIMIT %s) RETURNING id, rows, request_id)"
                    " SELECT count(*), coalesce(sum(greatest(rows, 1)) FILTER (WHERE id <= %s), 0),"
                    " coalesce(array_agg(DISTINCT request_id), '{}') FROM gone",
                    (*key, *bounds, batch, counted),
                ).fetchone() or (0, 0, [])
                if not deleted:
                    return moved
                labels = conn.execute(
                    "DELETE FROM feedback f WHERE model = %s AND version = %s AND request_id = ANY(%s) AND NOT EXISTS"
                    " (SELECT 1 FROM requests q WHERE q.request_id = f.request_id AND q.model = f.model"
                    " AND q.version = f.version)",
                    (*key, request_ids),
                )
                moved += 1 + (labels.rowcount > 0)
                if kept is not None:
                    kept.rows -= int(rows)
                self.pruned += deleted
