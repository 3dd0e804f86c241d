"""The PostgreSQL backend's label join: the newest labelled rows of a model version, joined to their outputs.

Read again only when what it depends on moved since the last read (the change numbers of schema 3, the newest
logged request, how many were logged); a request's decoded outputs are kept while the labelled rows need them.

Moving on (as the SQLite join does): the join used to be read whole after every change, walking the window's
requests again for one more labelled one. Its rows are now kept as a chain of blocks, one per request
(``guarded_serving/chain.py``), and a read after new requests and new labels reads only what changed since the last
one: the requests logged since its newest, and the request ids whose labels were numbered since. When these name
only requests newer than every one joined, their labelled rows are read (the same query, for those requests) and
the chain moves on; anything else (a label for a request already joined or within the window, a request that took
the id of one joined, a deletion, another limit or a ``since``) reads the join whole, as before. Measured on a
2,000-row window of one-row requests, one new labelled request before each read, this tree beside the whole join
in one process on one server (the test fixture's, load average 4.2-6.3): 1.9-2.7 ms of the reader's CPU instead of
10.8-13.8 ms, 8-13 ms instead of 31-43 ms of wall time (most of it waiting on the server's replies under load).

Replicas commit out of order: a request can be committed after a newer one (its id taken first) was read, and a
read that looked only above the newest id would never see it. Every read therefore counts the requests logged
(``totals``, written in the same transaction as the requests): when more were committed since the last read than
it finds above that read's newest id, the join is read whole. Every query of a read runs in one REPEATABLE READ
transaction, so that the counters and the rows they count are one snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from ...chain import BAD, Block, Chain
from ...jsontext import loads
from ...performance import plain_matrix
from ..records import LabelledRows, version_key
from .connection import Server
from .schema import has_table

__all__ = ["LabelJoin"]

# The labels of a model version's answered requests, newest request first and, in one, its last row first: walked
# from the newest request back (the (model, version, id) index, one feedback lookup each), so that it costs what
# the window holds, not every label ever stored. A request counts only when no newer answered one has its id.
_LABELLED = (
    "SELECT q.id, f.row, f.label, q.ts, f.ts, q.request_id FROM requests q JOIN feedback f ON f.model = q.model"
    " AND f.version = q.version AND f.request_id = q.request_id WHERE q.model = %s AND q.version = %s"
    " AND q.status = 'ok' AND q.outputs IS NOT NULL{since} AND f.row >= 0 AND NOT EXISTS (SELECT 1 FROM requests r"
    " WHERE r.request_id = q.request_id AND r.id > q.id AND r.model = q.model AND r.version = q.version"
    " AND r.status = 'ok') ORDER BY q.id DESC, f.row DESC LIMIT %s"
)
# What a label join depends on (schema 3): labels' change numbers, deletions, the newest logged request and how
# many were logged (every logged request is counted in ``totals`` by the transaction that writes it).
_COUNTERS = (
    "SELECT (SELECT value FROM changes WHERE name = 'label'), (SELECT value FROM changes WHERE name = 'deletion'),"
    " (SELECT max(id) FROM requests WHERE model = %s AND version = %s),"
    " (SELECT requests - dropped_requests FROM totals WHERE model = %s AND version = %s)"
)
# What changed since a read, in one round trip: the requests logged above its newest (each one's id and whether it
# was answered: all are counted), and the ids whose labels were numbered since (NULL).
_CHANGED = (
    "SELECT request_id, status = 'ok' FROM requests WHERE model = %s AND version = %s AND id > %s"
    " UNION ALL SELECT DISTINCT request_id, NULL::boolean FROM feedback WHERE model = %s AND version = %s AND changed > %s"
)

Connection = psycopg.Connection[tuple[Any, ...]]
Counters = tuple[int, int, int, int]  # label change number, deletions, newest logged request, requests logged


@dataclasses.dataclass(frozen=True, eq=False)
class _Known:
    """The chain the last read of the whole window kept or moved on, and what it was read at."""

    read: tuple[Any, ...]  # (model, version, limit): a read of something else reads the join whole
    counters: Counters
    chain: Chain


class LabelJoin:
    """What the last join read and answered, the chain of blocks it kept, and the outputs it decoded (one per
    reader; one read at a time)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._decoded: dict[int, list[Any] | None] = {}  # request id -> its outputs, decoded (see _outputs)
        self._joined: tuple[tuple[Any, ...], LabelledRows] | None = None  # what the last join read, and its answer
        self._known: _Known | None = None
        self._counted = False  # whether the database was found to keep change numbers (schema 3)
        # One read at a time: the chain kept and the counters it was read at must stay one pair.
        self._lock = threading.Lock()

    def read(self, model: str, limit: int, version: str | None, since: str, bound: Sequence[Any]) -> LabelledRows:
        """The newest ``limit`` labelled rows (see the store contract); ``since`` and ``bound`` limit them to
        requests logged since a time (an SQL filter on ``q.ts`` and its value)."""
        with self._lock, self.server.reading() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for every query below
            if not self._counted:  # (a schema 2 database read as it is: joined on every read)
                self._counted = has_table(conn, "changes")
            counters = _counters(conn, model, version) if self._counted else None
            read = (model, version, limit, since, tuple(bound), counters)
            if counters is not None and self._joined is not None and self._joined[0] == read:
                return self._joined[1]
            known, self._known = self._known, None
            chain = None
            if counters is not None and not since and known is not None and known.read == read[:3]:
                chain = self._moved(conn, known, counters)
            if chain is None:
                chain = self._join(conn, model, limit, version, since, bound, counters[0] if counters else 0)
            if counters is not None and not since:
                self._known = _Known(read[:3], counters, chain)
            outputs, labels, delays, matrix = chain.answer()
            # the outputs' matrix as plain_matrix reads them, also where the chain keeps none (a label left out)
            answer = LabelledRows(outputs, labels, delays, matrix if matrix is not None else plain_matrix(outputs))
            self._joined = (read, answer) if counters is not None else None
            return answer

    def _join(
        self, conn: Connection, model: str, limit: int, version: str | None, since: str, bound: Sequence[Any], changes: int
    ) -> Chain:
        """The whole join: the blocks of the newest requests with labelled rows, until ``limit`` rows joined."""
        want = limit
        while True:
            found = conn.execute(_LABELLED.format(since=since), [model, version_key(version), *bound, want]).fetchall()
            blocks = self._blocks(conn, found, keep_only=True)
            if sum(len(block[0]) for _, _, block in blocks) >= limit or len(found) < want:
                return Chain.of_newest(limit, changes, blocks)
            want *= 2  # some rows had no output (a request sampled out): read further back

    def _moved(self, conn: Connection, known: _Known, counters: Counters) -> Chain | None:
        """The kept chain moved on to the requests labelled since it was read, when nothing else it read changed;
        None when the join must be read whole."""
        label, deletion, _, logged = counters
        model, version, _ = known.read
        key = version_key(version)
        last = known.chain
        if deletion != known.counters[1]:
            return None  # labels or requests deleted (retention, a hand edit)
        changed = conn.execute(_CHANGED, [model, key, known.counters[2], model, key, known.counters[0]]).fetchall()
        if logged - known.counters[3] != sum(answered is not None for _, answered in changed):
            return None  # a request committed after a newer one was read: it is below that read's newest
        dirty = {rid for rid, answered in changed if answered is not False}
        if not dirty:
            return last
        if not dirty.isdisjoint(last.ids):
            return None  # a joined request's labels changed, or a newer request took its id
        # the labelled rows of the ids' newest answered requests (the rows their labels join)
        found = conn.execute(_LABELLED.format(since=" AND q.request_id = ANY(%s)"), [model, key, list(dirty), None]).fetchall()
        if any(request <= last.newest and not (last.full and request < last.oldest) for request, *_ in found):
            return None  # a request within the window labelled since (older ones' rows are beyond the limit)
        found = [row for row in found if row[0] > last.newest]
        new = self._blocks(conn, found)[::-1]
        moved = last.moved(label, new)
        # the decoded outputs kept are those of the chain's requests: not of the oldest blocks pushed out, nor of a
        # request none of whose rows joined
        pushed = len(last.sequences) + len(new) - len(moved.sequences)
        gone = {row[0] for row in found} - {request for _, request, _ in new}
        for request in [*(last.sequences[:pushed] + [request for _, request, _ in new])[:pushed], *gone]:
            self._decoded.pop(request, None)
        return moved

    def _blocks(self, conn: Connection, found: list[tuple[Any, ...]], keep_only: bool = False) -> list[tuple[str, int, Block]]:
        """The joined rows of each request among ``found`` (newest first, its last row first) as (request id, request,
        block), newest first; a request whose outputs are not a JSON array, or whose rows none joins, is left out."""
        outputs = self._outputs(conn, {request for request, *_ in found}, keep_only)
        blocks = []
        start = 0
        for end in range(1, len(found) + 1):
            if end < len(found) and found[end][0] == found[start][0]:
                continue
            rows = found[start:end]
            start = end
            outs = outputs.get(rows[0][0])
            if outs is not None and (block := _block(rows, outs)).outputs:
                blocks.append((str(rows[0][5]), int(rows[0][0]), block))
        return blocks

    def _outputs(self, conn: Connection, requests: set[int], keep_only: bool) -> dict[int, list[Any]]:
        """The decoded outputs of these requests (a stored request never changes: read once, and kept while the
        labelled rows need them); a request whose outputs are not a JSON array is absent. ``keep_only``: keep only
        these (a whole join: at most a window's requests), else add them to those kept."""
        missing = [request for request in requests if request not in self._decoded]
        if missing:
            for request, text in conn.execute("SELECT id, outputs FROM requests WHERE id = ANY(%s)", [missing]):
                try:
                    decoded = loads(text)
                except (TypeError, ValueError):
                    decoded = None
                self._decoded[request] = decoded if isinstance(decoded, list) else None
        kept = {request: self._decoded[request] for request in requests if request in self._decoded}
        if keep_only:
            self._decoded = kept
        return {request: outputs for request, outputs in kept.items() if outputs is not None}


