"""The PostgreSQL backend's label join: the newest labelled rows of a model version, joined to their outputs.

Read again only when what it depends on moved since the last read (the change numbers of schema 3, the newest
answered request); a request's decoded outputs are kept while the labelled rows need them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import StoreError
from ...performance import plain_matrix
from ..records import LabelledRows, version_key
from .connection import Server

__all__ = ["LabelJoin"]

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
# What a label join depends on (schema 3): labels' change numbers, deletions, the newest answered request; read
# before the join, so that whatever commits meanwhile moves them for the next read.
_COUNTERS = (
    "SELECT (SELECT value FROM changes WHERE name = 'label'), (SELECT value FROM changes WHERE name = 'deletion'),"
    " (SELECT max(id) FROM requests WHERE model = %s AND version = %s AND status = 'ok')"
)


class LabelJoin:
    """What the last join read and answered, and the outputs it decoded (one per reader)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._decoded: dict[int, list[Any] | None] = {}  # request id -> its outputs, decoded (see labelled)
        self._joined: tuple[tuple[Any, ...], LabelledRows] | None = None  # what the last join read, and its answer

    def read(self, model: str, limit: int, version: str | None, since: str, bound: Sequence[Any]) -> LabelledRows:
        """The newest ``limit`` labelled rows (see the store contract); ``since`` and ``bound`` limit them to
        requests logged since a time (an SQL filter on ``q.ts`` and its value)."""
        # Joined again only when what the join depends on (_COUNTERS, read first) moved since the last read.
        try:
            counters = self.server.one(_COUNTERS, [model, version_key(version)])
        except StoreError:
            counters = None  # no `changes` table (schema 2, read as it is): joined on every read
        read = (model, version, limit, since, tuple(bound), counters)
        if counters is not None and self._joined is not None and self._joined[0] == read:
            return self._joined[1]
        answer = self._join(model, limit, version, since, bound)
        self._joined = (read, answer) if counters is not None else None
        return answer

    def _join(self, model: str, limit: int, version: str | None, since: str, bound: Sequence[Any]) -> LabelledRows:
        want = limit
        while True:
            found = self.server.all(_LABELLED.format(since=since), [model, version_key(version), *bound, want])
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
            for request, text in self.server.all("SELECT id, outputs FROM requests WHERE id = ANY(%s)", [missing]):
                try:
                    decoded = json.loads(text)
                except (TypeError, ValueError):
                    decoded = None
                cache[request] = decoded if isinstance(decoded, list) else None
        kept = {request: cache[request] for request in requests if request in cache}
        self._decoded = kept  # only what this read needed: bounded by the window
        return {request: outputs for request, outputs in kept.items() if outputs is not None}


def _seconds(text: str) -> float:
    """Epoch seconds of a stored time (ISO text, milliseconds), as every backend computes a label's delay."""
    return dt.datetime.fromisoformat(text).timestamp()
