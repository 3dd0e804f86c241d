"""The pipeline summary of the recent requests, moved on as they move instead of summarised afresh.

A health check summarises the 1,000 recent requests (:func:`~guarded_serving.stages.summarise`): each stage's
durations gathered from every request's stage timings and sorted for their percentiles, ~1 ms for three stages,
on every check after new traffic, while one new request changed one value per list. :class:`RecentTally` keeps
each stage's durations sorted and, when the recent requests are the last ones moved along (new ones at one end,
the oldest gone from the other: a memory recorder lists them oldest first, a store newest first), takes the
departed requests' values out and puts the arrived ones in. The summary is the one ``summarise`` gives, figure
for figure (the same sorted values; the stages in the order they are first seen in the list); anything else is
summarised afresh.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Sequence

from .stages import BATCH_SIZE, PipelineSummary, RecentRequest, stage_summary, summarise

__all__ = ["RecentTally"]

MOVED_AT_MOST = 1 / 4  # a move of more requests than this share of the list is summarised afresh


class RecentTally:
    """:func:`~guarded_serving.stages.summarise` for a caller that asks again as the recent requests move (a
    health check per request); bounded by the list it was last given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the periodic evaluator and a health request may ask at once
        self._last: list[RecentRequest] = []
        self._sorted: dict[str | None, list[float]] = {}  # per stage (and None: the requests' latencies), sorted
        self._statuses: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()  # failed stages of requests that errored

    def summary(self, recent: list[RecentRequest]) -> PipelineSummary:
        with self._lock:
            moved = _moved(self._last, recent)
            if moved is None or not self._moved_on(*moved):
                self._tally(recent)
            self._last = recent
            return self._summary(recent)

    def _tally(self, recent: Sequence[RecentRequest]) -> None:
        self._sorted, self._statuses, self._failures = {}, Counter(), Counter()
        for request in recent:
            self._count(request, 1, placed=False)
        self._sorted = {name: sorted(values) for name, values in self._sorted.items()}

    def _moved_on(self, arrived: Sequence[RecentRequest], departed: Sequence[RecentRequest]) -> bool:
        """Take ``departed`` out and put ``arrived`` in; False (the tally half done: summarise afresh) when a value
        to take out is not there."""
        for request in departed:
            if not self._count(request, -1):
                return False
        for request in arrived:
            self._count(request, 1)
        return True

    def _count(self, request: RecentRequest, sign: int, placed: bool = True) -> bool:
        """Count one request in (``sign`` 1; ``placed``: each value where it sorts, else appended, to sort once after)
        or out (-1; False when one of its values is not there)."""
        _add(self._statuses, request.status, sign)
        if request.status == "error" and request.failed_stage is not None:
            _add(self._failures, request.failed_stage, sign)
        timings = [(None, request.latency_ms), *((n, v) for n, v in request.stages.items() if n != BATCH_SIZE)]
        for name, value in timings:
            values = self._sorted.setdefault(name, [])
            if sign > 0:
                if placed:
                    insort(values, value)
                else:
                    values.append(value)
                continue
            at = bisect_left(values, value)
            if at == len(values) or values[at] != value:
                return False
            del values[at]
            if not values:  # a stage no recent request has any more (names may come and go)
                del self._sorted[name]
        return True

    def _summary(self, recent: list[RecentRequest]) -> PipelineSummary:
        if not recent:
            return summarise(recent)
        errors, rejected = self._statuses["error"], self._statuses["rejected"]
        stages = tuple(
            stage_summary(name, self._sorted[name], self._failures.get(name, 0)) for name in _first_seen(recent, self._sorted)
        )
        return PipelineSummary(len(recent), errors, rejected, stage_summary("total", self._sorted[None], errors), stages)


def _add(counts: Counter[str], key: str, sign: int) -> None:
    counts[key] += sign
    if not counts[key]:  # none left: names may come and go, the tally holds only the list's
        del counts[key]


def _first_seen(recent: list[RecentRequest], tallied: dict[str | None, list[float]]) -> list[str]:
    """The stages that have values, in the order the list first shows them (as ``summarise`` lists them): the
    first few requests show them all, as a rule."""
    present = {name for name, values in tallied.items() if values and name is not None}
    order: dict[str, None] = {}
    for request in recent:
        for name in request.stages:
            if name in present:
                order[name] = None
        if len(order) == len(present):
            break
    return list(order)


def _moved(last: list[RecentRequest], recent: list[RecentRequest]) -> tuple[list[RecentRequest], list[RecentRequest]] | None:
    """(arrived, departed) when ``recent`` is ``last`` moved along, new requests at one end and the oldest gone from
    the other (either order of listing); None otherwise, or when more than MOVED_AT_MOST of it moved."""
    if not last or not recent:
        return None
    most = int(MOVED_AT_MOST * len(recent))
    # newest first: the arrived ones in front, the departed ones after what is kept
    new = next((k for k in range(min(len(recent), most + 1)) if recent[k] is last[0]), None)
    if new is not None:
        kept = len(recent) - new
        if kept <= len(last) and recent[new:] == last[:kept] and len(last) - kept <= most:
            return recent[:new], last[kept:]
    # oldest first: the departed ones were in front of what is kept, the arrived ones come after it
    gone = next((k for k in range(min(len(last), most + 1)) if last[k] is recent[0]), None)
    if gone is not None:
        kept = len(last) - gone
        if kept <= len(recent) and recent[:kept] == last[gone:] and len(recent) - kept <= most:
            return recent[kept:], last[:gone]
    return None
