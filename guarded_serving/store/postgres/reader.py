"""Every read of the PostgreSQL backend: one query per question, on a pooled connection, limited to ``since``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from psycopg.rows import dict_row

from ...drift.window import Chunk
from ...environment import WarningRecord
from ...errors import StoreError
from ...performance import plain_matrix
from ..contract import StoreReader
from ..records import LabelledRows, Replica, SavedBaseline, SavedModel, Totals, version_key, version_of
from ..sqlite.codec import count, decode_chunk, iso, settings, text
from .connection import Server

__all__ = ["PostgresReader"]

# The labels of a model version's answered requests, newest request first and, in one, its last row first: walked
# from the newest request back (the (model, version, id) index, one feedback lookup each), so that it costs what
# the window holds, not every label ever stored. A request counts only when no newer answered one has its id.
_LABELLED = (
    "SELECT q.id, f.row, f.label, q.ts, f.ts FROM requests q JOIN feedback f ON f.model = q.model"
    " AND f.version = q.version AND f.request_id = q.request_id WHERE q.model = %s AND q.version = %s"
    " AND q.status = 'ok' AND q.outputs IS NOT NULL{since} AND f.row >= 0 AND NOT EXISTS (SELECT 1 FROM requests r"
    " WHERE r.request_id = q.request_id AND r.id > q.id AND r.model = q.model AND r.version = q.version"
    " AND r.status = 'ok') ORDER BY q.id DESC, f.row DESC LIMIT %s"
)
_RECENT = "request_id, status, rows, latency_ms, stages, failed_stage, problem_features"  # a request as recent_requests gives it
_ANSWERED = "FROM requests WHERE model = %s AND version = %s AND status = 'ok'{since}"
# What a label join depends on (schema 3): labels' change numbers, deletions, the newest answered request; read
# before the join, so that whatever commits meanwhile moves them for the next read.
_COUNTERS = (
    "SELECT (SELECT value FROM changes WHERE name = 'label'), (SELECT value FROM changes WHERE name = 'deletion'),"
    " (SELECT max(id) FROM requests WHERE model = %s AND version = %s AND status = 'ok')"
)
_LATEST = 253402300799.0  # the last second of year 9999: a later `since` compares as this
_REPLICAS = (
    "SELECT replica, host, pid, library, fingerprint, started_at, last_seen, pending, written, dropped, capacity,"
    " last_error, last_error_at, warnings, extract(epoch FROM now() - last_seen)::float8 AS age"
    " FROM replicas WHERE model = %s AND version = %s ORDER BY started_at, replica"
)


class PostgresReader(StoreReader):
    """Reads a PostgreSQL log store through a small connection pool (see :class:`Server`)."""

    def __init__(self, server: Server, since: float | None = None) -> None:
        self.server = server
        self.path = server.path
        self.since = since
        self._decoded: dict[int, list[Any] | None] = {}  # request id -> its outputs, decoded (see labelled)
        self._joined: tuple[tuple[Any, ...], LabelledRows] | None = None  # what the last join read, and its answer

    def _since(self, column: str) -> tuple[str, list[Any]]:
        if self.since is None:
            return "", []
        return f" AND {column} >= %s", [iso(min(max(self.since, 0.0), _LATEST))]

    def _all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.server.reading() as conn:
            return conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        with self.server.reading() as conn:
            return conn.execute(sql, params).fetchone()

    # -- per model version ---------------------------------------------------------------------
    def totals(self, model: str, *, version: str | None = None) -> Totals:
        key = [model, version_key(version)]
        if self.since is not None:
            since, bound = self._since("ts")
            found = self._one(
                "SELECT count(*), coalesce(sum(CASE WHEN status = 'ok' THEN rows END), 0),"
                " count(*) FILTER (WHERE status = 'rejected'), count(*) FILTER (WHERE status = 'error')"
                f" FROM requests WHERE model = %s AND version = %s{since}",
                [*key, *bound],
            )
            return Totals(*(count(int(n)) for n in found or (0, 0, 0, 0)))
        found = self._one(
            "SELECT requests, rows, rejected, errors, dropped_requests, dropped_rows FROM totals"
            " WHERE model = %s AND version = %s",
            key,
        )
        return Totals(*(count(n) for n in found)) if found is not None else Totals()

    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        key = [model, version_key(version)]
        if self.since is not None:
            since, bound = self._since("ts")
            found = self._one(
                f"SELECT count(*), coalesce(sum(updates), 0) FROM feedback WHERE model = %s AND version = %s{since}",
                [*key, *bound],
            )
        else:
            found = self._one("SELECT labels, relabels FROM totals WHERE model = %s AND version = %s", key)
        return (count(int(found[0])), count(int(found[1]))) if found else (0, 0)

    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        since, bound = self._since("ts")
        with self.server.reading() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                f"SELECT {_RECENT} FROM requests WHERE model = %s AND version = %s{since} ORDER BY id DESC LIMIT %s",
                [model, version_key(version), *bound, limit],
            ).fetchall()

    def recent_request_marks(self, model: str, limit: int, *, version: str | None = None) -> list[tuple[Any, ...]]:
        since, bound = self._since("ts")
        return self._all(
            "SELECT id, status, latency_ms, failed_stage FROM requests"
            f" WHERE model = %s AND version = %s{since} ORDER BY id DESC LIMIT %s",
            [model, version_key(version), *bound, limit],
        )

    def requests_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self.server.reading() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(f"SELECT id, {_RECENT} FROM requests WHERE id = ANY(%s)", [wanted]).fetchall()
        return {row.pop("id"): row for row in rows}

    def request_rows(self, model: str, request_ids: Sequence[str], *, version: str | None = None) -> dict[str, int]:
        ids = list(dict.fromkeys(request_ids))
        if not ids:
            return {}
        rows = self._all(
            f"SELECT DISTINCT ON (request_id) request_id, rows {_ANSWERED.format(since='')}"
            " AND request_id = ANY(%s) AND rows > 0 ORDER BY request_id, id DESC",
            [model, version_key(version), ids],
        )
        return {str(request_id): int(n) for request_id, n in rows}

    def labelled(self, model: str, limit: int, *, version: str | None = None) -> LabelledRows:
        # Joined again only when what the join depends on (_COUNTERS, read first) moved since the last read.
        try:
            counters = self._one(_COUNTERS, [model, version_key(version)])
        except StoreError:
            counters = None  # no `changes` table (schema 2, read as it is): joined on every read
        read = (model, version, limit, self.since, counters)
        if counters is not None and self._joined is not None and self._joined[0] == read:
            return self._joined[1]
        answer = self._join(model, limit, version)
        self._joined = (read, answer) if counters is not None else None
        return answer

    def _join(self, model: str, limit: int, version: str | None) -> LabelledRows:
        since, bound = self._since("q.ts")
        want = limit
        while True:
            found = self._all(_LABELLED.format(since=since), [model, version_key(version), *bound, want])
            outputs = self._outputs({request for request, *_ in found})
            joined = [
                (kept[row], label, request_ts, label_ts)
                for request, row, label, request_ts, label_ts in found
                if (kept := outputs.get(request)) is not None and row < len(kept)
            ]
            if len(joined) >= limit or len(found) < want:
                break
            want *= 2  # some rows had no output (a request sampled out): read further back
        rows = []
        for output, label, request_ts, label_ts in joined[:limit]:
            try:
                rows.append((output, json.loads(label), _seconds(label_ts) - _seconds(request_ts)))
            except (TypeError, ValueError):  # a label that does not decode is left out
                continue
        rows.reverse()  # oldest first
        answered = [r[0] for r in rows]
        return LabelledRows(answered, [r[1] for r in rows], np.array([r[2] for r in rows], dtype=float), plain_matrix(answered))

    def _outputs(self, requests: set[int]) -> dict[int, list[Any]]:
        """The decoded outputs of these requests (a stored request never changes: read once, and kept while
        the labelled rows need them, at most a window's requests); a request whose outputs are not a JSON
        array is absent."""
        cache = dict(self._decoded)  # this read's own copy: several threads may read at once
        missing = [request for request in requests if request not in cache]
        if missing:
            for request, text in self._all("SELECT id, outputs FROM requests WHERE id = ANY(%s)", [missing]):
                try:
                    decoded = json.loads(text)
                except (TypeError, ValueError):
                    decoded = None
                cache[request] = decoded if isinstance(decoded, list) else None
        kept = {request: cache[request] for request in requests if request in cache}
        self._decoded = kept  # only what this read needed: bounded by the window
        return {request: outputs for request, outputs in kept.items() if outputs is not None}

    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[WarningRecord, ...]:
        since, bound = self._since("last_seen")
        rows = self._all(
            "SELECT category, message, location, count FROM warnings WHERE model = %s AND version = %s"
            f"{since} ORDER BY count DESC, last_seen DESC LIMIT %s",
            [model, version_key(version), *bound, limit],
        )
        return tuple(WarningRecord(category, message, location, count(n)) for category, message, location, n in rows)

    def snapshots(self, model: str, since: float | None, limit: int, *, version: str | None = None) -> list[str]:
        after = iso(min(max(since, 0.0), _LATEST)) if since is not None else ""
        rows = self._all(
            "SELECT snapshot FROM health_history WHERE model = %s AND version = %s AND ts >= %s ORDER BY ts DESC LIMIT %s",
            [model, version_key(version), after, limit],
        )
        return [snapshot for (snapshot,) in rows]

    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        # Read in pages, newest first, so that a caller that stops early has not fetched the whole table.
        before: int | None = None
        while True:
            page = self._all(
                'SELECT id, rows, inputs, outputs, meta FROM "window" WHERE model = %s AND version = %s'
                " AND id < %s ORDER BY id DESC LIMIT 64",
                [model, version_key(version), before if before is not None else 2**63 - 1],
            )
            for chunk_id, rows, inputs, outputs, meta in page:
                before = chunk_id
                chunk = decode_chunk(rows, bytes(inputs), bytes(outputs) if outputs is not None else None, meta)
                if chunk is not None:
                    yield chunk
            if len(page) < 64:
                return

    def baseline(self, model: str, version: str | None, reference: str, kind: str) -> SavedBaseline | None:
        found = self._one(
            "SELECT since, rows, document FROM baselines WHERE model = %s AND version = %s AND reference = %s AND kind = %s",
            [model, version_key(version), reference, kind],
        )
        return SavedBaseline(str(found[0]), int(found[1]), str(found[2])) if found is not None else None

    # -- the fleet ---------------------------------------------------------------------------------
    def replicas(self, model: str, *, version: str | None = None) -> list[Replica]:
        with self.server.reading() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_REPLICAS, [model, version_key(version)]).fetchall()
        return [
            Replica(
                name=r["replica"],
                host=r["host"],
                pid=r["pid"],
                library=r["library"],
                fingerprint=r["fingerprint"],
                started_at=r["started_at"].isoformat(timespec="milliseconds"),
                last_seen=r["last_seen"].isoformat(timespec="milliseconds"),
                age=max(float(r["age"]), 0.0),
                pending=r["pending"],
                written=r["written"],
                dropped=r["dropped"],
                capacity=r["capacity"],
                last_error=r["last_error"],
                last_error_at=r["last_error_at"],
                warnings=r["warnings"],
            )
            for r in rows
        ]

    # -- what the store holds --------------------------------------------------------------------
    def saved_versions(self) -> list[SavedModel]:
        rows = self._all("SELECT model, version, saved_at, reference, settings FROM models ORDER BY model, version", [])
        return [
            SavedModel(name, version_of(version), str(saved_at), text(reference) or "", settings(stored))
            for name, version, saved_at, reference, stored in rows
        ]

    def model_versions(self) -> list[tuple[str, str | None]]:
        rows = self._all("SELECT model, version FROM totals UNION SELECT model, version FROM models", [])
        return [(name, version_of(version)) for name, version in sorted(rows)]

    # -- the request log ---------------------------------------------------------------------------
    def request_log(
        self, model: str | None = None, status: str | None = None, after_id: int = 0, limit: int = 20
    ) -> list[dict[str, Any]]:
        since, params = self._since("ts")
        where = f"id > %s{since}"
        for column, value in (("model", model), ("status", status)):
            if value is not None:
                where += f" AND {column} = %s"
                params.append(value)
        with self.server.reading() as conn, conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                "SELECT id, ts, model, request_id, status, rows, latency_ms, failed_stage, error FROM requests"
                f" WHERE {where} ORDER BY id DESC LIMIT %s",
                [after_id, *params, limit],
            ).fetchall()
        return found[::-1]

    def row_counts(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        since, bound = self._since("ts")
        found = self._one(
            "SELECT coalesce(sum(rows), 0), coalesce(sum(rows) FILTER (WHERE inputs IS NOT NULL), 0)"
            f" {_ANSWERED.format(since=since)}",
            [model, version_key(version), *bound],
        )
        return (count(int(found[0])), count(int(found[1]))) if found else (0, 0)

    def logged_rows(self, model: str, *, version: str | None = None) -> Iterator[tuple[Any, Any]]:
        since, bound = self._since("ts")
        before = 2**63 - 1
        while True:  # pages, newest first: a caller that stops early has not fetched every row
            page = self._all(
                f"SELECT id, inputs, outputs {_ANSWERED.format(since=since)} AND inputs IS NOT NULL AND id < %s"
                " ORDER BY id DESC LIMIT 500",
                [model, version_key(version), *bound, before],
            )
            for request_id, inputs, outputs in page:
                before = request_id
                yield inputs, outputs
            if len(page) < 500:
                return

    def written_and_dropped(self) -> tuple[int, int]:
        since, bound = self._since("ts")
        found = self._one(f"SELECT coalesce(sum(rows), 0) FROM requests WHERE status = 'ok'{since}", bound)
        dropped = self._one("SELECT coalesce(sum(dropped_rows), 0) FROM totals", [])
        return count(int(found[0])) if found else 0, count(int(dropped[0])) if dropped and self.since is None else 0

    def close(self, timeout: float = 10.0) -> bool:
        self.server.close()
        return True


def _seconds(text: str) -> float:
    """Epoch seconds of a stored time (ISO text, milliseconds), as every backend computes a label's delay."""
    return dt.datetime.fromisoformat(text).timestamp()
