"""Label joining: labels for earlier predictions, checked, stored, and joined back to the outputs they label.

Recent answered requests are kept in memory (bounded by ``PREDICTIONS_KEPT`` rows), so that a label arriving
right after its prediction (before the store has flushed it) is accepted; without a store their outputs are the
only predictions labels can join. With a store, labels are written there and read back joined, and only each
request's row count is kept: an entry then holds no list, and Python's garbage collector stops tracking it at
its first collection, instead of moving 10,000 rows' lists into its oldest generation, where every full
collection walks them (~100 ms each, every ~10,000 one-row requests in a guarded service).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import numbers
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..chain import Block, Chain
from ..errors import InputError, Problem, StoreError, UnknownRequestError
from ..jsontext import to_jsonable_output
from ..performance import check_class, plain_matrix
from ..reference import Reference
from ..store import RequestRecord, Store

__all__ = ["PREDICTIONS_KEPT", "FeedbackResult", "Labelled", "Labels"]

PREDICTIONS_KEPT = 10_000  # rows of recent predictions kept in memory for joining labels (at least 2 windows)
# Without a store, labelled rows are the only ones concept drift can be judged by: requests with labels are kept
# beyond PREDICTIONS_KEPT rows until this many labelled rows (the served baseline's ADOPT_ROWS, or the window)
# remain without them, up to LABELLED_KEPT_ROWS rows in all. Forgetting them at 10,000 rows left a stream with
# 10 % of its rows labelled 1,000 labelled rows for ever: concept drift waited for 2,000 and was never judged.
LABELLED_KEPT = 2_000
LABELLED_KEPT_ROWS = 10 * PREDICTIONS_KEPT
TOUCHES_KEPT = 1_000  # changes noted between two joins, beyond which the next join walks every request again


@dataclasses.dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What a feedback call stored: labels accepted, of which new and replacing an earlier label."""

    accepted: int
    new: int
    replaced: int


@dataclasses.dataclass(frozen=True, slots=True)
class Labelled:
    """The newest labelled rows, oldest first: outputs, labels and delays (s) in the same order; labels
    received and replaced so far; ``matrix``: the outputs as :func:`~guarded_serving.performance.plain_matrix`
    reads them, when the join kept it (else None: not known, or not plain)."""

    outputs: list[Any]
    labels: list[Any]
    delays: np.ndarray
    received: int
    replaced: int
    matrix: np.ndarray | None = None


def labelled_block(labelled_rows: dict[int, tuple[Any, float]], ts: float, outs: list[Any]) -> Block:
    """One request's labelled rows (row -> label, labelled at) joined to its outputs in row order (rows past its
    outputs left out), with their delays and their outputs' matrix: read once per request, not per health check."""
    rows = [row for row in sorted(labelled_rows) if row < len(outs)]
    outputs = [outs[row] for row in rows]
    delays = np.array([labelled_rows[row][1] - ts for row in rows], dtype=float)
    return Block(outputs, [labelled_rows[row][0] for row in rows], delays, plain_matrix(outputs))


