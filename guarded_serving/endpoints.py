"""The guarded service's other answers: ``/feedback`` (labels for earlier predictions), ``/health/model``
(the health report as JSON, or the HTML dashboard) and ``/health/model/history``.

Each never raises: a bad body or parameter gets a 4xx problem+json naming it (:mod:`guarded_serving.http`).
The dashboard is rendered here, at the edge: the monitor hands over typed results only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from .dashboard import render_dashboard
from .errors import InputError, Problem, StoreError, UnknownRequestError
from .health import HealthReport, Status
from .healthjson import report_bytes
from .http import (
    Reply,
    UnreadBody,
    authorized,
    check_envelope,
    parameter_problem,
    parse_limit,
    prefers_html,
    problem_reply,
    unauthorized,
)
from .ids import new_request_id
from .jsontext import dump_bytes
from .times import parse_since
from .validation import describe, parse_json

if TYPE_CHECKING:
    from .monitor import Monitor

__all__ = ["DASHBOARD_HISTORY", "DASHBOARD_REFRESH", "HISTORY_LIMIT", "Served", "feedback", "health", "history"]

FEEDBACK_FORMS = '{"request_id": "...", "labels": [...]} or {"items": [{"request_id": "...", "row": 0, "label": ...}]}'


class Served(Protocol):
    """What the endpoints need of a served model: a guarded model (guard.py) or a monitor feed (feed.py)."""

    name: str
    version: str | None
    auth_token: str | None
    max_body_bytes: int
    log: Any

    def start(self, metrics: Any = None) -> Monitor: ...


_FAIL_ON = {"warn": Status.WARN, "alert": Status.ALERT}
DASHBOARD_REFRESH = 30  # seconds between the dashboard's own reloads
DASHBOARD_HISTORY = 720  # snapshots the dashboard's timeline shows (12 hours at the default interval)
HISTORY_LIMIT = 10_000  # most snapshots one /health/model/history answer holds


def feedback(
    guarded: Served, body: bytes | UnreadBody, content_type: str | None = None, authorization: str | None = None
) -> Reply:
    """Take labels for earlier predictions: ``{"request_id": ..., "labels": [...]}`` (one label per
    row) or ``{"items": [{"request_id": ..., "row": ..., "label": ...}, ...]}``. Never raises."""
    if authorized(guarded.auth_token, authorization) is not True:
        return unauthorized()
    monitor = guarded.start()
    rid = new_request_id()
    try:
        raw = check_envelope(body, content_type, guarded.max_body_bytes)
        if not raw.strip():
            raise InputError([Problem("the request body is empty", FEEDBACK_FORMS)], status=400)
        document = parse_json(raw)
        if isinstance(document, dict) and set(document) == {"request_id", "labels"}:
            request_id, labels = document["request_id"], document["labels"]
            if not isinstance(request_id, str) or not isinstance(labels, list):
                raise InputError([Problem("request_id or labels has the wrong type", "a string and a list of labels")])
            result = monitor.feedback(_usable_id(request_id), labels)
        elif isinstance(document, dict) and set(document) == {"items"} and isinstance(document["items"], list):
            items = [(_usable_id(rid), row, label) for rid, row, label in _feedback_items(document["items"])]
            result = monitor.feedback_items(items)
        else:
            got = f"fields {sorted(document)}" if isinstance(document, dict) else describe(document)
            raise InputError([Problem(f"the body has neither form: {got}", FEEDBACK_FORMS)])
    except StoreError as exc:  # labels are acknowledged only once on disk: ask the client to retry
        guarded.log.error("feedback_store_error", error=str(exc)[:300])
        return problem_reply(503, "Store unavailable", f"the labels were not stored: {exc}", rid)
    except UnknownRequestError as exc:
        guarded.log.info("feedback_rejected", unknown=list(exc.unknown[:20]))
        return problem_reply(404, "Unknown request", str(exc), rid, unknown_request_ids=list(exc.unknown))
    except InputError as exc:
        guarded.log.info("feedback_rejected", problem=str(exc)[:300])
        return problem_reply(exc.status, "Invalid feedback", str(exc), rid, problems=[p.to_json() for p in exc.problems])
    body_out = {"accepted": result.accepted, "new": result.new, "replaced": result.replaced}
    return Reply(200, dump_bytes(body_out), {"X-Request-ID": rid})


def health(
    guarded: Served,
    fail_on: str | None = None,
    detail: bool = True,
    authorization: str | None = None,
    format: str | None = None,
    accept: str | None = None,
) -> Reply:
    """The ``/health/model`` answer: 200 always, or 503 at or above ``fail_on`` (warn | alert).

    JSON, or the HTML dashboard for ``format="html"`` or an ``Accept`` header that prefers
    ``text/html`` to JSON (a browser's); ``format="json"`` forces JSON. With an auth token set, a
    request without it gets only the overall status; a wrong token a 401.
    """
    allowed = authorized(guarded.auth_token, authorization)
    if allowed is False:
        return unauthorized()
    detail = detail and allowed is True
    if fail_on is not None and fail_on not in _FAIL_ON:
        return parameter_problem("fail_on", fail_on, "'warn' or 'alert'")
    if format is not None and format not in ("json", "html"):
        return parameter_problem("format", format, "'json' or 'html'")
    html = format == "html" or (format is None and prefers_html(accept))
    monitor = guarded.start()
    report: HealthReport = monitor.health()
    status = 200
    if fail_on is not None and report.status.rank >= _FAIL_ON[fail_on].rank:
        status = 503
    if not html:
        return Reply(status, report_bytes(report, detail))
    page = render_dashboard(
        report,
        monitor.histograms() if detail else (),
        monitor.history(limit=DASHBOARD_HISTORY) if detail else (),
        refresh_seconds=DASHBOARD_REFRESH,
        detail=detail,
    )
    headers = {"Cache-Control": "no-store", "Vary": "Accept, Authorization"}
    return Reply(status, page.encode(), headers, "text/html; charset=utf-8")


def history(guarded: Served, since: str | None = None, limit: str | None = None, authorization: str | None = None) -> Reply:
    """The ``/health/model/history`` answer: the newest ``limit`` health snapshots at or after ``since``
    (ISO 8601 time or epoch seconds), oldest first. Without the token (when one is set) each snapshot
    holds only its time and status; a wrong token gets a 401. A bad parameter gets a 400 naming it."""
    allowed = authorized(guarded.auth_token, authorization)
    if allowed is False:
        return unauthorized()
    try:
        since_ts = parse_since(since)
    except ValueError:
        return parameter_problem("since", since, "an ISO 8601 time (2026-01-31T12:00:00Z) or epoch seconds (1769860800)")
    count = parse_limit(limit, DASHBOARD_HISTORY, HISTORY_LIMIT)
    if count is None:
        return parameter_problem("limit", limit, f"an integer from 1 to {HISTORY_LIMIT}")
    monitor = guarded.start()
    snapshots = monitor.history(since=since_ts, limit=count)
    body = {
        "model": {"name": guarded.name, "version": guarded.version},
        "interval_s": monitor.history_interval,
        "count": len(snapshots),
        "snapshots": [s.to_json(detail=allowed is True) for s in snapshots],
    }
    return Reply(200, dump_bytes(body))


def _usable_id(request_id: str) -> str:
    """A request id that can be looked up: lone surrogates (valid JSON escapes, not valid text) are not."""
    try:
        request_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError([Problem(f"request_id {request_id!r} is not valid text", "the id a /predict answer carried")]) from None
    return request_id


def _feedback_items(items: list[Any]) -> list[tuple[str, int, Any]]:
    out = []
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"request_id", "row", "label"}:
            problems.append(
                Problem(f"item {i} is {json.dumps(item)[:60]}", 'an object {"request_id": ..., "row": ..., "label": ...}')
            )
        elif not isinstance(item["request_id"], str):
            problems.append(Problem(f"item {i}: request_id {item['request_id']!r}", "a string"))
        else:
            out.append((item["request_id"], item["row"], item["label"]))
    if problems:
        raise InputError(problems[:20])
    return out
