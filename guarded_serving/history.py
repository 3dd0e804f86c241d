"""Health history: a compact snapshot of every health report, one per ``history_interval`` slot.

A :class:`Snapshot` keeps what a timeline needs (the overall and per-check statuses and summaries,
the window and request counts, per-stage p50/p95/p99 latency), never input values. :class:`History`
records them, subscribed to a monitor's health reports:

* with a store, in its ``health_history`` table, keyed by (model, version, slot) where the slot is the start
  of the ``interval``-second period the report fell in. Several workers record the same slots, and
  the first snapshot of a slot wins (insert-or-ignore), so there is one snapshot per slot however
  many workers there are. The newest ``keep`` snapshots per model version are kept, none older than the
  store's ``max_age``;
* always, in a bounded in-memory deque: the history without a store, and the fallback when the
  store cannot be read.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, StoreError
from .health import HealthReport, Status
from .logs import get_logger
from .operational import PipelineDetails
from .stages import StageSummary
from .store import Store
from .times import LATEST, iso

__all__ = ["HISTORY_KEEP", "MEMORY_KEEP", "CheckSnapshot", "History", "Snapshot", "StageLatency"]

HISTORY_KEEP = 10_080  # snapshots kept per model in the store: a week at the default 60 s interval
MEMORY_KEEP = 1_440  # snapshots kept in memory: a day at 60 s


@dataclass(frozen=True, slots=True)
class CheckSnapshot:
    """One check's verdict at the time of a snapshot."""

    name: str
    status: Status
    summary: str


@dataclass(frozen=True, slots=True)
class StageLatency:
    """One pipeline stage's latency over the recent requests at the time of a snapshot (milliseconds)."""

    name: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the timeline keeps of one health report. ``ts`` is in epoch seconds."""

    ts: float
    status: Status
    checks: tuple[CheckSnapshot, ...]
    stages: tuple[StageLatency, ...]
    window_rows: int
    requests: int
    rows: int
    rejected: int
    errors: int

    @classmethod
    def of(cls, report: HealthReport, ts: float | None = None) -> Snapshot:
        """The snapshot of a report, taken at ``ts`` (default: the report's ``generated_at``)."""
        if ts is None:
            ts = dt.datetime.fromisoformat(report.generated_at).timestamp()
        stages: tuple[StageLatency, ...] = ()
        for check in report.checks:
            if isinstance(check.details, PipelineDetails):
                stages = tuple(_latency(s) for s in check.details.stages.values())
        return cls(
            ts=ts,
            status=report.status,
            checks=tuple(CheckSnapshot(c.name, c.status, c.summary) for c in report.checks),
            stages=stages,
            window_rows=report.window_rows,
            requests=report.requests,
            rows=report.rows,
            rejected=report.rejected,
            errors=report.errors,
        )

    def check(self, name: str) -> CheckSnapshot | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self, detail: bool = True) -> dict[str, Any]:
        """``{"ts", "status"}``, and with ``detail`` the counts, every check and every stage."""
        out: dict[str, Any] = {"ts": iso(self.ts), "status": self.status.value}
        if detail:
            out["window_rows"] = self.window_rows
            out["totals"] = {"requests": self.requests, "rows": self.rows, "rejected": self.rejected, "errors": self.errors}
            out["checks"] = {c.name: {"status": c.status.value, "summary": c.summary} for c in self.checks}
            out["stages"] = {
                s.name: {"count": s.count, "p50_ms": s.p50_ms, "p95_ms": s.p95_ms, "p99_ms": s.p99_ms} for s in self.stages
            }
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """The inverse of :meth:`to_json` (``ts`` as ISO 8601 text or epoch seconds)."""
        ts = data["ts"]
        totals = data.get("totals", {})
        return cls(
            ts=float(ts) if isinstance(ts, (int, float)) else dt.datetime.fromisoformat(ts).timestamp(),
            status=Status.parse(data["status"]),
            checks=tuple(
                CheckSnapshot(name, Status.parse(c["status"]), str(c.get("summary", "")))
                for name, c in data.get("checks", {}).items()
            ),
            stages=tuple(_stage(name, s) for name, s in data.get("stages", {}).items()),
            window_rows=int(data.get("window_rows", 0)),
            requests=int(totals.get("requests", 0)),
            rows=int(totals.get("rows", 0)),
            rejected=int(totals.get("rejected", 0)),
            errors=int(totals.get("errors", 0)),
        )


