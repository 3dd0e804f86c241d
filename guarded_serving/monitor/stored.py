"""Rows read back from the store as the checks read them, tolerant of damaged rows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..stages import RecentRequest
from ..store import Store

__all__ = ["StoredRecent", "recent_from_store"]

_NEW = 64  # new requests since the last read looked for at the front of the marks before reading them all


def recent_from_store(store: Store, name: str, version: str | None, limit: int) -> list[RecentRequest]:
    """Every worker's newest ``limit`` requests, as the pipeline check reads them."""
    return StoredRecent().read(store, name, version, limit)


class StoredRecent:
    """:func:`recent_from_store` for a caller that asks again and again (a health check per request): a request
    read the time before, unchanged (by its :meth:`~guarded_serving.store.StoreReader.recent_request_marks`), is
    neither fetched nor decoded again. Fetching and decoding the JSON of 1,000 recent requests cost ~10 ms a
    health check for a service answering one row per request, and all but the newest few were the same as the
    time before. Holds what the last read returned, no more. A request edited in place keeps what was decoded
    of it unless its status, latency or failed stage changed (a hand edit of its stages' JSON alone is not seen
    while it stays among the recent ones).

    Where the store counts its requests' edits and deletions (:meth:`~guarded_serving.store.StoreReader.
    request_edits`: the SQLite file) and the count is the last read's, only the marks of the requests logged
    since are read: reading all 1,000 marks and comparing them with the last ones cost ~1-1.5 ms of a one-row
    service's health check. (A request inserted by hand with a row id below the newest one read is seen once
    the count moves: the library's writers take ids in log order.)"""

    def __init__(self) -> None:
        self._last = _Last()  # replaced whole: two health checks at once each read one consistent state

    def read(self, store: Store, name: str, version: str | None, limit: int) -> list[RecentRequest]:
        last = self._last
        edits = store.request_edits()  # before the marks it vouches for: a later edit shows at the next read
        asked = (name, version, limit)
        same = last.store is store and last.asked == asked and edits is not None and edits == last.edits
        both = _newer(store, asked, last) if same else None
        if both is None:
            both = _all(store, store.recent_request_marks(name, limit, version=version), last)
        marks, found = both
        self._last = _Last(marks, found, edits, store, asked)
        return [request for request in found if request is not None]


@dataclass(frozen=True, eq=False)
class _Last:
    """What the last read returned: its marks (newest first) and what each decoded to (None: a status it does not
    know), aligned; the store's count of edits and deletions before it, and what it asked of which store."""

    marks: list[tuple[Any, ...]] = field(default_factory=list)
    found: list[RecentRequest | None] = field(default_factory=list)
    edits: int | None = None
    store: Store | None = None
    asked: tuple[str, str | None, int] | None = None


_Read = tuple[list[tuple[Any, ...]], list[RecentRequest | None]]  # marks, newest first, and what each decoded to


def _newer(store: Store, asked: tuple[str, str | None, int], last: _Last) -> _Read | None:
    """The last read moved on by the requests logged since (none changed or deleted); None when it cannot."""
    if not last.marks:
        return None
    name, version, limit = asked
    newer = store.recent_request_marks(name, limit, version=version, after=last.marks[0][0])
    if not newer:
        return last.marks, last.found
    fetched = store.requests_by_id([mark[0] for mark in newer])
    if any(mark[0] not in fetched for mark in newer):
        return None  # deleted between the two reads
    kept = limit - len(newer)
    return newer + last.marks[:kept], [_recent_request(fetched[mark[0]]) for mark in newer] + last.found[:kept]


def _all(store: Store, marks: list[tuple[Any, ...]], last: _Last) -> _Read:
    """The read of all of ``marks``: the requests the last read decoded reused where their marks are the same."""
    found = _moved(store, marks, last)
    if found is not None:
        return marks, found
    known = dict(zip(last.marks, last.found, strict=True))
    missing = [mark[0] for mark in marks if mark not in known]
    fetched = store.requests_by_id(missing) if missing else {}
    kept, found = [], []
    for mark in marks:
        if mark in known:
            request = known[mark]
        elif mark[0] in fetched:
            request = _recent_request(fetched[mark[0]])
        else:  # deleted between the two reads: as if it had been before the first
            continue
        kept.append(mark)
        found.append(request)
    return kept, found


def _moved(store: Store, marks: list[tuple[Any, ...]], last: _Last) -> list[RecentRequest | None] | None:
    """What the marks decode to when they are the last read's, after a few new ones (newest first): those
    fetched, the rest as they were (a list comparison, not 1,000 lookups: ~0.4 ms a health check with one-row
    requests); None when they are not."""
    before = last.marks
    if not before or not marks:
        return None
    new = next((k for k in range(min(len(marks), _NEW)) if marks[k] == before[0]), None)
    if new is None or marks[new:] != before[: len(marks) - new]:
        return None
    fetched = store.requests_by_id([mark[0] for mark in marks[:new]]) if new else {}
    if any(mark[0] not in fetched for mark in marks[:new]):
        return None  # deleted between the two reads
    return [_recent_request(fetched[mark[0]]) for mark in marks[:new]] + last.found[: len(marks) - new]


def _recent_request(r: dict[str, Any]) -> RecentRequest | None:
    """A stored request as the pipeline check reads it; None for a status it does not know. Values of
    the wrong type (a damaged row) count as absent."""
    status = r["status"]
    if status not in ("ok", "rejected", "error"):
        return None
    try:
        stages = json.loads(r["stages"]) if r["stages"] else {}
    except (TypeError, ValueError):
        stages = {}
    try:
        problems = json.loads(r["problem_features"]) if r["problem_features"] else []
    except (TypeError, ValueError):
        problems = []
    problems = problems if isinstance(problems, list) else []
    return RecentRequest(
        status,
        _milliseconds(r["latency_ms"]),
        {str(k): _milliseconds(v) for k, v in stages.items()} if isinstance(stages, dict) else {},
        r["failed_stage"] if isinstance(r["failed_stage"], str) else None,
        tuple(p for p in problems if isinstance(p, str)),
        _tagged(problems, "missing"),
        _rows(r.get("rows")) if status == "ok" else 0,
        _tagged(problems, "range"),
    )


def _tagged(problems: list[Any], tag: str) -> tuple[str, ...]:
    """The feature names of a stored request's ``{tag: name}`` problems (see store.sqlite.backlog)."""
    return tuple(p[tag] for p in problems if isinstance(p, dict) and isinstance(p.get(tag), str))


def _rows(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _milliseconds(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else 0.0
