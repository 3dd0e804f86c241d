"""Operational checks: is the request pipeline, the log store and the environment sound?

Each check is a pure function of what it judges (plus thresholds) and returns a
:class:`~guarded_serving.health.CheckResult`. The drift checks live in :mod:`guarded_serving.drift`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .environment import EnvironmentDiff, PackageChange, WarningRecord
from .errors import ConfigurationError
from .health import CheckResult, Status
from .stages import PipelineSummary, StageSummary
from .store import StoreStats

__all__ = [
    "EnvironmentDetails",
    "PipelineDetails",
    "PipelineThresholds",
    "StoreDetails",
    "environment_check",
    "pipeline_check",
    "store_check",
]


@dataclass(frozen=True, slots=True)
class PipelineThresholds:
    """When the pipeline check warns or alerts. Rates are fractions of the recent requests."""

    error_warn: float = 0.01
    error_alert: float = 0.05
    rejection_warn: float = 0.05
    rejection_alert: float = 0.25
    min_requests_for_rejections: int = 20
    latency_budget_ms: float | None = None

    def __post_init__(self) -> None:
        budget = self.latency_budget_ms
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
            raise ConfigurationError("latency_budget_ms", budget, "a positive number of milliseconds or None")


@dataclass(frozen=True, slots=True)
class PipelineDetails:
    requests: int
    error_rate: float
    rejection_rate: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_budget_ms: float | None
    stages: dict[str, StageSummary]


def pipeline_check(summary: PipelineSummary, thresholds: PipelineThresholds = PipelineThresholds()) -> CheckResult:
    """Judge the recent requests: error rate, rejection rate, latency against an optional budget."""
    requests, errors, rejected = summary.requests, summary.errors, summary.rejected
    total, stages = summary.total, summary.stages
    error_rate = errors / requests if requests else 0.0
    rejection_rate = rejected / requests if requests else 0.0
    p50 = total.p50_ms if total else 0.0
    p99 = total.p99_ms if total else 0.0
    details = PipelineDetails(
        requests=requests,
        error_rate=round(error_rate, 4),
        rejection_rate=round(rejection_rate, 4),
        latency_p50_ms=round(p50, 3),
        latency_p99_ms=round(p99, 3),
        latency_budget_ms=thresholds.latency_budget_ms,
        stages={s.name: s for s in stages},
    )
    if requests == 0:
        return CheckResult("pipeline", Status.OK, "No requests yet.", details)
    findings: list[tuple[Status, str]] = []
    if errors:
        where = _failed_stages(stages)
        level = _level(error_rate, thresholds.error_warn, thresholds.error_alert)
        findings.append((level, f"{errors} of the last {requests} requests failed ({error_rate:.1%}){where}"))
    if rejected and requests >= thresholds.min_requests_for_rejections:
        level = _level(rejection_rate, thresholds.rejection_warn, thresholds.rejection_alert)
        findings.append(
            (level, f"{rejected} of the last {requests} requests were rejected as invalid input ({rejection_rate:.1%})")
        )
    budget = thresholds.latency_budget_ms
    if budget is not None and p99 > budget:
        slowest = max(stages, key=lambda s: s.p99_ms, default=None)
        where = f"; slowest stage '{slowest.name}' p99 {slowest.p99_ms:.1f} ms" if slowest else ""
        findings.append(
            (
                Status.ALERT if p99 > 2 * budget else Status.WARN,
                f"p99 latency {p99:.1f} ms is over the {budget:g} ms budget{where}",
            )
        )
    bad = [(s, text) for s, text in findings if s is not Status.OK]
    if not bad:
        return CheckResult(
            "pipeline",
            Status.OK,
            f"{requests} recent requests, {error_rate:.1%} failed, {rejection_rate:.1%} rejected,"
            f" p50 {p50:.1f} ms, p99 {p99:.1f} ms.",
            details,
        )
    status = max((s for s, _ in bad), key=lambda s: s.rank)
    return CheckResult("pipeline", status, "; ".join(text for _, text in bad) + ".", details)


def _level(rate: float, warn: float, alert: float) -> Status:
    return Status.ALERT if rate >= alert else Status.WARN if rate >= warn else Status.OK


def _failed_stages(stages: tuple[StageSummary, ...]) -> str:
    """Where the model failed: ", in stage 'prep'", or ": 3 in stage 'prep', 1 in stage 'forest'"."""
    failing = sorted((s for s in stages if s.errors), key=lambda s: -s.errors)  # stable: ties in pipeline order
    if len(failing) == 1:
        return f", in stage '{failing[0].name}'"
    shown = ", ".join(f"{s.errors} in stage '{s.name}'" for s in failing[:3])
    more = f" and {len(failing) - 3} more stages" if len(failing) > 3 else ""
    return f": {shown}{more}" if failing else ""


@dataclass(frozen=True, slots=True)
class StoreDetails:
    path: str
    pending: int
    written: int
    dropped: int
    capacity: int
    last_error: str | None
    last_error_at: str | None
    last_flush_at: str | None
    pending_bytes: int = 0
    capacity_bytes: int = 0
    waits: int = 0  # requests that waited for room in the buffer (back-pressure), and for how long in all
    waited_s: float = 0.0
    last_wait_at: str | None = None


def store_check(stats: StoreStats | None, now: dt.datetime | None = None, read_error: str | None = None) -> CheckResult:
    """Judge the log store: a file that could not be opened, failing writes or reads, a replaced file or
    write-ahead log, a filling buffer, requests that waited for the writer (back-pressure), dropped rows."""
    if stats is None:
        return CheckResult("store", Status.OK, "No log store configured: requests are monitored in memory only.")
    details = StoreDetails(
        path=stats.path,
        pending=stats.pending,
        written=stats.written,
        dropped=stats.dropped,
        capacity=stats.capacity,
        last_error=stats.last_error,
        last_error_at=stats.last_error_at,
        last_flush_at=stats.last_flush_at,
        pending_bytes=stats.pending_bytes,
        capacity_bytes=stats.capacity_bytes,
        waits=stats.waits,
        waited_s=stats.waited_s,
        last_wait_at=stats.last_wait_at,
    )
    if stats.read_only:
        dropped = (
            f"; {stats.dropped} rows of answered requests were dropped from the log (counted in the totals)"
            if stats.dropped
            else ""
        )
        return CheckResult(
            "store",
            Status.WARN if stats.dropped else Status.OK,
            f"Read offline from {stats.path} ({stats.written} rows logged){dropped}; pending rows and write errors"
            " are known only to the running service.",
            details,
        )
    fill_rows = stats.pending / stats.capacity if stats.capacity else 0.0
    fill_bytes = stats.pending_bytes / stats.capacity_bytes if stats.capacity_bytes else 0.0
    fill = max(fill_rows, fill_bytes)
    moment = now or dt.datetime.now(dt.UTC)
    problems: list[tuple[Status, str]] = []
    if stats.last_error and not stats.opened:
        problems.append(
            (
                Status.ALERT,
                f"the log store could not be opened ({stats.last_error}); retrying, {stats.pending} rows wait in memory",
            )
        )
    elif stats.last_error:
        problems.append(
            (
                Status.ALERT if fill >= 0.5 else Status.WARN,
                f"writes are failing ({stats.last_error}); {stats.pending} rows wait in memory",
            )
        )
    elif fill_bytes >= 0.5 and fill_bytes >= fill_rows:
        problems.append(
            (
                Status.WARN,
                f"the writer is falling behind: {stats.pending_bytes / 1e6:.1f} MB of"
                f" {stats.capacity_bytes / 1e6:.1f} MB of buffer in use ({stats.pending} rows)",
            )
        )
    elif fill >= 0.5:
        problems.append((Status.WARN, f"the writer is falling behind: {stats.pending} of {stats.capacity} buffered rows in use"))
    if stats.waits and _within(stats.last_wait_at, moment):
        problems.append(
            (
                Status.WARN,
                f"{stats.waits} requests waited for the writer to make room in a full buffer (back-pressure,"
                f" {_seconds_text(stats.waited_s)} in all, the last at {stats.last_wait_at}): logging slows the service down",
            )
        )
    if stats.dropped:
        problems.append((Status.ALERT, f"{stats.dropped} rows were dropped (buffer full, or unwritable records)"))
    if read_error:
        problems.append((Status.ALERT, f"{read_error}; this report covers this worker's own requests only"))
    if _within(stats.last_replaced_at, moment):
        problems.append(
            (Status.WARN, f"the database file was deleted or replaced at {stats.last_replaced_at}; a new one was started")
        )
    if _within(stats.last_wal_replaced_at, moment):
        problems.append(
            (
                Status.WARN,
                f"the database's write-ahead log was deleted or replaced at {stats.last_wal_replaced_at}; what it held"
                " was moved into the database file and a new log was started",
            )
        )
    if not problems:
        return CheckResult("store", Status.OK, f"{stats.written} rows written, {stats.pending} pending, none dropped.", details)
    status = max((s for s, _ in problems), key=lambda s: s.rank)
    text = "; ".join(t for _, t in problems)
    return CheckResult("store", status, text[0].upper() + text[1:] + ".", details)


def _seconds_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _within(iso: str | None, moment: dt.datetime, minutes: float = 15) -> bool:
    """An event at ``iso`` happened less than ``minutes`` before ``moment`` (what the store check recalls)."""
    return iso is not None and moment - dt.datetime.fromisoformat(iso) < dt.timedelta(minutes=minutes)


@dataclass(frozen=True, slots=True)
class EnvironmentDetails:
    python: dict[str, str]
    changed: tuple[PackageChange, ...]
    missing: tuple[PackageChange, ...]
    added: int
    warnings: tuple[WarningRecord, ...]


def environment_check(
    diff: EnvironmentDiff, reference_python: str, current_python: str, warnings: tuple[WarningRecord, ...]
) -> CheckResult:
    """Judge library drift: package versions against the reference, and warnings raised while predicting."""
    details = EnvironmentDetails(
        python={"reference": reference_python, "current": current_python},
        changed=diff.changed,
        missing=diff.missing,
        added=diff.added,
        warnings=warnings,
    )
    parts: list[str] = []
    if diff.python:
        parts.append(f"Python {diff.python[0]} -> {diff.python[1]}")
    changes = [*diff.changed, *diff.missing]
    if changes:
        shown = ", ".join(str(c) for c in changes[:3])
        more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
        parts.append(f"{len(changes)} package{'s differ' if len(changes) != 1 else ' differs'} from the reference: {shown}{more}")
    if warnings:
        w = warnings[0]
        total = sum(x.count for x in warnings)
        parts.append(
            f"the model raised {total} deprecation/future warning{'s' if total != 1 else ''}"
            f" ({w.category}: {w.message!r} x{w.count})"
        )
    if not parts:
        return CheckResult("environment", Status.OK, "Same package versions as the reference; no deprecation warnings.", details)
    text = "; ".join(parts)
    return CheckResult("environment", Status.WARN, text[0].upper() + text[1:] + ".", details)