def _stage(name: str, s: Mapping[str, Any]) -> StageLatency:
    def ms(key: str) -> float:
        return _milliseconds(s.get(key))

    return StageLatency(str(name), int(s.get("count") or 0), ms("p50_ms"), ms("p95_ms"), ms("p99_ms"))


def _latency(s: StageSummary) -> StageLatency:
    return StageLatency(s.name, s.count, _milliseconds(s.p50_ms), _milliseconds(s.p95_ms), _milliseconds(s.p99_ms))


def _milliseconds(value: Any) -> float:
    return round(float(value), 3) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def _decode(document: Any) -> Snapshot | None:
    """A stored snapshot, or None when it does not decode into one (a damaged or hand-edited row)."""
    try:
        snapshot = Snapshot.from_json(json.loads(document))
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        return None
    return snapshot if math.isfinite(snapshot.ts) and 0 <= snapshot.ts <= LATEST else None


class History:
    """Snapshots of one model version's health reports, at most one per ``interval``-second slot.

    :meth:`record` is a health-report listener (``monitor.subscribe(history.record)``); it never
    raises. Thread-safe.
    """

    def __init__(
        self,
        model: str,
        interval: float,
        store: Store | None = None,
        *,
        keep: int = HISTORY_KEEP,
        memory_keep: int = MEMORY_KEEP,
        version: str | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.interval = interval
        self.store = store
        self.keep = keep
        self._memory: collections.deque[tuple[int, Snapshot]] = collections.deque(maxlen=memory_keep)
        self._lock = threading.Lock()
        self._log = get_logger().bind(model=model)
        self._failing = False

    def slot(self, ts: float) -> int:
        """The start (epoch milliseconds) of the slot ``ts`` falls in: the same in every worker."""
        return round(math.floor(ts / self.interval) * self.interval * 1000)

    def record(self, report: HealthReport, ts: float | None = None) -> bool:
        """Keep a snapshot of ``report`` unless its slot already has one; True when this one was kept."""
        snapshot = Snapshot.of(report, ts)
        slot = self.slot(snapshot.ts)
        with self._lock:
            if self._memory and self._memory[-1][0] >= slot:
                return False  # this process already recorded the slot (or a later one)
            self._memory.append((slot, snapshot))
        if self.store is None:
            return True
        try:
            kept = self.store.write_snapshot(
                self.model,
                slot,
                snapshot.ts,
                snapshot.status.value,
                json.dumps(snapshot.to_json()),
                self.keep,
                version=self.version,
            )
        except StoreError as exc:  # the history is best effort: the memory copy stands in
            if not self._failing:
                self._log.error("history_write_failed", error=str(exc)[:300])
            self._failing = True
            return True
        self._failing = False
        return kept

    def read(self, since: float | None = None, limit: int = MEMORY_KEEP) -> list[Snapshot]:
        """The newest ``limit`` snapshots taken at or after ``since`` (epoch seconds), oldest first.

        Every worker's, from the store; this process's own when there is no store or it cannot be read.
        """
        if since is not None and (isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since)):
            raise ConfigurationError("since", since, "epoch seconds or None")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError("limit", limit, "a positive integer")
        since = None if since is None else float(since)
        if self.store is not None:
            try:
                documents = self.store.snapshots(self.model, since, limit, version=self.version)
                decoded = (_decode(d) for d in reversed(documents))
                return [snapshot for snapshot in decoded if snapshot is not None]
            except StoreError:
                pass
        with self._lock:
            kept = [s for _, s in self._memory if since is None or s.ts >= since]
        return kept[-limit:] if limit > 0 else []
