"""The PostgreSQL log store: a reader of the database that also writes it, through a background batched writer.

The request path only appends a record to the backlog (the SQLite backend's, bounded in rows and bytes);
the writer thread (:mod:`.writer`) sends it within about ``flush_interval`` seconds. Labels and health
snapshots are written synchronously, on a pooled connection, and are visible to every replica when the
call returns.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any, Self

import psycopg

from ..contract import Store
from ..options import StoreOptions
from ..records import RequestRecord, StoreStats, version_key
from ..sqlite.backlog import Backlog
from ..sqlite.codec import iso
from .connection import Server
from .reader import PostgresReader
from .retention import Retention
from .writer import Writer

__all__ = ["PostgresStore"]

# One label per (model, version, request id, row), replaced when it comes again; says whether it was new.
# A call's labels by one statement per round (a row given again in the same call goes in the next round: an upsert
# cannot change a row twice), in the order given; each row says whether it was inserted. One statement per label
# cost a round trip and a trigger call each: 18 ms for a request's 100 labels on a local server.
_UPSERT_LABELS = (
    "INSERT INTO feedback AS f (model, version, request_id, row, label, ts, updates)"
    " SELECT %s, %s, u.request_id, u.row, u.label, %s, 0"
    " FROM unnest(%s::text[], %s::integer[], %s::text[]) WITH ORDINALITY AS u(request_id, row, label, k) ORDER BY u.k"
    " ON CONFLICT (model, version, request_id, row) DO UPDATE SET label = excluded.label, ts = excluded.ts,"
    " updates = f.updates + 1 RETURNING f.updates = 0"
)


def _rounds(items: Sequence[tuple[str, int, str]]) -> list[list[tuple[str, int, str]]]:
    """The labels in rounds where each (request id, row) comes once, each in the order given: a row's first label
    in the first round, its second in the second..."""
    seen: dict[tuple[str, int], int] = {}
    rounds: list[list[tuple[str, int, str]]] = []
    for item in items:
        k = seen[item[:2]] = seen.get(item[:2], -1) + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(item)
    return rounds


class PostgresStore(PostgresReader, Store):
    """A PostgreSQL log store with a background batched writer, shared by every replica. Thread-safe."""

    def __init__(self, url: str, options: StoreOptions | None = None) -> None:
        self.options = options if options is not None else StoreOptions()
        super().__init__(Server(url))
        self._backlog = Backlog(self.options)
        self._retention = Retention(self.options)
        self._writer = Writer(self.server, self.options, self._backlog, self._retention)
        self.replica = self._writer.heartbeat.name

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> Self:
        """Start the writer thread, which creates the tables when missing. Never raises: a server that cannot
        be reached is reported by :meth:`stats` and retried while records wait in memory."""
        self._writer.start()
        return self

    def close(self, timeout: float = 10.0) -> bool:
        finished = self._writer.stop(timeout)
        self.server.close()
        return finished

    # -- the request path --------------------------------------------------------------------
    def put(self, record: RequestRecord) -> bool:
        return self._backlog.put_record(record)

    def save_model(self, name: str, version: str | None, reference: str, settings: dict[str, Any]) -> None:
        """Record a model version's reference and settings with the next write, and post this replica's
        heartbeat for it from then on."""
        key = (name, version_key(version))
        self._retention.note({key})
        self._writer.heartbeat.serve(key)
        self._backlog.save_model(key, reference, json.dumps(settings, sort_keys=True))

    def flush(self, timeout: float = 5.0) -> bool:
        return self._backlog.drained(timeout)

    def stats(self) -> StoreStats:
        return self._backlog.stats(self.path)

    def prune(self) -> int:
        """Apply retention now to the model versions this replica writes, unless another replica is pruning
        them right now (then that one does it); return the requests deleted."""
        before = self._retention.pruned
        try:
            with self.server.connect() as conn:
                self._retention.prune(conn)
        except psycopg.Error as exc:
            raise self.server.error(exc, "prune") from exc
        return self._retention.pruned - before

    # -- synchronous writes: acknowledged only once they are committed ---------------------------
    def write_feedback(self, model: str, items: Sequence[tuple[str, int, str]], *, version: str | None = None) -> tuple[int, int]:
        """Store labels (request_id, row, JSON label) in one transaction; return (new, replaced)."""
        now = iso(time.time())
        key = (model, version_key(version))
        new = 0
        with self.server.reading("write labels to") as conn, conn.transaction(), conn.cursor() as cur:
            for part in _rounds(items):
                ids, rows, labels = (list(column) for column in zip(*part, strict=True))
                new += sum(bool(inserted) for (inserted,) in cur.execute(_UPSERT_LABELS, (*key, now, ids, rows, labels)))
            cur.execute(
                "INSERT INTO totals AS t (model, version, labels, relabels) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (model, version) DO UPDATE SET labels = t.labels + excluded.labels,"
                " relabels = t.relabels + excluded.relabels",
                (*key, new, len(items) - new),
            )
        return new, len(items) - new

    def save_baseline(self, model: str, version: str | None, reference: str, kind: str, rows: int, document: str) -> None:
        """Keep a baseline adopted from served traffic, unless a replica already kept one for this key."""
        with self.server.reading("keep a baseline in") as conn:
            conn.execute(
                "INSERT INTO baselines (model, version, reference, kind, since, rows, document)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (model, version_key(version), reference, kind, iso(time.time()), rows, document),
            )

    def write_snapshot(
        self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int, *, version: str | None = None
    ) -> bool:
        """Store a health snapshot unless the slot has one already (another replica's); True when stored."""
        key = (model, version_key(version))
        with self.server.reading("write a health snapshot to") as conn, conn.transaction():
            inserted = conn.execute(
                "INSERT INTO health_history (model, version, slot, ts, status, snapshot, worker, replica)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (*key, slot, iso(ts), status, snapshot, os.getpid(), self._writer.heartbeat.name),
            ).rowcount
            if inserted:
                self._retention.prune_history(conn, key, keep)
        return bool(inserted)
