"""Retention: what the SQLite backend deletes, and when.

Runs in the writer thread between writes (and on ``prune()``), in small transactions, so predictions
never wait and a write never waits long: requests keep being buffered meanwhile. Touches only the
model versions this store writes: a file may be shared by several services and versions.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any, NamedTuple

from ..contract import WARNINGS_KEPT
from ..options import StoreOptions
from ..records import version_of
from .backlog import Key
from .batch import Written
from .codec import iso

__all__ = ["Retention"]

WINDOW_EVERY, RETENTION_EVERY = 25, 50  # writes between two prunes of the window, of the requests (~5 s, ~10 s)


class _Kept(NamedTuple):
    """What the last prune of a model version left: its requests after ``cutoff`` up to ``newest`` hold ``rows`` rows
    (a request without rows counting one), and the file's count of request edits was then ``edits``."""

    edits: int
    cutoff: int
    newest: int
    rows: int


_EDITS = "SELECT value FROM changes WHERE name = 'request'"  # moved by every update or deletion of a request
_NEWER = "SELECT coalesce(sum(max(rows, 1)), 0), max(id) FROM requests WHERE model = ? AND version IS ? AND id > ?"
_OLDEST_FIRST = "SELECT id, max(rows, 1) FROM requests WHERE model = ? AND version IS ? AND id > ? ORDER BY id"
_NEWEST_FIRST = "SELECT id, max(rows, 1) FROM requests WHERE model = ? AND version IS ? ORDER BY id DESC"


class Retention:
    """Applies ``max_rows`` / ``max_age``, the bound on warnings and the window's length.

    ``max_rows`` is kept by counting: what the last prune left and what was logged since, so a prune walks the
    requests it deletes and those logged since, not every request kept (walking them cost ~1.5 µs each: with
    ``max_rows=1_000_000`` and one-row requests, 1.5 s of the writer thread every 50 writes). Only while nothing
    but this store's own prunes changed or deleted a request since (the file's count of request edits says so):
    otherwise, and on a file without the count, it walks every request kept, as before."""

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self.pruned = 0  # requests deleted so far
        self._keys: set[Key] = set()  # the model versions this store writes: the only ones it prunes
        self._lock = threading.Lock()
        self._writes = 0
        self._warned = False  # warnings written since the last prune
        self._kept: dict[Key, _Kept] = {}  # per model version, what the last prune left
        # One prune at a time: the writer's own (after a write) and Store.prune() from another thread would each take
        # what the last prune left, and the second one found nothing and walked every request again.
        self._pruning = threading.Lock()

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
        with self._pruning:
            self._prune(conn)

    def _prune(self, conn: sqlite3.Connection) -> None:
        self._warned = False
        max_rows, max_age = self.options.max_rows, self.options.max_age
        with self._lock:
            keys = sorted(self._keys)
        for key in keys:
            if max_age:
                self._forget_deleted(key, self._delete_requests(conn, key, "ts < ?", iso(time.time() - max_age)))
                with conn:
                    cutoff = iso(time.time() - max_age)
                    conn.execute("DELETE FROM feedback WHERE model = ? AND version = ? AND ts < ?", (*key, cutoff))
            if max_rows:
                self._keep_rows(conn, key, max_rows)
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

    def _keep_rows(self, conn: sqlite3.Connection, key: Key, max_rows: int) -> None:
        """Delete a model version's oldest requests beyond its newest ``max_rows`` rows."""
        model, version = key[0], version_of(key[1])
        known = self._kept.pop(key, None)
        own = not conn.in_transaction  # one snapshot: the count of edits, and the rows it vouches for
        if own:
            conn.execute("BEGIN")
        try:
            edits = self._edits(conn)
            if edits is not None and known is not None and known.edits == edits:
                more, newest = conn.execute(_NEWER, (model, version, known.newest)).fetchone()
                cutoff, newest, rows = known.cutoff, max(newest or 0, known.newest), known.rows + more
                last = None
                if rows > max_rows:
                    for request_id, n in conn.execute(_OLDEST_FIRST, (model, version, cutoff)):
                        rows -= n
                        last = int(request_id)
                        if rows <= max_rows:
                            break
                    else:  # fewer rows than counted: not what the count vouched for, so walk them all
                        known = None
            if known is None or edits is None or known.edits != edits:
                last, newest, rows = self._oldest_kept(conn, key, max_rows)
                cutoff = 0
        finally:
            if own:
                conn.commit()
        deleted: list[tuple[int, int]] = []
        if last is not None:
            deleted = self._delete_requests(conn, key, "id <= ?", last)
            cutoff = last
        if edits is not None:
            self._kept[key] = _Kept(edits + len(deleted), cutoff, newest, rows)

    def _forget_deleted(self, key: Key, deleted: list[tuple[int, int]]) -> None:
        """Count this prune's own deletions out of what the last one left (the edits they made, the rows kept)."""
        known = self._kept.get(key)
        if known is not None and deleted:
            rows = sum(n for request_id, n in deleted if known.cutoff < request_id <= known.newest)
            self._kept[key] = known._replace(edits=known.edits + len(deleted), rows=known.rows - rows)

    def _edits(self, conn: sqlite3.Connection) -> int | None:
        """The file's count of request edits and deletions (None: a file without the counters)."""
        try:
            found = conn.execute(_EDITS).fetchone()
        except sqlite3.OperationalError:  # no `changes` table: an older file read as it is
            return None
        return int(found[0]) if found is not None else None

    def _oldest_kept(self, conn: sqlite3.Connection, key: Key, max_rows: int) -> tuple[int | None, int, int]:
        """The id of the newest request beyond ``max_rows`` rows (a request without rows counts as one), the newest
        id, and the rows of the requests after the first."""
        kept = newest = 0
        for request_id, rows in conn.execute(_NEWEST_FIRST, (key[0], version_of(key[1]))):
            newest = newest or int(request_id)
            if kept + rows > max_rows:
                return int(request_id), newest, kept
            kept += rows
        return None, newest, kept

    def _delete_requests(
        self, conn: sqlite3.Connection, key: Key, where: str, bound: Any, batch: int = 5000
    ) -> list[tuple[int, int]]:
        """Delete a model version's requests matching ``where``, oldest first, a batch per transaction, with the
        labels that joined them (unless another request of the version has the same id); return the ids deleted
        and their rows (a request without rows counting one)."""
        model, version = key[0], version_of(key[1])
        deleted: list[tuple[int, int]] = []
        while True:
            with conn:
                found = conn.execute(
                    f"SELECT id, request_id, max(rows, 1) FROM requests WHERE model = ? AND version IS ? AND {where}"
                    " ORDER BY id LIMIT ?",
                    (model, version, bound, batch),
                ).fetchall()
                if not found:
                    return deleted
                conn.execute(f"DELETE FROM requests WHERE id IN ({','.join('?' * len(found))})", [i for i, _, _ in found])
                request_ids = list({rid for _, rid, _ in found})
                conn.execute(
                    f"DELETE FROM feedback WHERE model = ? AND version = ? AND request_id IN ({','.join('?' * len(request_ids))})"
                    " AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.request_id = feedback.request_id AND q.model = ?"
                    " AND q.version IS ?)",
                    (*key, *request_ids, model, version),
                )
                self.pruned += len(found)
                deleted.extend((int(i), int(n)) for i, _, n in found)