class Labels:
    """One model version's labels: taken by :meth:`feedback_items`, joined to outputs by :meth:`labelled`."""

    def __init__(self, reference: Reference, name: str, version: str | None, store: Store | None, window: int) -> None:
        self.reference = reference
        self.performance = reference.performance  # what labels are checked against
        self.name = name
        self.version = version
        self.store = store
        self.window = window
        self._lock = threading.Lock()
        # id -> (sequence, time, rows, outputs) of recent answered requests, oldest first; outputs None with a store
        self._predictions: collections.OrderedDict[str, tuple[int, float, int, list[Any] | None]] = collections.OrderedDict()
        self._prediction_rows = 0
        self._sequence = 0
        # Without a store: labels by request id, then row -> (label, labelled at); bounded like the predictions.
        self._labels: dict[str, dict[int, tuple[Any, float]]] = {}
        self._label_counts = [0, 0]
        self._labelled_kept = 0  # rows with a label among the kept predictions (without a store)
        # Without a store: what can change the joined labels (a label, a prediction replaced or forgotten) counts
        # a change, and the last join is reused until then (joining 2,000 labels in Python costs ~1.5 ms).
        self._changes = 0
        self._joined: tuple[int, int, Labelled] | None = None
        # Without a store: each labelled request's joined rows (outputs, labels, delays, rows in order), kept
        # until its labels or its prediction change: a window moved by one request joins that one request,
        # not its 2,000 rows again. Only the blocks the last join used are kept (at most ``limit`` requests).
        self._blocks: dict[str, Block] = {}
        # The last join's blocks put together (:class:`Chain`), and the changes since to requests that had or got
        # labels, as (change number, sequence): a join after changes only to newer requests moves it on.
        self._chain: Chain | None = None
        self._touched: list[tuple[int, int]] = []

    def remember(self, record: RequestRecord) -> None:
        """Keep an answered request's outputs for joining labels (a record hook)."""
        if record.status != "ok":
            return
        rows = len(record.outputs) if record.outputs is not None else record.rows
        outputs = None if self.store is not None else list(record.outputs) if record.outputs is not None else [None] * rows
        with self._lock:
            self._sequence += 1
            previous = self._predictions.pop(record.request_id, None)
            if previous is not None:  # a client's reused request id: labels join the newest request with it
                self._changes += 1
                self._prediction_rows -= previous[2]
                self._forget(record.request_id, previous[0])
            self._predictions[record.request_id] = (self._sequence, record.ts, rows, outputs)
            self._prediction_rows += rows
            while self._prediction_rows > max(PREDICTIONS_KEPT, 2 * self.window) and self._may_forget_oldest():
                old_id, (old_sequence, _, old_rows, _) = self._predictions.popitem(last=False)
                self._changes += 1
                self._prediction_rows -= old_rows
                self._forget(old_id, old_sequence)

    def _may_forget_oldest(self) -> bool:
        """Whether the oldest kept prediction may go (under the lock): always with a store (labels are joined
        there) or beyond LABELLED_KEPT_ROWS rows; else unless its labels are needed to keep LABELLED_KEPT (or a
        window of) labelled rows."""
        if len(self._predictions) <= 1:
            return False
        if self.store is not None or self._prediction_rows > max(LABELLED_KEPT_ROWS, 2 * self.window):
            return True
        labelled = len(self._labels.get(next(iter(self._predictions)), ()))
        return not labelled or self._labelled_kept - labelled >= max(LABELLED_KEPT, self.window)

    def _forget(self, request_id: str, sequence: int) -> None:
        if request_id in self._labels or request_id in self._blocks:  # what a join read changes
            self._touch(sequence)
        self._blocks.pop(request_id, None)
        if self.store is None:
            dropped = self._labels.pop(request_id, None)  # its labels are all of rows it had (checked when they came)
            self._labelled_kept -= len(dropped or ())

    def feedback_items(self, items: Sequence[tuple[str, int, Any]], whole_requests: bool = False) -> FeedbackResult:
        """Labels as (request id, row, label). Everything is checked before anything is stored: on any
        problem (an unknown id, a row out of range, a label of the wrong kind) nothing is written."""
        if not items:
            raise InputError([Problem("no labels", "at least one label")])
        items = [  # numpy scalars (np.int64 rows, np.float64 labels) are plain numbers here
            (rid, int(row) if isinstance(row, numbers.Integral) and not isinstance(row, bool) else row, to_jsonable_output(label))
            for rid, row, label in items
        ]
        ids = list(dict.fromkeys(rid for rid, _, _ in items))
        rows = self._request_rows(ids)
        unknown = tuple(rid for rid in ids if rid not in rows)
        if unknown:
            raise UnknownRequestError(unknown)
        problems: list[Problem] = []
        if whole_requests:
            for rid in ids:
                given = sum(1 for r, _, _ in items if r == rid)
                if given != rows[rid]:
                    problems.append(Problem(f"{given} labels for request {rid!r}", f"{rows[rid]} labels, one per row"))
        for i, (rid, row, label) in enumerate(items):
            if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < rows[rid]:
                problems.append(Problem(f"item {i}: row {row!r} of request {rid!r}", f"a row index in 0..{rows[rid] - 1}"))
            bad = (
                self.performance.check_label(label)
                if self.performance is not None
                else check_class(self.reference.classes, label)
                if self.reference.classes
                else None
            )
            if bad is not None:
                problems.append(Problem(f"item {i}: label {bad.problem}", bad.expected))
        if problems:
            raise InputError(problems[:20])
        if self.store is not None:
            encoded = [(rid, int(row), json.dumps(label)) for rid, row, label in items]
            new, replaced = self.store.write_feedback(self.name, encoded, version=self.version)
            return FeedbackResult(accepted=len(items), new=new, replaced=replaced)
        now = time.time()
        with self._lock:
            replaced = 0
            self._changes += 1
            for rid, row, label in items:  # a row labelled twice in one call is replaced too
                if rid in self._predictions:
                    self._touch(self._predictions[rid][0])
                self._blocks.pop(rid, None)
                labels = self._labels.setdefault(rid, {})
                replaced += int(row) in labels
                self._labelled_kept += int(row) not in labels
                labels[int(row)] = (label, now)
            new = len(items) - replaced
            self._label_counts[0] += new
            self._label_counts[1] += replaced
        return FeedbackResult(accepted=len(items), new=new, replaced=replaced)

    def _request_rows(self, ids: list[str]) -> dict[str, int]:
        with self._lock:
            found = {rid: self._predictions[rid][2] for rid in ids if rid in self._predictions}
        missing = [rid for rid in ids if rid not in found]
        if missing and self.store is not None:
            found.update(self.store.request_rows(self.name, missing, version=self.version))
            missing = [rid for rid in ids if rid not in found]
            # Another worker may hold them unwritten for up to one flush interval: look again until
            # they appear or two intervals have passed.
            deadline = time.monotonic() + 2 * self.store.options.flush_interval
            while missing and time.monotonic() < deadline:
                time.sleep(self.store.options.flush_interval / 4)
                found.update(self.store.request_rows(self.name, missing, version=self.version))
                missing = [rid for rid in ids if rid not in found]
        return found

    def labelled(self, from_store: bool, limit: int | None = None) -> Labelled:
        """The newest ``limit`` (``window``) labelled rows, oldest first: every worker's from the store, else this process's."""
        limit = limit or self.window
        if self.store is not None and from_store:
            try:
                stored = self.store.labelled(self.name, limit, version=self.version)
                received, replaced = self.store.label_totals(self.name, version=self.version)
            except StoreError:
                pass
            else:
                outputs, labels, delays = stored.outputs, stored.labels, stored.delays
                # at least what joined
                return Labelled(outputs, labels, delays, max(received, len(outputs)), replaced, stored.matrix)
        with self._lock:
            if self._joined is not None and self._joined[:2] == (self._changes, limit):
                return self._joined[2]
            changes = self._changes
            chain = self._moved_chain(limit)
            walked = self._walk(limit) if chain is None else None
            received, replaced = self._label_counts
        if chain is None:  # put together outside the lock: 2,000 one-row blocks take ~1 ms
            chain = Chain.of(limit, changes, *(walked or ([], [], [])))
            with self._lock:
                if self._changes == changes:
                    self._keep(chain)
        outputs, labels, delays, matrix = chain.answer()
        result = Labelled(outputs, labels, delays, received, replaced, matrix)
        with self._lock:
            self._joined = (changes, limit, result)
        return result

    def _walk(self, limit: int) -> tuple[list[str], list[int], list[Block]]:
        """The newest labelled rows: requests from the newest back, each one's block of rows, until ``limit``
        (it joined and sorted every label kept, up to PREDICTIONS_KEPT, on every health check); their ids,
        sequences and blocks, oldest first. Under the lock."""
        blocks: list[Block] = []
        sequences: list[int] = []
        kept: dict[str, Block] = {}
        rows = 0
        for rid, (sequence, ts, _, outs) in reversed(self._predictions.items()):
            labelled_rows = self._labels.get(rid)
            if not labelled_rows or outs is None:  # labels are kept here only without a store, outputs too
                continue
            block = self._blocks.get(rid) or labelled_block(labelled_rows, ts, outs)
            kept[rid] = block
            blocks.append(block)
            sequences.append(sequence)
            rows += len(block.outputs)
            if rows >= limit:
                break
        self._blocks = kept
        return list(kept)[::-1], sequences[::-1], blocks[::-1]

    def _moved_chain(self, limit: int) -> Chain | None:
        """The last join's chain moved on to the requests labelled since, when nothing else that it read changed
        (a label for an older request, a request forgotten within it): one new request is one block to join, not
        2,000 one-row requests walked and put together again. None when the whole walk is needed. Under the lock."""
        last = self._chain
        if last is None or last.limit != limit:
            return None
        for number, sequence in self._touched:
            if number > last.changes and sequence <= last.newest and not (last.full and sequence < last.oldest):
                return None
        new: list[tuple[str, int, Block]] = []
        for rid, (sequence, ts, _, outs) in reversed(self._predictions.items()):
            if sequence <= last.newest:
                break
            labelled_rows = self._labels.get(rid)
            if labelled_rows and outs is not None:
                new.append((rid, sequence, self._blocks.get(rid) or labelled_block(labelled_rows, ts, outs)))
        new.reverse()
        chain = last.moved(self._changes, new)
        gone = len(last.ids) + len(new) - len(chain.ids)  # the oldest blocks, pushed out
        for rid in last.ids[:gone]:
            self._blocks.pop(rid, None)
        self._blocks.update((rid, block) for rid, _, block in new[max(gone - len(last.ids), 0) :])
        self._keep(chain)
        return chain

    def _touch(self, sequence: int) -> None:
        """Note a change to the labels or prediction of the request ``sequence`` (under the lock)."""
        if self._chain is None:
            return
        if len(self._touched) >= TOUCHES_KEPT:  # no join for long: the next one walks, nothing to compare with
            self._chain, self._touched = None, []
            return
        self._touched.append((self._changes, sequence))

    def _keep(self, chain: Chain) -> None:
        self._chain = chain
        self._touched = [event for event in self._touched if event[0] > chain.changes]
