"""The SQLite label join's blocks: one request's labelled rows as stored, and as joined (a :class:`~guarded_serving.chain.Block`).

A read of the join (``labels.py``) hands back the newest ``limit`` labelled rows, oldest first, from the chain of
blocks the last read kept (``guarded_serving/chain.py``). Each block is built here from the rows SQLite returned for
its request, once: kept with them, it is reused while the query returns the same rows for the request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any

import numpy as np

from ...chain import BAD, Block
from ...performance import plain_matrix

__all__ = ["StoredBlock", "block_of"]


@dataclasses.dataclass(frozen=True, eq=False)
class StoredBlock:
    """One request's labelled rows as stored (``rows``: newest row first), its time ``ts`` and decoded outputs
    ``outs``, and its ``block`` of joined rows, oldest row first: the rows that have an output, with their output,
    decoded label (``BAD`` when it does not decode) and delay in seconds (NaN where a time is not known)."""

    rows: list[Any]
    ts: Any
    outs: list[Any]
    block: Block

    @property
    def request(self) -> int:
        """The stored request's id (its ``requests.id``)."""
        return int(self.rows[0][0])

    @property
    def request_id(self) -> str:
        """The request id its labels name."""
        return str(self.rows[0][4])


def block_of(rows: list[Any], ts: Any, outs: list[Any], seconds: dict[Any, float]) -> StoredBlock:
    """``rows`` (id, row, label, label time, request id; last row first) of one request joined to its outputs."""
    kept = rows if rows[0][1] < len(outs) else [r for r in rows if r[1] < len(outs)]  # the first fits: all do
    kept = kept[::-1]
    labels = _decode([r[2] for r in kept])
    # epoch seconds as the monitor always read them, parsed once per distinct time, not twice per row
    for text in {ts, *(r[3] for r in kept)} - seconds.keys():
        seconds[text] = _seconds(text)
    outputs = [outs[r[1]] for r in kept]
    bad = any(label is BAD for label in labels)
    # read once per request, not per health check (converting a window's 2,000 outputs cost ~0.8 ms each time);
    # none when a label does not decode: the answer leaves that row out, and reads the outputs again
    matrix = plain_matrix(outputs) if outputs and not bad else None
    delays = np.array([seconds[r[3]] for r in kept], dtype=float) - seconds[ts]  # NaN where a time is not known
    return StoredBlock(rows, ts, outs, Block(outputs, labels, delays, matrix))


def _decode(texts: list[Any]) -> list[Any]:
    """JSON texts decoded, ``BAD`` for one that does not decode.

    When no text holds a comma, one ``json.loads`` of them all as an array (about 20x faster than one call each):
    its commas are then the ones joining the texts, so an array of as many values as texts holds each text as
    one value, which is what that text decodes to alone; any other outcome (a text that is not JSON, or texts that
    join into fewer values) and the texts are decoded one by one. (SQLite's ``json_valid``, asked of each label
    in the query, used to decide this: a full join of 2,000 labels read in 4.7 ms without it, 5.8 ms with it.)"""
    try:
        joined = ",".join(texts)
    except TypeError:  # a label stored as a number or NULL, not text
        return [_loads(text) for text in texts]
    if joined.count(",") == len(texts) - 1:
        try:
            decoded = json.loads("[" + joined + "]")
        except ValueError:  # one of them does not decode
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
        return BAD
