"""What a log store backend must do: the contract the monitor, the history and the offline report use.

A backend implements :class:`StoreReader` (a reader of a store another process writes, possibly limited
to what was logged since a time) and :class:`Store` (a reader that also writes), and is chosen by
:func:`~guarded_serving.store.open_store` / :func:`~guarded_serving.store.open_reader` from a URL.
``tests/store/test_contract.py`` runs every rule below against each backend: add yours to ``BACKENDS``
in ``tests/store/conftest.py``. Everything a backend hands back is a value of ``records.py`` or plain
Python (str, int, float, None, lists and dicts of them): nothing of the backend's own types leaks out.

Keys
    Everything is scoped by (model, version). ``version`` is None for an unversioned model, which is
    a model version of its own: reads of (m, None) never see (m, "1")'s rows and the reverse. A backend
    that keys by text uses ``''`` for None (:func:`~guarded_serving.store.records.version_key`); a
    version is never ``''`` itself. Several services and versions may share one store (one file, one
    database): nothing a store does (reads, retention) touches another (model, version)'s rows.

Times
    Records carry epoch seconds (float). A time handed back as text (``request_log``'s ``ts``,
    ``SavedModel.saved_at``) is :func:`~guarded_serving.store.records.iso_time`'s: ISO 8601 in UTC
    with milliseconds, ``2023-11-14T22:13:20.000+00:00``. Times are kept to the millisecond; every
    comparison with a time ("since", "older than") is at that precision, a bound included.

Requests
    :meth:`Store.put` appends one request; it is never deduplicated (a client may send its own request
    id twice: both are logged, and count twice). ``inputs`` / ``outputs`` hold one entry per row of an
    answered request; ``inputs_json`` / ``outputs_json``, when given, are that same JSON text, stored
    and handed back character for character. Otherwise they are stored as compact JSON arrays, NaN and
    infinity as ``null``; when only inputs are given, outputs are stored as one ``null`` per row.
    ``latency_ms`` and each stage's milliseconds are stored rounded to 3 decimals; ``stages`` is handed
    back as the JSON text of {stage: ms}; ``problem_features`` as the JSON text of a list: the names of
    values of the wrong type, then ``{"missing": name}`` per refused null and ``{"range": name}`` per number
    refused as far beyond the reference's; None when there were none. **Log order** is the order in which
    the writer stored the requests: a request id (``request_log``'s ``id``) that is a positive integer,
    unique in the store and increasing in log order across every model.
    ``totals`` are running counts of a model version: ``requests`` every request put (``ok``,
    ``rejected`` and ``error`` ones), ``rows`` only answered (``ok``) rows, ``rejected``, ``errors``; a
    request whose record was dropped before it was written (no room, not encodable) is counted in them
    too, and also in ``dropped_requests`` / ``dropped_rows``. Retention never lowers them.

Ordering
    Newest first: ``recent_requests``, ``recent_request_marks`` and ``logged_rows`` (log order),
    ``snapshots`` (their time), ``window_chunks`` (the order in which they were written). ``labelled``: the newest ``limit`` rows
    by (log order of the prediction, row), handed back oldest first. ``warnings``: most counted first
    (ties in any order). ``request_log``: the newest ``limit`` after ``after_id``, handed back oldest
    first. ``saved_versions``, ``model_versions``: sorted by (name, version), None sorting as ``''``.

Labels
    ``write_feedback`` stores (request_id, row, label JSON text) for a model version in one transaction
    and returns (new, replaced): a label for a (request_id, row) that has one replaces it (label and
    time; counted in ``relabels`` and not in ``labels``), also when the same call names it twice (the
    last one wins). It stores what it is given: the caller has checked the ids and rows.
    **The join**: a label joins the **newest answered** (``ok``) **request with its id** in its model
    version, and only a row whose output was stored: the request's outputs are a JSON array with an
    entry at that row (which may be ``null``). A label that joins nothing (an unknown id, a rejected
    request, a request logged without outputs, a row beyond them) is kept and counted but never
    handed back by ``labelled``. ``request_rows`` answers, per id among those asked (any number of
    them), the rows of the newest answered request with it that has rows; other ids are absent.

Consistency
    ``put`` and ``save_model`` return at once; what they queued is visible to every reader (in every
    process) within about one ``flush_interval``, and as soon as ``flush()`` returns True. A request,
    its totals, its warnings and its window chunk become visible together (one transaction). A store
    not opened yet keeps what it is given (within its capacity) and writes it once opened.
    ``write_feedback`` and ``write_snapshot`` are synchronous: visible to every reader when they return.
    ``write_snapshot`` keeps the first snapshot of a (model, version, slot) and answers whether it was
    this one (so that several workers store one per slot); ``save_model`` keeps the last one saved.

Baselines
    ``save_baseline`` keeps a baseline adopted from served traffic under (model, version, reference
    digest, kind), synchronously, unless one is kept under that key already: the first worker to adopt
    one wins, and every worker then reads that one with ``baseline``. A kept baseline never changes
    and retention never deletes it. A store written before baselines existed reads as having none.

Retention (the writer's job, about every 10 s, and all of it at once on ``prune()``)
    Only for the (model, version)s this store has written (a request, counted or dropped) or saved:
    their requests beyond the newest ``StoreOptions.max_rows`` rows (a request without rows counts as
    one) or older than ``max_age`` seconds are deleted, oldest first, with the labels of the requests
    deleted (unless another request of the version still has the same id); their labels, warnings
    (by when last seen) and health snapshots older than ``max_age`` too. Always: warnings beyond the
    ``WARNINGS_KEPT`` most recently seen, and the window's oldest chunks: it keeps the fewest newest
    chunks that hold at least ``StoreOptions.window`` rows (the newest rows are never pruned). When a
    snapshot is written, its version's snapshots beyond ``keep`` (the oldest) and older than
    ``max_age`` are deleted.

Errors
    A read or a synchronous write that fails raises :class:`~guarded_serving.errors.StoreError` (a
    backend maps its own errors to it); the caller falls back on its memory. ``open``, ``put``,
    ``flush`` and ``close`` never raise: a store that cannot be reached is reported by ``stats()``
    (``last_error``, ``opened`` False until it was reached once) and retried while records wait in
    memory (bounded by ``capacity`` rows and ``capacity_bytes``), and a record that finds no room is
    dropped and counted. Stored content never makes a read fail: a count that is not a whole number
    reads as 0, a window chunk or saved setting that does not decode is skipped or read as empty, a
    labelled row whose output or label does not decode is skipped, and other JSON columns are handed
    back as stored for the caller to decode.

Replicas
    A backend shared by several hosts (PostgreSQL) has each writing process post a heartbeat for every
    model version it saved (``save_model``) about every ``HEARTBEAT`` seconds while it runs, with its
    host, pid, library version, environment fingerprint and writer state, and remove it when it closes;
    ``replicas`` reads them. A replica not seen for ``STALE_AFTER`` seconds is stale (killed, or cut off).

``since``
    A reader opened with ``since`` (epoch seconds) limits every request-based read to requests logged
    at or after it (their ``ts``): ``totals`` are then counted from the requests in range (nothing
    dropped), ``recent_requests`` and its marks, ``labelled`` (by the prediction's time), ``request_log``,
    ``row_counts``, ``logged_rows`` and ``written_and_dropped`` (0 dropped) cover only them;
    ``label_totals`` counts the labels stored in range (by the label's time) and their replacements;
    ``warnings`` are those last seen in range. Not limited: ``request_rows``, ``snapshots`` (they
    take their own ``since``), ``window_chunks`` (the window as the service keeps it), the saved
    models, the baselines and the model versions.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any, Self

from ..drift.window import Chunk
from ..environment import WarningRecord
from .options import StoreOptions
from .records import LabelledRows, Replica, RequestRecord, SavedBaseline, SavedModel, StoreStats, Totals

__all__ = ["HEARTBEAT", "STALE_AFTER", "WARNINGS_KEPT", "Store", "StoreReader", "StoreWriter"]

WARNINGS_KEPT = 1000  # distinct warnings kept per model version, the most recently seen
HEARTBEAT = 2.0  # seconds between two heartbeats of a replica (see "Replicas")
STALE_AFTER = 10.0  # seconds without one after which a replica is stale: five missed beats


class StoreReader(abc.ABC):
    """The reads a monitor's health, history and feedback make, and the offline report's replay."""

    path: str  # where the store is, as messages name it (a file path, or a URL without its password)
    since: float | None = None  # epoch seconds: reads cover requests logged since then (None: all)

    # -- per model version ---------------------------------------------------------------------
    @abc.abstractmethod
    def totals(self, model: str, *, version: str | None = None) -> Totals:
        """Running counts (see "Requests"; with ``since``, counted from the requests in range), or zeros
        for a model version never seen."""

    @abc.abstractmethod
    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        """(labels stored, labels replaced) by ``write_feedback``, joined or not; (0, 0) when none."""

    @abc.abstractmethod
    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` requests of every status, newest first, as dicts with exactly these keys:
        ``request_id``, ``status``, ``rows``, ``latency_ms``, ``stages`` (JSON text), ``failed_stage`` (or
        None), ``problem_features`` (JSON text, or None)."""

    @abc.abstractmethod
    def recent_request_marks(
        self, model: str, limit: int, *, version: str | None = None, after: int = 0
    ) -> list[tuple[Any, ...]]:
        """The requests of ``recent_requests``, in its order, each as (row id, ``status``, ``latency_ms``,
        ``failed_stage``): what tells a row read before from a new one, or one whose outcome changed, without
        reading its JSON (the row id is the request's place in the log; the SQLite backend reads them from an
        index alone). With ``after``, only those whose row id is greater."""

    def request_edits(self) -> int | None:
        """A number that changes whenever any stored request is changed in place or deleted, by any writer,
        and that new requests leave as it is; None when the store keeps none. Where it is kept, a request is
        also never stored with a row id below one already visible to a reader: a reader that saw the number
        unchanged knows the recent requests it read before are as they were, and asks only for those ``after``
        the newest of them (see monitor/stored.py)."""
        return None

    @abc.abstractmethod
    def requests_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """{row id: the request as ``recent_requests`` gives it} for the ids of ``recent_request_marks`` that
        are still stored."""

    @abc.abstractmethod
    def request_rows(self, model: str, request_ids: Sequence[str], *, version: str | None = None) -> dict[str, int]:
        """{request id: rows} of the newest answered request with rows, for each id among ``request_ids``
        that has one (see "Labels"); ids repeated or unknown are fine."""

    @abc.abstractmethod
    def labelled(self, model: str, limit: int, *, version: str | None = None) -> LabelledRows:
        """The newest ``limit`` labelled rows that join an output (see "Labels" and "Ordering"), oldest
        first: each row's output and label decoded from their JSON (a row whose output or label does not
        decode is left out), and the seconds from its request's time to its label's (latest) time, for
        the rows whose two times are known, computed as ``label_ts - request_ts`` from the two epoch
        seconds at millisecond precision (so that every backend gives the same floats).

        The health check calls it with the window's length (thousands of rows) on every health
        request: it must stay cheap (about a millisecond; ``bench/health.py`` measures it). A backend may
        keep what it joined and read only what changed since (the SQLite backend numbers every change of
        a label and counts deletions, see ``store/sqlite/labels.py``), but the store stays the source of
        truth: every read answers as a reader opened afresh would, whoever changed the store since (another
        replica's requests and labels, labels replaced, an id sent again, retention's deletions)."""

    @abc.abstractmethod
    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[WarningRecord, ...]:
        """Up to ``limit`` distinct warnings (category, message, location) with their running counts
        (the sum of the ``count`` of every record that carried them), most counted first."""

    @abc.abstractmethod
    def snapshots(self, model: str, since: float | None, limit: int, *, version: str | None = None) -> list[str]:
        """The newest ``limit`` health snapshots (JSON text, as written) whose time is at or after
        ``since`` (None: any), newest first."""

    @abc.abstractmethod
    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        """The stored drift window, newest chunk first, read lazily (a caller stops once it has enough).

        A chunk comes back as written: the same float64 inputs (NaN kept) and outputs, unseen
        categories and type errors. The chunks of the requests one write stores are one chunk per
        model version (:func:`~guarded_serving.drift.window.merge_chunks`, keeping its newest
        ``StoreOptions.window`` rows); a request without a window adds none."""

    @abc.abstractmethod
    def baseline(self, model: str, version: str | None, reference: str, kind: str) -> SavedBaseline | None:
        """The baseline kept under (model, version, ``reference`` digest, ``kind``), or None (see "Baselines")."""

    # -- the fleet -------------------------------------------------------------------------------
    def replicas(self, model: str, *, version: str | None = None) -> list[Replica]:
        """The serving processes that write this model version, by their last heartbeat, oldest started first.
        A store shared across hosts keeps them (see "Replicas"); an embedded one may keep none."""
        return []

    # -- what the store holds --------------------------------------------------------------------
    @abc.abstractmethod
    def saved_versions(self) -> list[SavedModel]:
        """Every model version recorded by ``save_model`` (its last save), sorted by (name, version);
        ``saved_at`` is when it was saved (see "Times")."""

    @abc.abstractmethod
    def model_versions(self) -> list[tuple[str, str | None]]:
        """Every (model, version) with totals (a request logged or dropped, or a label stored) or a
        saved reference, sorted (see "Ordering")."""

    def saved_models(self) -> dict[str, SavedModel]:
        """Per model name, the version saved last (by ``saved_at``). :meth:`saved_model` reads a given
        version's."""
        return {saved.name: saved for saved in sorted(self.saved_versions(), key=lambda s: s.saved_at)}

    def saved_model(self, name: str, version: str | None) -> SavedModel | None:
        return next((s for s in self.saved_versions() if s.name == name and s.version == version), None)

    def model_names(self) -> list[str]:
        """Every model that logged a request or saved its reference, sorted."""
        return sorted({name for name, _ in self.model_versions()})

    # -- the request log, as an offline report replays it ----------------------------------------
    @abc.abstractmethod
    def request_log(
        self,
        model: str | None = None,
        status: str | None = None,
        after_id: int = 0,
        limit: int = 20,
        *,
        version: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` requests whose ``id`` is above ``after_id`` (every model's and version's
        unless ``model``, ``version``, ``''`` for the unversioned model, or ``status`` is named), oldest first,
        as dicts with exactly these keys: ``id``, ``ts`` (text, see "Times"), ``model``, ``version`` (None
        for the unversioned model), ``request_id``, ``status``, ``rows``, ``latency_ms``, ``failed_stage``,
        ``error``. A caller pages forward by passing the last ``id`` it saw."""

    @abc.abstractmethod
    def row_counts(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        """(rows of the answered requests, rows of those of them whose inputs were stored)."""

    @abc.abstractmethod
    def logged_rows(self, model: str, *, version: str | None = None) -> Iterator[tuple[Any, Any]]:
        """(inputs, outputs) of every answered request whose inputs were stored, newest first, as the
        JSON text stored (see "Requests"), read lazily."""

    @abc.abstractmethod
    def written_and_dropped(self) -> tuple[int, int]:
        """(rows of every model's answered requests logged, rows answered but dropped from the log): the
        second a running count of every model version's ``dropped_rows``, 0 for a reader limited by
        ``since``."""

    @abc.abstractmethod
    def close(self, timeout: float = 10.0) -> bool:
        """Release the connections; a store also writes what is pending first (False: not in time)."""


class StoreWriter(abc.ABC):
    """The writes: the request path's buffered ones, and the synchronous ones (labels, snapshots)."""

    options: StoreOptions
    replica: str | None = None  # this process's name among ``replicas()``, in a store that keeps them

    @abc.abstractmethod
    def open(self) -> Self:
        """Start writing (create the tables, or migrate older ones); return the store. Never raises: a
        fault is reported by :meth:`stats` and retried. Opening a store already open does nothing."""

    @abc.abstractmethod
    def close(self, timeout: float = 10.0) -> bool:
        """Write what is pending and stop; False when it did not finish within ``timeout`` seconds."""

    @abc.abstractmethod
    def put(self, record: RequestRecord) -> bool:
        """Queue a request; False when it was dropped (and counted): no room, or not encodable as JSON.
        A full buffer makes it wait for room while the writer makes progress (back-pressure, counted in
        ``stats().waits``), at most ``block_timeout`` seconds; with ``overflow="block"`` also while the
        writer fails. It never raises."""

    @abc.abstractmethod
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is stored; False when not within ``timeout``."""

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """The writer's state as this process sees it: ``written``/``dropped`` rows (a request without rows
        counts one when dropped), ``pending`` rows and ``pending_bytes`` waiting, the last error and when."""

    @abc.abstractmethod
    def save_model(self, name: str, version: str | None, reference: str, settings: dict[str, Any]) -> None:
        """Record a model version's reference (JSON text) and settings, with the next write; written
        again should the store be found replaced, so that it can always be judged offline."""

    @abc.abstractmethod
    def write_feedback(self, model: str, items: Sequence[tuple[str, int, str]], *, version: str | None = None) -> tuple[int, int]:
        """Store labels (request_id, row, label JSON text) in one transaction; return (new, replaced)
        (see "Labels"). Synchronous; raises StoreError when it cannot be stored."""

    @abc.abstractmethod
    def write_snapshot(
        self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int, *, version: str | None = None
    ) -> bool:
        """Store a health snapshot (JSON text) taken at ``ts`` unless the slot has one; True when this
        one was stored. Keeps the version's newest ``keep`` (see "Retention"). Synchronous; it waits for a
        lock at most about 1 s, then raises StoreError (a health request must not hang on a busy store)."""

    @abc.abstractmethod
    def save_baseline(self, model: str, version: str | None, reference: str, kind: str, rows: int, document: str) -> None:
        """Keep a baseline (``document``, JSON text, taken from ``rows`` rows) under (model, version,
        ``reference`` digest, ``kind``) unless one is kept there already, with the time now as its
        ``since`` (see "Baselines"). Synchronous; raises StoreError when it cannot be kept."""

    @abc.abstractmethod
    def prune(self) -> int:
        """Apply retention now (see "Retention"); return the requests deleted."""

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(StoreReader, StoreWriter):
    """A log store: a reader of everything (``since`` None) that also writes."""
