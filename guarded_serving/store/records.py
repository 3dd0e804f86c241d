"""The typed records that cross the store contract, in both directions.

A monitor hands the store a :class:`RequestRecord` per request; the store answers with
:class:`Totals`, :class:`StoreStats`, :class:`SavedModel` and :class:`LabelledRows`. Every backend
speaks these, so nothing above the store knows which one it runs on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from ..drift.window import Chunk
from ..environment import WarningRecord

__all__ = [
    "LabelledRows",
    "Replica",
    "RequestRecord",
    "RequestStatus",
    "SavedBaseline",
    "SavedModel",
    "StoreStats",
    "Totals",
    "iso_time",
    "mended",
    "version_key",
    "version_of",
]

RequestStatus = Literal["ok", "rejected", "error"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What is logged for one request. ``inputs``/``outputs`` hold one entry per row when answered."""

    request_id: str
    ts: float
    model: str
    version: str | None
    status: RequestStatus
    rows: int
    latency_ms: float
    stages: dict[str, float] = field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None
    inputs: Sequence[Any] | None = None
    outputs: Sequence[Any] | None = None
    warnings: tuple[WarningRecord, ...] = ()
    window: Chunk | None = None  # the rows encoded for the drift window
    inputs_json: str | None = None  # ``inputs`` as JSON text already (the client's own), written as is
    problem_features: tuple[str, ...] = ()  # features named by a rejected request's values of the wrong type
    outputs_json: str | None = None  # ``outputs`` as JSON text already (from the answer), written as is
    missing_features: tuple[str, ...] = ()  # ... and by its missing values (null) refused
    range_features: tuple[str, ...] = ()  # ... and by its numbers refused as far beyond the reference's


@dataclass(frozen=True, slots=True)
class Totals:
    """Running counts of a model version. Requests whose record was dropped from the log (a full buffer,
    an unwritable record) are counted in the totals too, and in ``dropped_requests`` / ``dropped_rows``."""

    requests: int = 0
    rows: int = 0
    rejected: int = 0
    errors: int = 0
    dropped_requests: int = 0
    dropped_rows: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    """The writer's state, as seen by this process."""

    path: str
    pending: int
    written: int
    dropped: int
    capacity: int
    last_error: str | None
    last_error_at: str | None
    last_flush_at: str | None
    flush_interval: float
    replaced: int = 0
    last_replaced_at: str | None = None
    read_only: bool = False  # a reader of another process's file (an offline report), not a writer
    pending_bytes: int = 0  # memory the pending records hold
    capacity_bytes: int = 0
    waits: int = 0  # requests that waited for room in a full buffer (back-pressure), and for how long in all
    waited_s: float = 0.0
    last_wait_at: str | None = None
    opened: bool = True  # False until the file has been opened once (a fault at start-up is being retried)
    wal_replaced: int = 0  # times the write-ahead log file was found deleted or replaced
    last_wal_replaced_at: str | None = None


@dataclass(frozen=True, slots=True)
class SavedModel:
    """What a monitor wrote about its model when it started: enough to judge the file again offline."""

    name: str
    version: str | None
    saved_at: str
    reference: str  # the Reference as JSON text
    settings: dict[str, Any]  # the Monitor's window, methods, redact... (see Monitor.settings)


@dataclass(frozen=True, slots=True)
class LabelledRows:
    """Labels joined to the predictions they label, oldest first (in the predictions' log order, then row):
    each row's output and label decoded from JSON, and the seconds from prediction to label of the rows
    whose two times are known (``delays`` may be shorter than ``outputs``). ``matrix``: the outputs as
    :func:`~guarded_serving.performance.plain_matrix` reads them, when the backend kept it (None: not known,
    or not plain), so that scoring the labelled rows does not convert a window's outputs again."""

    outputs: list[Any]
    labels: list[Any]
    delays: np.ndarray  # float seconds
    matrix: np.ndarray | None = None


class SavedBaseline(NamedTuple):
    """A baseline a monitor adopted from served traffic (see ``baselines.py``), as the store keeps it."""

    since: str  # when it was kept (see the contract's "Times")
    rows: int  # the rows it was taken from
    document: str  # the baseline itself, JSON text


@dataclass(frozen=True, slots=True)
class Replica:
    """One serving process's last heartbeat, as a store shared by a fleet keeps it (see ``StoreReader.replicas``).

    ``name`` is ``host:pid`` (the host is the pod's name in Kubernetes); ``library`` the guarded-serving
    version; ``fingerprint`` its environment as JSON text (:class:`~guarded_serving.environment.Fingerprint`);
    ``age`` seconds since it was last seen, on the database's clock; the rest its writer's state then.
    """

    name: str
    host: str
    pid: int
    library: str
    fingerprint: str
    started_at: str
    last_seen: str
    age: float
    pending: int
    written: int
    dropped: int
    capacity: int
    last_error: str | None
    last_error_at: str | None
    warnings: int


def mended(text: str) -> str:
    """``text`` as Unicode text every store can hold: a lone surrogate (a JSON escape a client can send, and a
    model's error message can quote, which UTF-8 cannot encode: the record would be refused and dropped)
    becomes U+FFFD; a pair of surrogates becomes the character it stands for. Plain text is returned as it is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def version_key(version: str | None) -> str:
    """A version as everything keyed by model version keys it: ``''`` for an unversioned model."""
    return version or ""


def version_of(key: str) -> str | None:
    """The version a key names: None for ``''``, the unversioned model."""
    return key or None


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")  # the last second written, and its text


def iso_time(ts: float) -> str:
    """Epoch seconds as the store's time text: ISO 8601 in UTC with milliseconds (it sorts as it compares).

    The text of ``datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")``, with the date and time
    of day reused while the second is the same: the writer times every request it writes, and building a
    datetime per request cost it 2.3 µs of its 20 (0.4 µs so). The microseconds are rounded half to even
    as datetime rounds them, then cut to milliseconds as isoformat cuts them."""
    global _second
    fraction, whole = math.modf(ts)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    second, text = _second
    if second != whole:
        second = int(whole)
        text = dt.datetime.fromtimestamp(second, dt.UTC).isoformat(timespec="seconds")[:-6]  # less "+00:00"
        _second = (second, text)  # one tuple: a thread reads an old pair or a new one, never half of each
    return f"{text}.{micros // 1000:03d}+00:00"
