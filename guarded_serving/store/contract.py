"""What a log store backend must do: the contract the monitor, the history and the offline report use.

A backend implements :class:`StoreReader` (a reader of a store another process writes, possibly limited
to what was logged since a time) and :class:`Store` (a reader that also writes). ``tests/store/``
runs every rule below against each backend: add yours to the ``backend`` fixture there.

Keys
    Everything is scoped by (model, version). ``version`` is None for an unversioned model, which is
    a model version of its own: reads of (m, None) never see (m, "1")'s rows and the reverse. A backend
    that keys by text uses ``''`` for None (:func:`~guarded_serving.store.records.version_key`); a
    version is never ``''`` itself. Several services and versions may share one store: nothing a
    store does (reads, retention) touches another (model, version)'s rows.

Requests
    :meth:`Store.put` appends one request (never deduplicated: a client may send its own request id
    twice, and both are logged). ``inputs`` / ``outputs`` hold one entry per row of an answered request
    (``inputs_json`` / ``outputs_json``, when given, are that same JSON text, to be stored as is); when
    only inputs are stored, outputs are stored as one ``null`` per row. Log order is the order in which
    the writer stored the requests: ids that increase (``request_log``'s ``id``).
    ``totals`` are running counts that include requests whose record was dropped (also counted in
    ``dropped_requests`` / ``dropped_rows``); ``rows`` counts only answered (``ok``) rows.

Ordering
    Newest first: ``recent_requests`` and ``logged_rows`` (log order), ``labelled`` (the prediction's
    log order, then its row, both descending), ``snapshots`` (their time), ``window_chunks`` (the order
    they were written). ``warnings``: most counted first. ``request_log``: the newest ``limit`` after
    ``after_id``, returned oldest first. ``saved_versions``, ``model_versions``: sorted by (name,
    version), None as ``''``.

Labels
    ``write_feedback`` stores (request_id, row, label JSON) for a model version in one step and returns
    (new, replaced): a label for a (request_id, row) that has one replaces it (counted in ``relabels``,
    also when the same call names it twice). A label joins the **newest answered request with its id**
    in that model version, and only a row whose output was stored (a request sampled out has none):
    ``labelled`` returns only such rows. ``request_rows`` answers, per id among those asked, the rows of
    the newest answered request with it (requests with no rows and unknown ids are absent).

Consistency
    ``put`` and ``save_model`` return at once; what they queued is visible to every reader (in every
    process) within about one ``flush_interval``, and as soon as ``flush()`` returns True. Totals and
    window chunks move together with the requests that made them. ``write_feedback`` and
    ``write_snapshot`` are synchronous: visible to all when they return. ``write_snapshot`` keeps the
    first snapshot of a (model, version, slot) and answers whether it was this one (idempotent across
    workers); ``save_model`` keeps the last one saved.

Retention (the writer's job, about every 10 s, and on ``prune()``)
    Only for the (model, version)s this store has written: requests beyond the newest
    ``StoreOptions.max_rows`` rows (a request without rows counts as one) or older than ``max_age``
    seconds are deleted, oldest first, with the labels that joined them (unless another request of the
    version has the same id); labels, warnings and snapshots older than ``max_age`` too. Always:
    warnings beyond the ``WARNINGS_KEPT`` most recently seen, snapshots beyond ``write_snapshot``'s
    ``keep``, and window chunks older than the newest ``StoreOptions.window`` rows.

Errors
    A read or a synchronous write that fails raises :class:`~guarded_serving.errors.StoreError` (a
    backend maps its own errors to it); the caller falls back on its memory. ``open``, ``put``,
    ``flush`` and ``close`` never raise: a store that cannot be reached is reported by ``stats()``
    and retried while records wait in memory (bounded by ``capacity`` rows and ``capacity_bytes``),
    and a record that finds no room is dropped and counted. Stored content never makes a read fail: a
    count that is not a whole number reads as 0, a window chunk or saved setting that does not decode
    is skipped or read as empty, and JSON columns are returned as stored for the caller to decode.

Replicas
    A backend shared by several hosts (PostgreSQL) has each writing process post a heartbeat for every
    model version it saved (``save_model``) about every ``HEARTBEAT`` seconds while it runs, with its
    host, pid, library version, environment fingerprint and writer state, and remove it when it closes;
    ``replicas`` reads them. A replica not seen for ``STALE_AFTER`` seconds is stale (killed, or cut off).

``since``
    A reader opened with ``since`` (epoch seconds) limits every request-based read to requests logged
    at or after it: totals and label totals are then counted from the rows in range, warnings are those
    last seen in range. Unlimited: ``request_rows``, ``snapshots``, ``window_chunks`` (the window as
    the service keeps it), the saved models and versions.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any, Self

from ..drift.window import Chunk
from ..environment import WarningRecord
from .options import StoreOptions
from .records import LabelledRow, Replica, RequestRecord, SavedModel, StoreStats, Totals

__all__ = ["HEARTBEAT", "STALE_AFTER", "Store", "StoreReader", "StoreWriter"]

HEARTBEAT = 2.0  # seconds between two heartbeats of a replica (see "Replicas")
STALE_AFTER = 10.0  # seconds without one after which a replica is stale: five missed beats


class StoreReader(abc.ABC):
    """The reads a monitor's health, history and feedback make, and the offline report's replay."""

    path: str  # where the store is, as messages name it (a file path, or a URL without its password)
    since: float | None = None  # epoch seconds: reads cover requests logged since then (None: all)

    # -- per model version ---------------------------------------------------------------------
    @abc.abstractmethod
    def totals(self, model: str, *, version: str | None = None) -> Totals:
        """Running counts (see "Requests"), or zeros for a model version never seen."""

    @abc.abstractmethod
    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        """(labels received, labels replaced)."""

    @abc.abstractmethod
    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` requests, newest first, as stored: ``request_id``, ``status``, ``rows``,
        ``latency_ms``, ``stages`` (JSON text), ``failed_stage``, ``problem_features`` (JSON text or None)."""

    @abc.abstractmethod
    def request_rows(self, model: str, request_ids: Sequence[str], *, version: str | None = None) -> dict[str, int]:
        """Rows of the newest answered request with each id among ``request_ids`` (see "Labels")."""

    @abc.abstractmethod
    def labelled(self, model: str, limit: int, *, version: str | None = None) -> list[LabelledRow]:
        """The newest ``limit`` labelled rows whose output was stored (see "Labels"), newest first."""

    @abc.abstractmethod
    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[WarningRecord, ...]:
        """Distinct warnings with their running counts, most counted first."""

    @abc.abstractmethod
    def snapshots(self, model: str, since: float | None, limit: int, *, version: str | None = None) -> list[str]:
        """The newest ``limit`` health snapshots (JSON text) taken at or after ``since``, newest first."""

    @abc.abstractmethod
    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        """The stored drift window, newest chunk first, read lazily (a caller stops once it has enough)."""

    # -- the fleet -------------------------------------------------------------------------------
    def replicas(self, model: str, *, version: str | None = None) -> list[Replica]:
        """The serving processes that write this model version, by their last heartbeat, oldest started first.
        A store shared across hosts keeps them (see "Replicas"); an embedded one may keep none."""
        return []

    # -- what the store holds --------------------------------------------------------------------
    @abc.abstractmethod
    def saved_versions(self) -> list[SavedModel]:
        """Every model version recorded by ``save_model``, sorted by (name, version)."""

    @abc.abstractmethod
    def model_versions(self) -> list[tuple[str, str | None]]:
        """Every (model, version) that logged a request or saved its reference, sorted."""

    def saved_models(self) -> dict[str, SavedModel]:
        """Per model name, the version saved last. :meth:`saved_model` reads a given version's."""
        return {saved.name: saved for saved in sorted(self.saved_versions(), key=lambda s: s.saved_at)}

    def saved_model(self, name: str, version: str | None) -> SavedModel | None:
        return next((s for s in self.saved_versions() if s.name == name and s.version == version), None)

    def model_names(self) -> list[str]:
        """Every model that logged a request or saved its reference, sorted."""
        return sorted({name for name, _ in self.model_versions()})

    # -- the request log, as an offline report replays it ----------------------------------------
    @abc.abstractmethod
    def request_log(
        self, model: str | None = None, status: str | None = None, after_id: int = 0, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` requests after ``after_id`` (every model's unless one is named), oldest
        first: ``id``, ``ts``, ``model``, ``request_id``, ``status``, ``rows``, ``latency_ms``,
        ``failed_stage``, ``error``, as stored."""

    @abc.abstractmethod
    def row_counts(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        """(rows answered, rows of those whose inputs were stored)."""

    @abc.abstractmethod
    def logged_rows(self, model: str, *, version: str | None = None) -> Iterator[tuple[Any, Any]]:
        """(inputs, outputs) of every answered request whose inputs were stored, newest first, as
        stored (JSON arrays, one entry per row; outputs may be None), read lazily."""

    @abc.abstractmethod
    def written_and_dropped(self) -> tuple[int, int]:
        """Every model's rows logged (answered ones), and rows answered but dropped from the log (a
        running count, 0 for a reader limited by ``since``)."""

    @abc.abstractmethod
    def close(self, timeout: float = 10.0) -> bool:
        """Release the connections; a store also writes what is pending first (False: not in time)."""


class StoreWriter(abc.ABC):
    """The writes: the request path's buffered ones, and the synchronous ones (labels, snapshots)."""

    options: StoreOptions
    replica: str | None = None  # this process's name among ``replicas()``, in a store that keeps them

    @abc.abstractmethod
    def open(self) -> Self:
        """Start writing (create what is missing). Never raises: a fault is reported by :meth:`stats`."""

    @abc.abstractmethod
    def close(self, timeout: float = 10.0) -> bool:
        """Write what is pending and stop; False when it did not finish within ``timeout`` seconds."""

    @abc.abstractmethod
    def put(self, record: RequestRecord) -> bool:
        """Queue a request; False when it was dropped (and counted): no room, or not writable."""

    @abc.abstractmethod
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is stored; False when not within ``timeout``."""

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """The writer's state as this process sees it."""

    @abc.abstractmethod
    def save_model(self, name: str, version: str | None, reference: str, settings: dict[str, Any]) -> None:
        """Record a model version's reference (JSON text) and settings, with the next write; written
        again should the store be found replaced, so that it can always be judged offline."""

    @abc.abstractmethod
    def write_feedback(self, model: str, items: Sequence[tuple[str, int, str]], *, version: str | None = None) -> tuple[int, int]:
        """Store labels (request_id, row, label JSON) at once; return (new, replaced)."""

    @abc.abstractmethod
    def write_snapshot(
        self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int, *, version: str | None = None
    ) -> bool:
        """Store a health snapshot unless its slot has one; True when stored. Keeps the newest ``keep``."""

    @abc.abstractmethod
    def prune(self) -> int:
        """Apply retention now (see "Retention"); return the requests deleted."""

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(StoreReader, StoreWriter):
    """A log store: a reader of everything (``since`` None) that also writes."""
