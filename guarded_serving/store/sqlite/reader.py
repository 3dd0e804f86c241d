"""Every read of the SQLite backend: one query per question, limited to ``since`` by one optional filter."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from ...drift.window import Chunk
from ...environment import WarningRecord
from ..contract import StoreReader
from ..records import LabelledRows, SavedBaseline, SavedModel, Totals, version_key, version_of
from .chunks import ChunkCache
from .codec import count, iso, settings, text
from .connection import Connections
from .labels import LabelJoin
from .schema import has_table

__all__ = ["SqliteReader"]

_ANSWERED = "FROM requests WHERE model = ? AND version IS ? AND status = 'ok'{since}"  # a model version's answered requests
# The rows of answered requests by id, looked up on the request_id index: filtered on the model's indexes, the
# plan walked every request of the model version in id order (2 ms for 200 stored requests of 100 rows, growing
# with the file) to find one id. Ascending: a later (newer) request with the same id overwrites an earlier one.
_REQUEST_ROWS = (
    "SELECT request_id, rows FROM requests WHERE request_id IN ({marks}) AND +model = ? AND +version IS ?"
    " AND +status = 'ok' AND typeof(rows) = 'integer' AND rows > 0 ORDER BY id"
)
_RECENT_KEYS = ("request_id", "status", "rows", "latency_ms", "stages", "failed_stage", "problem_features")
_RECENT = ", ".join(_RECENT_KEYS)  # a request as recent_requests gives it
# read from the index idx_requests_recent alone (schema.py), not the wide rows
MARKS = (
    "SELECT id, status, latency_ms, failed_stage FROM requests WHERE model = ? AND version IS ? AND id > ?{since}"
    " ORDER BY id DESC LIMIT ?"
)
_LATEST = 253402300799.0  # the last second of year 9999: a later `since` compares as this


class SqliteReader(StoreReader):
    """Reads a SQLite log store through one connection per thread (see :class:`Connections`)."""

    def __init__(self, connections: Connections, since: float | None = None) -> None:
        self.connections = connections
        self.path = connections.path
        self.since = since
        self._labels = LabelJoin()
        self._chunks = ChunkCache()

    def _since(self, column: str) -> tuple[str, list[Any]]:
        """The filter that limits a query to rows logged since ``since`` (none for a reader of everything)."""
        if self.since is None:
            return "", []
        return f" AND {column} >= ?", [_time_bound(self.since)]

    # -- per model version ---------------------------------------------------------------------
    def totals(self, model: str, *, version: str | None = None) -> Totals:
        with self.connections.reading() as db:
            if self.since is not None:
                since, bound = self._since("ts")
                requests, rows, rejected, errors = db.execute(
                    "SELECT count(*), coalesce(sum(CASE WHEN status = 'ok' THEN rows END), 0),"
                    " coalesce(sum(status = 'rejected'), 0), coalesce(sum(status = 'error'), 0)"
                    f" FROM requests WHERE model = ? AND version IS ?{since}",
                    [model, version, *bound],
                ).fetchone()
                return Totals(requests=requests, rows=rows, rejected=rejected, errors=errors)
            found = db.execute(
                "SELECT requests, rows, rejected, errors, dropped_requests, dropped_rows FROM totals"
                " WHERE model = ? AND version = ?",
                [model, version_key(version)],
            ).fetchone()
        return Totals(*(count(n) for n in found)) if found is not None else Totals()

    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        with self.connections.reading() as db:
            if self.since is not None:
                since, bound = self._since("ts")
                labels, relabels = db.execute(
                    f"SELECT count(*), coalesce(sum(updates), 0) FROM feedback WHERE model = ? AND version = ?{since}",
                    [model, version_key(version), *bound],
                ).fetchone()
                return count(labels), count(relabels)
            row = db.execute(
                "SELECT labels, relabels FROM totals WHERE model = ? AND version = ?", [model, version_key(version)]
            ).fetchone()
        return (count(row[0]), count(row[1])) if row else (0, 0)

    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        since, bound = self._since("ts")
        with self.connections.reading() as db:
            return list(
                db.query(
                    f"SELECT {_RECENT} FROM requests WHERE model = ? AND version IS ?{since} ORDER BY id DESC LIMIT ?",
                    [model, version, *bound, limit],
                )
            )

    def recent_request_marks(
        self, model: str, limit: int, *, version: str | None = None, after: int = 0
    ) -> list[tuple[Any, ...]]:
        since, bound = self._since("ts")
        with self.connections.reading() as db:
            return db.execute(MARKS.format(since=since), [model, version, after, *bound, limit]).fetchall()

    def request_edits(self) -> int | None:
        # Kept by triggers (schema 8). Row ids: one writer at a time takes the next one (SQLite's rowid, the
        # largest plus one) inside its write transaction, so ids become visible in order.
        with self.connections.reading() as db:
            try:
                found = db.execute("SELECT value FROM changes WHERE name = 'request'").fetchone()
            except sqlite3.OperationalError:  # an older file read as it is: no counters
                return None
        return None if found is None else int(found[0])

    def requests_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(ids))
        with self.connections.reading() as db:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                for row in db.execute(f"SELECT id, {_RECENT} FROM requests WHERE id IN ({','.join('?' * len(part))})", part):
                    found[row[0]] = dict(zip(_RECENT_KEYS, row[1:], strict=True))
        return found

    def request_rows(self, model: str, request_ids: Sequence[str], *, version: str | None = None) -> dict[str, int]:
        found: dict[str, int] = {}
        ids = list(dict.fromkeys(request_ids))
        with self.connections.reading() as db:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                for request_id, rows in db.execute(_REQUEST_ROWS.format(marks=marks), [*part, model, version]):
                    found[request_id] = rows
        return found

    def labelled(self, model: str, limit: int, *, version: str | None = None) -> LabelledRows:
        since, bound = self._since("q.ts")
        with self.connections.reading() as db:
            return self._labels.read(db.conn, self.connections.generation, (model, version_key(version)), limit, since, bound)

    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[WarningRecord, ...]:
        since, bound = self._since("last_seen")
        with self.connections.reading() as db:
            return tuple(
                WarningRecord(str(r["category"]), str(r["message"]), str(r["location"]), count(r["count"]))
                for r in db.query(
                    "SELECT category, message, location, count FROM warnings WHERE model = ? AND version = ?"
                    f" AND typeof(category) = 'text' AND typeof(message) = 'text'{since} ORDER BY count DESC LIMIT ?",
                    [model, version_key(version), *bound, limit],
                )
            )

    def snapshots(self, model: str, since: float | None, limit: int, *, version: str | None = None) -> list[str]:
        after = _time_bound(since) if since is not None else ""  # every stored ts sorts after ""
        with self.connections.reading() as db:
            return [
                snapshot
                for (snapshot,) in db.execute(
                    "SELECT snapshot FROM health_history WHERE model = ? AND version = ? AND ts >= ? ORDER BY ts DESC LIMIT ?",
                    [model, version_key(version), after, limit],
                )
            ]

    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        with self.connections.reading() as db:
            yield from self._chunks.read(db.conn, self.connections.generation, (model, version_key(version)))

    def baseline(self, model: str, version: str | None, reference: str, kind: str) -> SavedBaseline | None:
        with self.connections.reading() as db:
            if not has_table(db, "baselines"):
                return None
            found = db.execute(
                "SELECT since, rows, document FROM baselines WHERE model = ? AND version = ? AND reference = ? AND kind = ?",
                [model, version_key(version), reference, kind],
            ).fetchone()
        return SavedBaseline(str(found[0]), count(found[1]), str(found[2])) if found is not None else None

    # -- what the store holds --------------------------------------------------------------------
    def saved_versions(self) -> list[SavedModel]:
        with self.connections.reading() as db:
            if not has_table(db, "models"):
                return []
            return [
                SavedModel(name, version_of(text(version) or ""), str(saved_at), text(reference) or "", settings(stored))
                for name, version, saved_at, reference, stored in db.execute(
                    "SELECT model, version, saved_at, reference, settings FROM models ORDER BY model, version"
                )
                if isinstance(name, str)
            ]

    def model_versions(self) -> list[tuple[str, str | None]]:
        keys = {(s.name, version_key(s.version)) for s in self.saved_versions()}
        with self.connections.reading() as db:
            keys.update(
                (name, version)
                for name, version in db.execute("SELECT model, version FROM totals")
                if isinstance(name, str) and isinstance(version, str)
            )
        return [(name, version_of(version)) for name, version in sorted(keys)]

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
        where = f"id > ?{since}"
        for column, value in (("model", model), ("status", status)):
            if value is not None:
                where += f" AND {column} = ?"
                params.append(value)
        if version is not None:  # requests keep NULL for the unversioned model
            where += " AND version IS ?"
            params.append(version_of(version))
        with self.connections.reading() as db:
            found = list(
                db.query(
                    "SELECT id, ts, model, version, request_id, status, rows, latency_ms, failed_stage, error FROM requests"
                    f" WHERE {where} ORDER BY id DESC LIMIT ?",
                    [after_id, *params, limit],
                )
            )
        for r in found:
            r["version"] = version_of(r["version"]) if isinstance(r["version"], str) else None
        return found[::-1]

    def row_counts(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        since, bound = self._since("ts")
        answered = f"SELECT coalesce(sum(rows), 0) {_ANSWERED.format(since=since)}"
        with self.connections.reading() as db:
            (rows,) = db.execute(answered, [model, version, *bound]).fetchone()
            (with_inputs,) = db.execute(f"{answered} AND inputs IS NOT NULL", [model, version, *bound]).fetchone()
        return count(rows), count(with_inputs)

    def logged_rows(self, model: str, *, version: str | None = None) -> Iterator[tuple[Any, Any]]:
        since, bound = self._since("ts")
        with self.connections.reading() as db:
            yield from db.execute(
                f"SELECT inputs, outputs {_ANSWERED.format(since=since)} AND inputs IS NOT NULL ORDER BY id DESC",
                [model, version, *bound],
            )

    def written_and_dropped(self) -> tuple[int, int]:
        since, bound = self._since("ts")
        with self.connections.reading() as db:
            (rows,) = db.execute(f"SELECT coalesce(sum(rows), 0) FROM requests WHERE status = 'ok'{since}", bound).fetchone()
            (dropped,) = db.execute("SELECT coalesce(sum(dropped_rows), 0) FROM totals").fetchone()
        return count(rows), count(dropped) if self.since is None else 0

    def close(self, timeout: float = 10.0) -> bool:
        self.connections.close()
        return True


def _time_bound(ts: float) -> str:
    """A ``since`` as the stored times compare with it: one before 1970 as 1970, one after 9999 as 9999."""
    return iso(min(max(ts, 0.0), _LATEST))
