"""The label join of the SQLite backend: the newest labelled rows with their outputs, decoded, cheaply.

A health check asks for a window's worth of labelled rows (thousands) every time it runs. Measured with
``bench/health.py`` (64 features, a 2,000-row window of 100-row requests, a label per row), the join as
first written took about 20 ms of CPU on this shared machine: each label's request was looked up through
the (model, version) index (a walk over the version's requests, per label), every label of the version
ever stored was joined and sorted before the newest were kept, SQLite parsed a request's whole outputs
array once per label to extract one row, and Python decoded 4,000 JSON texts and parsed 4,000 ISO times
one by one. Now the query walks the requests from the newest back and stops at the limit; each request's
time and outputs are read and decoded once, and kept while a labelled row of the window needs them (a
stored request never changes: at most ``limit`` requests per model version, those the last read joined);
the labels are decoded by one ``json.loads``; a time is parsed once per distinct text. About 3.5 ms.
When nothing was committed to the file since the last read (SQLite's ``PRAGMA data_version`` and the
connection's ``total_changes``, on the same connection), that read's answer is the answer: a health check
asked for again on an idle store costs one pragma, not the join.

The answers are those of the first join, row for row and float for float (``tests/store/test_sqlite_labels.py``
compares both, damaged rows included). One cost moved: a version whose labels stopped long ago makes
the walk go back through the requests logged since (one index lookup each) instead of over its labels.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..records import LabelledRows, version_of
from .backlog import Key

__all__ = ["LabelJoin"]


# The labels of a model version's answered requests with stored outputs, newest request first and, in
# one, its last row first, up to the limit: walked from the newest request back (through the (model,
# version, id) index, one feedback lookup per request), so it costs what the window holds, not every
# label ever stored. A request counts only when no newer answered request has its id (a label joins the
# newest one). The unary `+` keep that lookup on the request_id index.
_JOINED = (
    "SELECT q.id, f.row, f.label, json_valid(f.label), f.ts FROM requests q CROSS JOIN feedback f"
    " ON f.model = q.model AND f.version = ? AND f.request_id = q.request_id"
    " WHERE q.model = ? AND q.version IS ? AND q.status = 'ok' AND typeof(q.outputs) = 'text'{since}"
    " AND typeof(f.row) = 'integer' AND f.row >= 0 AND NOT EXISTS (SELECT 1 FROM requests r"
    " WHERE r.request_id = q.request_id AND r.id > q.id AND +r.model = q.model AND +r.version IS q.version"
    " AND +r.status = 'ok') ORDER BY q.id DESC, f.row DESC LIMIT ?"
)
_OUTPUTS = "SELECT id, ts, outputs FROM requests WHERE id IN ({marks})"
_CHUNK = 500  # ids per IN (...) list

Request = tuple[Any, list[Any] | None]  # a stored request's time and decoded outputs (None: not an array)


class LabelJoin:
    """Reads the newest labelled rows of a model version, keeping the decoded outputs of their requests."""

    def __init__(self) -> None:
        self._generation = 0
        self._requests: dict[Key, dict[int, Request]] = {}  # per model version, by request id
        self._last: tuple[tuple[Any, ...], LabelledRows] | None = None  # (what was read, on what data) and its answer

    def read(
        self, conn: sqlite3.Connection, generation: int, key: Key, limit: int, since: str, bound: Sequence[Any]
    ) -> LabelledRows:
        """The newest ``limit`` labelled rows of ``key`` with an output, oldest first; ``since`` and
        ``bound`` limit them to requests logged since a time (an SQL filter on ``q.ts`` and its value).
        ``generation`` names the file read: another one (the file was replaced) forgets what was kept."""
        if generation != self._generation:
            self._generation, self._requests = generation, {}
        # data_version changes when another connection (the writer, another process) commits to the file, and
        # total_changes when this one writes (labels are written on this thread's connection); the connection
        # itself is part of what is compared, and held, so that a new one never passes for it.
        (data_version,) = conn.execute("PRAGMA data_version").fetchone()
        read = (conn, data_version, conn.total_changes, generation, key, limit, since, tuple(bound))
        last = self._last
        if last is not None and len(last[0]) == len(read) and all(a is b or a == b for a, b in zip(last[0], read, strict=True)):
            return last[1]
        answer = self._read(conn, key, limit, since, bound)
        self._last = (read, answer)
        return answer

    def _read(self, conn: sqlite3.Connection, key: Key, limit: int, since: str, bound: Sequence[Any]) -> LabelledRows:
        sql = _JOINED.format(since=since)
        model, version = key
        want = limit
        while True:
            found = conn.execute(sql, [version, model, version_of(version), *bound, want]).fetchall()
            if not found:
                return LabelledRows([], [], np.zeros(0))
            columns = tuple(zip(*found, strict=True))  # request id, row, label, label valid, label time
            outputs, request_ts, joined = self._join(conn, key, columns[0], columns[1])
            if len(joined) >= limit or len(found) < want:
                break
            want = max(2 * want, want + limit - len(joined))  # some did not join (damaged outputs): read further back
        outputs, request_ts, joined = outputs[:limit], request_ts[:limit], joined[:limit]
        pick = (lambda column: list(column[: len(joined)])) if len(joined) == joined[-1] + 1 else _picker(joined)
        labels, label_ts = _decode(pick(columns[2]), pick(columns[3])), pick(columns[4])
        if any(label is _BAD for label in labels):
            good = [i for i, label in enumerate(labels) if label is not _BAD]
            outputs, labels, request_ts, label_ts = (
                [values[i] for i in good] for values in (outputs, labels, request_ts, label_ts)
            )
        # Epoch seconds as the monitor always read them, parsed once per distinct time (one per request and
        # one per feedback call), not twice per row.
        seconds = {text: _seconds(text) for text in {*request_ts, *label_ts}}
        start = np.fromiter(map(seconds.__getitem__, request_ts), float, len(request_ts))
        end = np.fromiter(map(seconds.__getitem__, label_ts), float, len(label_ts))
        delays = (end - start)[~(np.isnan(start) | np.isnan(end))]
        return LabelledRows(outputs[::-1], labels[::-1], delays[::-1])

    def _join(
        self, conn: sqlite3.Connection, key: Key, ids: tuple[int, ...], rows: tuple[int, ...]
    ) -> tuple[list[Any], list[Any], list[int]]:
        """Each labelled row's output and request time, and the positions of the rows that have an output."""
        requests = self._read_requests(conn, key, set(ids))
        cuts = np.flatnonzero(np.diff(np.asarray(ids)) != 0) + 1  # one request's rows come together
        outputs: list[Any] = []
        times: list[Any] = []
        joined: list[int] = []
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(ids)], strict=True):
            ts, outs = requests.get(ids[a], (None, None))
            if outs is None:
                continue
            kept = range(a, b) if rows[a] < len(outs) else [i for i in range(a, b) if rows[i] < len(outs)]
            outputs.extend(outs[rows[i]] for i in kept)  # rows come last first: when the first fits, all do
            times.extend([ts] * len(kept))
            joined.extend(kept)
        return outputs, times, joined

    def _read_requests(self, conn: sqlite3.Connection, key: Key, wanted: set[int]) -> dict[int, Request]:
        """The time and decoded outputs of the requests ``wanted`` (None: not a JSON array), read once each."""
        cached = self._requests.get(key, {})
        missing = [request_id for request_id in wanted if request_id not in cached]
        read: dict[int, Request] = {}
        for start in range(0, len(missing), _CHUNK):
            ids = missing[start : start + _CHUNK]
            for request_id, ts, text in conn.execute(_OUTPUTS.format(marks=",".join("?" * len(ids))), ids):
                read[request_id] = (ts, _array(text))
        kept = {i: found for i in wanted if (found := cached.get(i) or read.get(i)) is not None}
        self._requests[key] = kept  # only what this read needed: bounded by ``limit`` requests
        return kept


def _picker(positions: list[int]) -> Callable[[tuple[Any, ...]], list[Any]]:
    return lambda column: [column[i] for i in positions]


_BAD = object()  # a label that does not decode


def _array(text: Any) -> list[Any] | None:
    try:
        decoded = json.loads(text)
    except (TypeError, ValueError):
        return None
    return decoded if isinstance(decoded, list) else None


def _decode(texts: list[Any], valid: list[Any]) -> list[Any]:
    """JSON texts decoded, ``_BAD`` for one that does not decode. When SQLite found them all valid, one
    ``json.loads`` of them as an array (about 20x faster than one call each)."""
    if valid.count(1) == len(valid):
        try:
            decoded = json.loads("[" + ",".join(texts) + "]")
        except (TypeError, ValueError):  # a label stored as a number, not text; NaN...
            decoded = None
        if isinstance(decoded, list) and len(decoded) == len(texts):
            return decoded
    return [_loads(text) for text in texts]


def _seconds(text: Any) -> float:
    """Epoch seconds of a stored time; NaN when it is not one (a damaged row)."""
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return _BAD
