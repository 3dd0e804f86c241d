"""Every read of the PostgreSQL backend: one query per question, on a pooled connection, limited to ``since``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from psycopg.rows import dict_row

from ...drift.window import Chunk
from ...environment import WarningRecord
from ..contract import StoreReader
from ..records import LabelledRows, Replica, SavedBaseline, SavedModel, Totals, version_key, version_of
from ..sqlite.codec import count, decode_chunk, iso, settings, text
from .connection import Server
from .labels import LabelJoin

__all__ = ["PostgresReader"]

_RECENT = "request_id, status, rows, latency_ms, stages, failed_stage, problem_features"  # a request as recent_requests gives it
_ANSWERED = "FROM requests WHERE model = %s AND version = %s AND status = 'ok'{since}"
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
        self._labels = LabelJoin(server)

    def _since(self, column: str) -> tuple[str, list[Any]]:
        if self.since is None:
            return "", []
        return f" AND {column} >= %s", [iso(min(max(self.since, 0.0), _LATEST))]

    # -- per model version ---------------------------------------------------------------------
    def totals(self, model: str, *, version: str | None = None) -> Totals:
        key = [model, version_key(version)]
        if self.since is not None:
            since, bound = self._since("ts")
            found = self.server.one(
                "SELECT count(*), coalesce(sum(CASE WHEN status = 'ok' THEN rows END), 0),"
                " count(*) FILTER (WHERE status = 'rejected'), count(*) FILTER (WHERE status = 'error')"
                f" FROM requests WHERE model = %s AND version = %s{since}",
                [*key, *bound],
            )
            return Totals(*(count(int(n)) for n in found or (0, 0, 0, 0)))
        found = self.server.one(
            "SELECT requests, rows, rejected, errors, dropped_requests, dropped_rows FROM totals"
            " WHERE model = %s AND version = %s",
            key,
        )
        return Totals(*(count(n) for n in found)) if found is not None else Totals()

    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        key = [model, version_key(version)]
        if self.since is not None:
            since, bound = self._since("ts")
            found = self.server.one(
                f"SELECT count(*), coalesce(sum(updates), 0) FROM feedback WHERE model = %s AND version = %s{since}",
                [*key, *bound],
            )
        else:
            found = self.server.one("SELECT labels, relabels FROM totals WHERE model = %s AND version = %s", key)
        return (count(int(found[0])), count(int(found[1]))) if found else (0, 0)

    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        since, bound = self._since("ts")
        with self.server.reading() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                f"SELECT {_RECENT} FROM requests WHERE model = %s AND version = %s{since} ORDER BY id DESC LIMIT %s",
                [model, version_key(version), *bound, limit],
            ).fetchall()

    def recent_request_marks(
        self, model: str, limit: int, *, version: str | None = None, after: int = 0
    ) -> list[tuple[Any, ...]]:
        since, bound = self._since("ts")
        return self.server.all(
            "SELECT id, status, latency_ms, failed_stage FROM requests"
            f" WHERE model = %s AND version = %s AND id > %s{since} ORDER BY id DESC LIMIT %s",
            [model, version_key(version), after, *bound, limit],
        )

    # request_edits: None (the contract's). Replicas take row ids from one sequence and commit in any order: a
    # request with a lower id can appear after a higher one was read, so every read takes all the marks.

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
        rows = self.server.all(
            f"SELECT DISTINCT ON (request_id) request_id, rows {_ANSWERED.format(since='')}"
            " AND request_id = ANY(%s) AND rows > 0 ORDER BY request_id, id DESC",
            [model, version_key(version), ids],
        )
        return {str(request_id): int(n) for request_id, n in rows}

    def labelled(self, model: str, limit: int, *, version: str | None = None) -> LabelledRows:
        since, bound = self._since("q.ts")
        return self._labels.read(model, limit, version, since, bound)

    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[WarningRecord, ...]:
        since, bound = self._since("last_seen")
        rows = self.server.all(
            "SELECT category, message, location, count FROM warnings WHERE model = %s AND version = %s"
            f"{since} ORDER BY count DESC, last_seen DESC LIMIT %s",
            [model, version_key(version), *bound, limit],
        )
        return tuple(WarningRecord(category, message, location, count(n)) for category, message, location, n in rows)

    def snapshots(self, model: str, since: float | None, limit: int, *, version: str | None = None) -> list[str]:
        after = iso(min(max(since, 0.0), _LATEST)) if since is not None else ""
        rows = self.server.all(
            "SELECT snapshot FROM health_history WHERE model = %s AND version = %s AND ts >= %s ORDER BY ts DESC LIMIT %s",
            [model, version_key(version), after, limit],
        )
        return [snapshot for (snapshot,) in rows]

    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        # Read in pages, newest first, so that a caller that stops early has not fetched the whole table.
        before: int | None = None
        while True:
            page = self.server.all(
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
        found = self.server.one(
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
        rows = self.server.all("SELECT model, version, saved_at, reference, settings FROM models ORDER BY model, version", [])
        return [
            SavedModel(name, version_of(version), str(saved_at), text(reference) or "", settings(stored))
            for name, version, saved_at, reference, stored in rows
        ]

    def model_versions(self) -> list[tuple[str, str | None]]:
        rows = self.server.all("SELECT model, version FROM totals UNION SELECT model, version FROM models", [])
        return [(name, version_of(version)) for name, version in sorted(rows)]

    # -- the request log ---------------------------------------------------------------------------
    def request_log(
        self,
        model: str | None = None,
        status: str | None = None,
        after_id: int = 0,
        limit: int = 20,
        *,
        version: str | None = None,
    ) -> list[dict[str, Any]]:
        since, params = self._since("ts")
        where = f"id > %s{since}"
        for column, value in (("model", model), ("version", version), ("status", status)):
            if value is not None:  # requests keep '' for the unversioned model, as the version named here
                where += f" AND {column} = %s"
                params.append(value)
        with self.server.reading() as conn, conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                "SELECT id, ts, model, version, request_id, status, rows, latency_ms, failed_stage, error FROM requests"
                f" WHERE {where} ORDER BY id DESC LIMIT %s",
                [after_id, *params, limit],
            ).fetchall()
        for r in found:
            r["version"] = version_of(r["version"]) if isinstance(r["version"], str) else None
        return found[::-1]

    def row_counts(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        since, bound = self._since("ts")
        found = self.server.one(
            "SELECT coalesce(sum(rows), 0), coalesce(sum(rows) FILTER (WHERE inputs IS NOT NULL), 0)"
            f" {_ANSWERED.format(since=since)}",
            [model, version_key(version), *bound],
        )
        return (count(int(found[0])), count(int(found[1]))) if found else (0, 0)

    def logged_rows(self, model: str, *, version: str | None = None) -> Iterator[tuple[Any, Any]]:
        since, bound = self._since("ts")
        before = 2**63 - 1
        while True:  # pages, newest first: a caller that stops early has not fetched every row
            page = self.server.all(
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
        found = self.server.one(f"SELECT coalesce(sum(rows), 0) FROM requests WHERE status = 'ok'{since}", bound)
        dropped = self.server.one("SELECT coalesce(sum(dropped_rows), 0) FROM totals", [])
        return count(int(found[0])) if found else 0, count(int(dropped[0])) if dropped and self.since is None else 0

    def close(self, timeout: float = 10.0) -> bool:
        self.server.close()
        return True
