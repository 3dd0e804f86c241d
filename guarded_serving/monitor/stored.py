"""Rows read back from the store as the checks read them, tolerant of damaged rows."""

from __future__ import annotations

import json
import math
from typing import Any

from ..stages import RecentRequest
from ..store import Store

__all__ = ["recent_from_store"]


def recent_from_store(store: Store, name: str, version: str | None, limit: int) -> list[RecentRequest]:
    """Every worker's newest ``limit`` requests, as the pipeline check reads them."""
    recent = (_recent_request(r) for r in store.recent_requests(name, limit, version=version))
    return [r for r in recent if r is not None]


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
    return RecentRequest(
        status,
        _milliseconds(r["latency_ms"]),
        {str(k): _milliseconds(v) for k, v in stages.items()} if isinstance(stages, dict) else {},
        r["failed_stage"] if isinstance(r["failed_stage"], str) else None,
        tuple(p for p in problems if isinstance(p, str)) if isinstance(problems, list) else (),
    )


def _milliseconds(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else 0.0