def _counters(conn: Connection, model: str, version: str | None) -> Counters:
    """What the join depends on (see _COUNTERS)."""
    key = version_key(version)
    found = conn.execute(_COUNTERS, [model, key, model, key]).fetchone()
    label, deletion, newest, logged = found if found is not None else (0, 0, 0, 0)
    return int(label or 0), int(deletion or 0), int(newest or 0), int(logged or 0)


def _block(rows: list[tuple[Any, ...]], outs: list[Any]) -> Block:
    """One request's rows (request, row, label, request time, label time; last row first) joined to its outputs:
    those it has an output for, oldest first; a label, or a time, that does not decode is ``BAD`` (left out)."""
    kept = [r for r in reversed(rows) if r[1] < len(outs)]
    labels: list[Any] = []
    delays = []
    for _, _, label, request_ts, label_ts, _ in kept:
        try:
            decoded, delay = json.loads(label), _seconds(label_ts) - _seconds(request_ts)
        except (TypeError, ValueError):
            decoded, delay = BAD, math.nan
        labels.append(decoded)
        delays.append(delay)
    outputs = [outs[r[1]] for r in kept]
    bad = any(label is BAD for label in labels)
    return Block(outputs, labels, np.array(delays, dtype=float), plain_matrix(outputs) if outputs and not bad else None)


def _seconds(text: str) -> float:
    """Epoch seconds of a stored time (ISO text, milliseconds), as every backend computes a label's delay."""
    return dt.datetime.fromisoformat(text).timestamp()
