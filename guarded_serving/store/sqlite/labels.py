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
a request's labels are decoded by one ``json.loads`` and its outputs by simdjson (:func:`~guarded_serving.jsontext.loads`);
a time is parsed once per distinct text. About 3.5 ms.
Each request's joined rows are kept with the stored rows they came from, and reused while the query
returns the same rows for it: a window moved on by one request decodes that request's labels and times,
not the window's 2,000 (the query itself still returns every row: what changed is only known by reading).
When nothing was committed to the file since the last read (SQLite's ``PRAGMA data_version`` and the
connection's ``total_changes``, on the same connection), that read's answer is the answer: a health check
asked for again on an idle store costs one pragma, not the join.

Reading only what changed (schema 5). The join still walked and returned the window's 2,000 labelled rows on
every read (~2.7 ms of a 5.3 ms concept check) to learn that one request had been added. The file now numbers
every change of a label (``feedback.changed``, from the ``changes`` counters, kept by triggers whatever writes
the file) and counts every deletion of a label or an answered request. A read after the first one reads those
two counters, the answered requests logged since the newest it saw, and the request ids whose labels changed
since; only those requests are joined again (each one's newest answered request with the id, all its labels),
the others' joined rows are kept. A deletion (retention, or a hand edit), a window that would shrink below the
limit (an id sent again, its labels moving to the newer request) or a file without the counters read the
whole join again, as before. The store stays the source of truth: what is kept is the joined rows of the
requests the last read handed back, and the counters say which of them are still as stored. (A stored
request is never changed in place by the library; a hand edit of one is seen once the file changes otherwise.)

Each request's block also keeps its outputs as a matrix and its label delays, computed when it is joined: the
answer carries the matrix (concept drift scored 2,000 rows by converting their outputs again, ~0.8 ms) and the
delays by concatenation. A new request's labels are read once: the changed rows are read whole, and are its
labels when they are all of them (counted on the primary key's index).

The answers are those of the first join, row for row and float for float (``tests/store/test_sqlite_labels.py``
compares both, damaged rows included). One cost moved: a version whose labels stopped long ago makes
the walk go back through the requests logged since (one index lookup each) instead of over its labels.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...chain import Chain
from ...jsontext import loads
from ..records import LabelledRows, version_of
from .backlog import Key
from .joined import StoredBlock, block_of

__all__ = ["LabelJoin"]


# The labels of a model version's answered requests with stored outputs, newest request first and, in
# one, its last row first, up to the limit: walked from the newest request back (through the (model,
# version, id) index, one feedback lookup per request), so it costs what the window holds, not every
# label ever stored. A request counts only when no newer answered request has its id (a label joins the
# newest one). The unary `+` keep that lookup on the request_id index.
_JOINED = (
    "SELECT q.id, f.row, f.label, f.ts, q.request_id FROM requests q CROSS JOIN feedback f"
    " ON f.model = q.model AND f.version = ? AND f.request_id = q.request_id"
    " WHERE q.model = ? AND q.version IS ? AND q.status = 'ok' AND typeof(q.outputs) = 'text'{since}"
    " AND typeof(f.row) = 'integer' AND f.row >= 0 AND NOT EXISTS (SELECT 1 FROM requests r"
    " WHERE r.request_id = q.request_id AND r.id > q.id AND +r.model = q.model AND +r.version IS q.version"
    " AND +r.status = 'ok') ORDER BY q.id DESC, f.row DESC LIMIT ?"
)
_OUTPUTS = "SELECT id, ts, outputs FROM requests WHERE id IN ({marks})"
# What changed since a read: the counters, then the answered requests logged since and the ids whose labels changed.
_COUNTERS = (
    "SELECT (SELECT value FROM changes WHERE name = 'label'), (SELECT value FROM changes WHERE name = 'deletion'),"
    " (SELECT max(id) FROM requests WHERE model = ? AND version IS ? AND status = 'ok')"
)
_NEW_REQUESTS = "SELECT request_id FROM requests WHERE model = ? AND version IS ? AND status = 'ok' AND id > ?"
# The labels changed since (their request ids make requests dirty; the rows that can join, as _LABELS_OF reads them)
_CHANGED_LABELS = (
    "SELECT request_id, row, label, ts, typeof(row) = 'integer' AND row >= 0 FROM feedback"
    " WHERE model = ? AND version = ? AND changed > ?"
)
# How many of a request's labels can join (on the primary key's index alone): all of them changed, when as many did
_LABEL_COUNT = (
    "SELECT count(*) FROM feedback WHERE model = ? AND version = ? AND request_id = ? AND typeof(row) = 'integer' AND row >= 0"
)
# Each id's newest answered request (the one its labels join), and whether it stored its outputs as text.
_NEWEST = (
    "SELECT request_id, id, typeof(outputs) = 'text' FROM requests WHERE request_id IN ({marks})"
    " AND +model = ? AND +version IS ? AND +status = 'ok' ORDER BY id"
)
# A request's labels as the join reads them (its id given), last row first.
_LABELS_OF = (
    "SELECT ?, row, label, ts, request_id FROM feedback WHERE model = ? AND version = ?"
    " AND request_id = ? AND typeof(row) = 'integer' AND row >= 0 ORDER BY row DESC"
)
_CHUNK = 500  # ids per IN (...) list

Request = tuple[Any, list[Any] | None]  # a stored request's time and decoded outputs (None: not an array)


Joined = tuple[Chain, dict[str, StoredBlock]]  # a chain of blocks, and its blocks as stored by request id


@dataclasses.dataclass(frozen=True)
class _Known:
    """What a read knew, so that the next one reads only what changed since: the counters and the newest answered
    request then, and whether the kept blocks held ``limit`` rows (older labelled rows may exist beyond them)."""

    read: tuple[Any, ...]  # (generation, key, limit): a read of something else reads everything
    label: int
    deletion: int
    newest: int
    full: bool


class LabelJoin:
    """Reads the newest labelled rows of a model version, keeping the decoded outputs of their requests."""

    def __init__(self) -> None:
        self._generation = 0
        self._requests: dict[Key, dict[int, Request]] = {}  # per model version, by request id
        self._last: tuple[tuple[Any, ...], LabelledRows] | None = None  # (what was read, on what data) and its answer
        # per model version: the chain of blocks last read (their rows put together), and its blocks as stored, by
        # the request id their labels name
        self._chains: dict[Key, Chain] = {}
        self._stored: dict[Key, dict[str, StoredBlock]] = {}
        self._known: dict[Key, _Known] = {}  # per model version: what the blocks kept were read at
        self._counted: int | None = None  # the generation whose file was found to keep change numbers
        # One read at a time: what a read keeps (blocks, and the counters they were read at) must stay one pair
        # when health is asked from several threads at once.
        self._lock = threading.Lock()

    def read(
        self, conn: sqlite3.Connection, generation: int, key: Key, limit: int, since: str, bound: Sequence[Any]
    ) -> LabelledRows:
        """The newest ``limit`` labelled rows of ``key`` with an output, oldest first; ``since`` and
        ``bound`` limit them to requests logged since a time (an SQL filter on ``q.ts`` and its value).
        ``generation`` names the file read: another one (the file was replaced) forgets what was kept."""
        with self._lock:
            if generation != self._generation:
                self._generation, self._requests, self._known = generation, {}, {}
                self._chains, self._stored = {}, {}
            # data_version changes when another connection (the writer, another process) commits to the file, and
            # total_changes when this one writes (labels are written on this thread's connection); the connection
            # itself is part of what is compared, and held, so that a new one never passes for it.
            (data_version,) = conn.execute("PRAGMA data_version").fetchone()
            read = (conn, data_version, conn.total_changes, generation, key, limit, since, tuple(bound))
            last = self._last
            if (
                last is not None
                and len(last[0]) == len(read)
                and all(a is b or a == b for a, b in zip(last[0], read, strict=True))
            ):
                return last[1]
            own = not conn.in_transaction  # one read transaction: every query of the read sees the same snapshot
            if own:
                conn.execute("BEGIN")
            try:
                answer = self._read(conn, generation, key, limit, since, bound)
            finally:
                if own:
                    conn.commit()
            self._last = (read, answer)
            return answer

    def _read(
        self, conn: sqlite3.Connection, generation: int, key: Key, limit: int, since: str, bound: Sequence[Any]
    ) -> LabelledRows:
        if since or not self._counts(conn, generation):  # a reader of a time range, or a file without change numbers
            self._known.pop(key, None)
            chain, _ = _joined(self._join(conn, key, limit, since, bound), limit, 0)
            return _answer(chain)
        model, version = key
        label, deletion, newest_id = conn.execute(_COUNTERS, [model, version_of(version)]).fetchone()  # before what they cover
        read = (generation, key, limit)
        known = self._known.pop(key, None)
        joined = None
        if known is not None and known.read == read and known.deletion == deletion:
            joined = self._changed(conn, key, limit, known, label or 0)
        if joined is None:
            joined = _joined(self._join(conn, key, limit, since, bound), limit, label or 0)
        chain, self._stored[key] = joined
        self._chains[key] = chain
        self._known[key] = _Known(read, label or 0, deletion or 0, newest_id or 0, chain.full)
        return _answer(chain)

    def _counts(self, conn: sqlite3.Connection, generation: int) -> bool:
        """Whether the file keeps change numbers (schema 5; an older file read as it is does not)."""
        if self._counted != generation:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changes'").fetchone()
            self._counted = generation if found is not None else None
        return self._counted == generation

    def _changed(self, conn: sqlite3.Connection, key: Key, limit: int, known: _Known, changes: int) -> Joined | None:
        """The kept blocks with the requests whose labels or newest request changed since ``known`` joined
        again (the chain moved on when only newer requests did); None when the join must be read whole (the window
        would shrink below ``limit``)."""
        model, version = key
        dirty = {rid for (rid,) in conn.execute(_NEW_REQUESTS, [model, version_of(version), known.newest])}
        changed: dict[str, list[tuple[Any, ...]]] = {}  # request id -> its changed rows that can join
        for rid, *row, joins_rows in conn.execute(_CHANGED_LABELS, [model, version, known.label]):
            dirty.add(rid)
            if joins_rows:
                changed.setdefault(rid, []).append((*row, rid))
        last = self._chains.get(key) or Chain.of(limit, 0, [], [], [])
        stored = self._stored.get(key, {})
        if not dirty:
            return last, stored
        oldest = last.oldest if known.full and last.sequences else 0  # older requests' rows are beyond the limit
        gone = {stored[rid].request for rid in dirty if rid in stored}  # joined again below, or no longer joined
        joins: dict[str, tuple[int, bool]] = {}  # request id -> its newest answered request, outputs as text
        ids = sorted(dirty, key=str)
        for start in range(0, len(ids), _CHUNK):
            part = ids[start : start + _CHUNK]
            sql = _NEWEST.format(marks=",".join("?" * len(part)))
            for rid, request_id, as_text in conn.execute(sql, [*part, model, version_of(version)]):
                joins[rid] = (request_id, bool(as_text))
        labelled = {
            request_id: rows
            for rid, (request_id, as_text) in joins.items()
            if as_text and request_id >= oldest and (rows := _labels_of(conn, key, request_id, rid, changed.get(rid)))
        }
        moving = not gone and all(request_id > last.newest for request_id in labelled)  # newer requests only
        kept = {} if moving else {block.request: block for block in stored.values() if block.request not in gone}
        requests = self._read_requests(conn, key, {*kept, *labelled}, add=moving)
        seconds: dict[Any, float] = {}
        new: dict[int, StoredBlock] = {}
        for request_id, rows in labelled.items():
            ts, outs = requests.get(request_id, (None, None))
            if outs is not None:
                new[request_id] = block_of(rows, ts, outs, seconds)
        if moving:  # the chain moved on: the new blocks appended, the oldest they push out dropped
            added = [new[request_id] for request_id in sorted(new)]
            chain = last.moved(changes, [(block.request_id, block.request, block.block) for block in added])
            # ``stored`` handed on, not copied (2,000 entries): a read that fails before keeping the moved chain
            # forgets what it knew (``_known``), and the next one reads the whole join, checking each block it reuses
            pushed = len(last.ids) + len(added) - len(chain.ids)
            stored.update((block.request_id, block) for block in added)
            cached = self._requests[key]
            for rid in last.ids[:pushed] + [block.request_id for block in added][: max(pushed - len(last.ids), 0)]:
                cached.pop(stored.pop(rid).request, None)
            return chain, stored
        kept.update(new)
        blocks = sorted(kept.values(), key=_newest_first)
        if known.full and sum(len(block.block.outputs) for block in blocks) < limit:
            return None  # rows left the window (an id sent again): the rows before the kept ones are needed
        return _joined(blocks, limit, changes)

    def _join(self, conn: sqlite3.Connection, key: Key, limit: int, since: str, bound: Sequence[Any]) -> list[StoredBlock]:
        """The whole join: the blocks of the newest requests with labelled rows, newest first, until ``limit``
        rows joined (or none are left)."""
        sql = _JOINED.format(since=since)
        model, version = key
        want = limit
        while True:
            found = conn.execute(sql, [version, model, version_of(version), *bound, want]).fetchall()
            if not found:
                return []
            blocks = self._blocks_of(conn, key, found)
            joined = sum(len(block.block.outputs) for block in blocks)
            if joined >= limit or len(found) < want:
                return blocks
            want = max(2 * want, want + limit - joined)  # some did not join (damaged outputs): read further back

    def _blocks_of(self, conn: sqlite3.Connection, key: Key, found: list[Any]) -> list[StoredBlock]:
        """The joined rows of each request among ``found`` (newest first), reusing a request's block while its
        stored rows are the same: a window moved on by one request decodes that request's labels, not 2,000."""
        ids = [row[0] for row in found]
        requests = self._read_requests(conn, key, set(ids))
        cuts = (np.flatnonzero(np.diff(np.asarray(ids)) != 0) + 1).tolist()  # one request's rows come together
        before = {block.request: block for block in self._stored.get(key, {}).values()}
        seconds: dict[Any, float] = {}
        blocks = []
        for a, b in zip([0, *cuts], [*cuts, len(ids)], strict=True):
            request_id = ids[a]
            ts, outs = requests.get(request_id, (None, None))
            if outs is None:
                continue
            rows = found[a:b]
            block = before.get(request_id)
            if block is None or block.outs is not outs or block.ts != ts or block.rows != rows:
                block = block_of(rows, ts, outs, seconds)
            blocks.append(block)
        return blocks

    def _read_requests(self, conn: sqlite3.Connection, key: Key, wanted: set[int], add: bool = False) -> dict[int, Request]:
        """The time and decoded outputs of the requests ``wanted`` (None: not a JSON array), read once each; kept
        for the next read are those (``add``: and those kept already)."""
        cached = self._requests.get(key, {})
        missing = [request_id for request_id in wanted if request_id not in cached]
        read: dict[int, Request] = {}
        for start in range(0, len(missing), _CHUNK):
            ids = missing[start : start + _CHUNK]
            for request_id, ts, text in conn.execute(_OUTPUTS.format(marks=",".join("?" * len(ids))), ids):
                read[request_id] = (ts, _array(text))
        found = {i: request for i in wanted if (request := cached.get(i) or read.get(i)) is not None}
        if add:
            self._requests[key] = cached
            cached.update(found)
        else:
            self._requests[key] = found  # only what this read needed: bounded by ``limit`` requests
        return found


def _labels_of(
    conn: sqlite3.Connection, key: Key, request_id: int, rid: str, changed: list[tuple[Any, ...]] | None
) -> list[tuple[Any, ...]]:
    """A request's labels as _LABELS_OF reads them: the ``changed`` rows when they are all of them (a new request's
    labels: reading them again cost as much as reading what changed, ~0.2 ms for 100), else read."""
    model, version = key
    if changed and conn.execute(_LABEL_COUNT, [model, version, rid]).fetchone()[0] == len(changed):
        return [(request_id, *row) for row in sorted(changed, key=lambda row: row[0], reverse=True)]  # last row first
    return conn.execute(_LABELS_OF, [request_id, model, version, rid]).fetchall()


def _array(text: Any) -> list[Any] | None:
    try:
        decoded = loads(text)
    except (TypeError, ValueError):
        return None
    return decoded if isinstance(decoded, list) else None


def _joined(blocks: list[StoredBlock], limit: int, changes: int) -> Joined:
    """The blocks (newest first) that hold the newest ``limit`` rows as a chain, and by request id."""
    chain = Chain.of_newest(limit, changes, [(block.request_id, block.request, block.block) for block in blocks])
    return chain, {block.request_id: block for block in blocks[: len(chain.ids)]}


def _answer(chain: Chain) -> LabelledRows:
    """The chain's newest ``limit`` rows (a label that does not decode left out after the limit), and the delays of
    the rows whose two times are known."""
    outputs, labels, delays, matrix = chain.answer()
    return LabelledRows(outputs, labels, delays[~np.isnan(delays)], matrix)


def _newest_first(block: StoredBlock) -> int:
    return -block.request
