"""Judge a log store offline: the health that a service's SQLite file holds, recomputed from its rows.

``guarded-serving report`` is a thin shell around :func:`offline_health`. It builds a
:class:`~guarded_serving.monitor.Monitor` over the file with the reference and settings the service
saved when it started (the ``models`` table), on a :class:`StoreReader` that never starts a writer
and never creates or writes the file, and asks it for :meth:`Monitor.health`: the code the live
``GET /health/model`` runs, so that both name the same drifted features.

Without ``since`` or ``window`` it judges what the live endpoint judges: the stored window chunks.
With ``since``, every read covers only the requests logged at or after that time, and the window is
re-encoded from the logged input rows (the ``rows`` table) through the monitor's own encoder; rows
answered without stored inputs (``log_inputs=False``, sampled out, pruned) are counted, not judged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .drift.baseline import CATEGORICAL_METHODS, NUMERIC_METHODS
from .drift.window import Chunk
from .errors import ConfigurationError, StoreError
from .health import HealthReport
from .histograms import FeatureHistogram
from .history import Snapshot
from .monitor import MIN_ROWS, Monitor, as_reference
from .operational import PipelineThresholds
from .reference import Reference
from .store import SavedModel, Store, StoreStats, Totals, version_key
from .times import iso, parse_since

__all__ = ["MAX_REPLAY_ROWS", "OfflineReport", "Replay", "StoreReader", "offline_health", "since_seconds"]

MAX_REPLAY_ROWS = 100_000  # rows re-encoded by default with `since` (the newest); `window` changes it
_BATCH = 2000  # rows decoded and encoded at a time
SINCE_EXPECTED = (
    "an ISO time (2026-11-29T09:00, UTC unless it has an offset), epoch seconds, or a duration ago (90s, 30m, 1h, 2d)"
)

Progress = Callable[[int, int], None]


def since_seconds(value: float | str | dt.datetime) -> float:
    """``offline_health(since=)`` as epoch seconds: a datetime (naive is UTC), epoch seconds, or text as
    :func:`~guarded_serving.times.parse_since` reads it (a moment or a duration ago)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        seconds = parse_since(value) if isinstance(value, str) else None
    except ValueError:
        seconds = None
    if seconds is None:
        raise ConfigurationError("since", value, SINCE_EXPECTED)
    return seconds


class StoreReader(Store):
    """A log store opened to read only: no writer thread, and the file is never created or written
    (a file of an older schema is read through temporary views, not migrated).

    With ``since`` (epoch seconds) every read covers only requests logged at or after it. With
    ``replay``, :meth:`window_chunks` re-encodes the logged input rows with ``encode`` (newest first)
    instead of reading the stored window chunks.
    """

    read_only_views = True

    def __init__(self, path: str | os.PathLike[str], *, since: float | None = None, replay: bool = False) -> None:
        if not os.path.isfile(path):
            raise ConfigurationError("db", str(path), "the SQLite file a guarded service writes (no such file)")
        super().__init__(path)
        try:
            with self._reading() as db:
                found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'").fetchone()
        except StoreError as exc:
            raise ConfigurationError("db", str(path), f"a guarded-serving log store ({exc.__cause__ or exc})") from None
        if found is None:
            raise ConfigurationError("db", str(path), "a guarded-serving log store (this SQLite file has no requests table)")
        self.since = since
        self.replay = replay or since is not None
        self.encode: Callable[[Sequence[Sequence[Any]], Sequence[Any] | None], Chunk] | None = None
        self.width: int | None = None  # features per logged row: a row of another length is not replayed
        self.progress: Progress | None = None
        self.replay_rows = MAX_REPLAY_ROWS  # rows re-encoded at most (the window asks for no more anyway)
        self._rows_logged: int | None = None
        self._rows_dropped = 0

    @property
    def _since_iso(self) -> str:
        return iso(self.since) if self.since is not None else ""  # every stored ts sorts after ""

    # -- a reader never writes -------------------------------------------------------------
    def open(self) -> Store:
        raise StoreError(f"the log store at {self.path!r} is open to read only")

    def put(self, record: Any) -> bool:
        raise StoreError(f"the log store at {self.path!r} is open to read only")

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def close(self, timeout: float = 10.0) -> bool:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None
        return True

    def stats(self) -> StoreStats:
        if self._rows_logged is None:
            with self._reading() as db:
                (rows,) = db.execute(
                    "SELECT coalesce(sum(rows), 0) FROM requests WHERE status = 'ok' AND ts >= ?", [self._since_iso]
                ).fetchone()
                # Rows the service answered but dropped from the log (running counts: not limited by `since`).
                (dropped,) = db.execute("SELECT coalesce(sum(dropped_rows), 0) FROM totals").fetchone()
            self._rows_logged = int(rows)
            self._rows_dropped = int(dropped) if self.since is None else 0
        return StoreStats(
            path=self.path,
            pending=0,
            written=self._rows_logged,
            dropped=self._rows_dropped,
            capacity=0,
            last_error=None,
            last_error_at=None,
            last_flush_at=None,
            flush_interval=0.0,
            read_only=True,
        )

    # -- reads limited to `since` ----------------------------------------------------------
    def totals(self, model: str, *, version: str | None = None) -> Totals:
        if self.since is None:
            return super().totals(model, version=version)
        with self._reading() as db:
            requests, rows, rejected, errors = db.execute(
                "SELECT count(*), coalesce(sum(CASE WHEN status = 'ok' THEN rows END), 0),"
                " coalesce(sum(status = 'rejected'), 0), coalesce(sum(status = 'error'), 0)"
                " FROM requests WHERE model = ? AND version IS ? AND ts >= ?",
                [model, version, self._since_iso],
            ).fetchone()
        return Totals(requests=requests, rows=rows, rejected=rejected, errors=errors)

    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        if self.since is None:
            return super().recent_requests(model, limit, version=version)
        with self._reading() as db:
            return list(
                db.query(
                    "SELECT request_id, status, rows, latency_ms, stages, failed_stage, problem_features FROM requests"
                    " WHERE model = ? AND version IS ? AND ts >= ? ORDER BY id DESC LIMIT ?",
                    [model, version, self._since_iso, limit],
                )
            )

    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[Any, ...]:
        """Warnings last seen since then (their counts are the file's running totals)."""
        found = super().warnings(model, limit if self.since is None else 10_000, version=version)
        if self.since is None:
            return found
        with self._reading() as db:
            recent = {
                (c, m, loc)
                for c, m, loc in db.execute(
                    "SELECT category, message, location FROM warnings WHERE model = ? AND version = ? AND last_seen >= ?",
                    [model, version_key(version), self._since_iso],
                )
            }
        return tuple(w for w in found if (w.category, w.message, w.location) in recent)[:limit]

    def labelled(self, model: str, limit: int, since: str = "", *, version: str | None = None) -> list[tuple[Any, Any, Any, Any]]:
        return super().labelled(model, limit, max(since, self._since_iso), version=version)

    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        if self.since is None:
            return super().label_totals(model, version=version)
        with self._reading() as db:
            labels, relabels = db.execute(
                "SELECT count(*), coalesce(sum(updates), 0) FROM feedback WHERE model = ? AND version = ? AND ts >= ?",
                [model, version_key(version), self._since_iso],
            ).fetchone()
        return int(labels), int(relabels)

    def write_snapshot(
        self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int, *, version: str | None = None
    ) -> bool:
        """Never: an offline report reads the file and leaves the service's health history as it was."""
        return False

    def save_baseline(self, model: str, version: str | None, reference: str, kind: str, rows: int, document: str) -> None:
        """Never: an offline report judges against the baselines the service adopted, and adopts none itself."""

    # -- the window, re-encoded from the logged rows ----------------------------------------
    def row_counts(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        """(rows answered, rows of those with stored inputs) in range."""
        with self._reading() as db:
            (answered,) = db.execute(
                "SELECT coalesce(sum(rows), 0) FROM requests WHERE model = ? AND version IS ? AND status = 'ok' AND ts >= ?",
                [model, version, self._since_iso],
            ).fetchone()
            (with_inputs,) = db.execute(
                "SELECT coalesce(sum(rows), 0) FROM requests"
                " WHERE model = ? AND version IS ? AND status = 'ok' AND ts >= ? AND inputs IS NOT NULL",
                [model, version, self._since_iso],
            ).fetchone()
        return int(answered), int(with_inputs)

    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        if not self.replay:
            yield from super().window_chunks(model, version=version)
            return
        if self.encode is None:
            raise StoreError("a replaying StoreReader needs its encode function (set by offline_health)")
        done = 0
        with self._reading() as db:
            cursor = db.execute(  # rows are stored per request, as arrays: newest request first
                "SELECT inputs, outputs FROM requests WHERE model = ? AND version IS ? AND status = 'ok' AND ts >= ?"
                " AND inputs IS NOT NULL ORDER BY id DESC",
                [model, version, self._since_iso],
            )
            while done < self.replay_rows:
                requests: list[tuple[list[Any], list[Any]]] = []
                rows = 0
                while rows < _BATCH and (found := cursor.fetchone()) is not None:
                    decoded = _logged_rows(found[0], found[1], self.width)
                    if decoded is not None:
                        requests.append(decoded)
                        rows += len(decoded[0])
                if not requests:
                    break
                requests.reverse()  # oldest first within a chunk, as the writer stores them
                inputs = [row for rows_in, _ in requests for row in rows_in]
                outputs = [out for _, rows_out in requests for out in rows_out]
                keep = min(len(inputs), self.replay_rows - done)
                inputs, outputs = inputs[-keep:], outputs[-keep:]
                done += keep
                chunk = self.encode(inputs, outputs)
                if self.progress is not None:
                    self.progress(done, self.replay_rows)
                yield chunk

    # -- the request log ---------------------------------------------------------------------
    def request_log(
        self, model: str | None = None, status: str | None = None, after_id: int = 0, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` requests after ``after_id`` (all models unless one is named), oldest first."""
        where = ["id > ?", "ts >= ?"]
        params: list[Any] = [after_id, self._since_iso]
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        with self._reading() as db:
            found = list(
                db.query(
                    "SELECT id, ts, model, request_id, status, rows, latency_ms, failed_stage, error FROM requests"
                    f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                    [*params, limit],
                )
            )
        return found[::-1]


def _logged_rows(inputs: Any, outputs: Any, width: int | None) -> tuple[list[Any], list[Any]] | None:
    """A logged request's input rows and outputs, or None when they do not decode to one list of
    ``width`` values per row and one output per row (a damaged or hand-edited row is not replayed)."""
    try:
        rows_in = json.loads(inputs)
        rows_out = json.loads(outputs) if outputs is not None else None
    except (TypeError, ValueError):
        return None
    if not isinstance(rows_in, list) or not all(isinstance(r, list) and (width is None or len(r) == width) for r in rows_in):
        return None
    if rows_out is None:
        rows_out = [None] * len(rows_in)
    if not isinstance(rows_out, list) or len(rows_out) != len(rows_in):
        return None
    return rows_in, rows_out


@dataclass(frozen=True, slots=True)
class Replay:
    """What a re-encoded window covers."""

    rows_answered: int  # rows answered in range
    rows_with_inputs: int  # of which the inputs are stored
    rows_judged: int  # the newest of those, up to the window

    @property
    def rows_without_inputs(self) -> int:
        return max(self.rows_answered - self.rows_with_inputs, 0)


@dataclass(frozen=True, slots=True)
class OfflineReport:
    """A health report recomputed from a log store, and what it covers."""

    report: HealthReport
    db: str
    since: str | None  # ISO time, when limited
    replay: Replay | None  # None when the stored window chunks were judged, as the live endpoint does
    reference: str  # where the reference came from: "the store" or a file path
    histograms: tuple[FeatureHistogram, ...] = ()  # the judged window on the reference's bins
    history: tuple[Snapshot, ...] = ()  # the service's health history (newest MEMORY_KEEP snapshots)

    def to_json(self) -> dict[str, Any]:
        """The report as ``GET /health/model`` renders it, plus an ``offline`` entry saying what was read."""
        out = self.report.to_json(detail=True)
        out["offline"] = {
            "db": self.db,
            "since": self.since,
            "reference": self.reference,
            "replayed": dataclasses.asdict(self.replay) | {"rows_without_inputs": self.replay.rows_without_inputs}
            if self.replay is not None
            else None,
        }
        return out


def offline_health(
    db: str | os.PathLike[str],
    *,
    model: str | None = None,
    version: str | None = None,
    reference: Reference | str | os.PathLike[str] | None = None,
    since: float | str | dt.datetime | None = None,
    window: int | None = None,
    progress: Progress | None = None,
) -> OfflineReport:
    """Recompute a model's health from a log store, with the code the live endpoint runs.

    ``model`` may be left out when the file holds one model, and ``version`` when it holds one version
    of it (``""`` names the unversioned one); ``reference`` overrides the one the service saved;
    ``since`` (see :func:`since_seconds`) limits every figure to requests logged since then and
    re-encodes the window from the logged rows; ``window`` judges the newest ``window`` logged rows
    (re-encoded) instead of the live window. ``progress(done, total)`` is called while rows are
    re-encoded.
    """
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ConfigurationError("window", window, "a positive number of rows")
    since_ts = since_seconds(since) if since is not None else None
    reader = StoreReader(db, since=since_ts, replay=window is not None)
    try:
        name = _choose_model(reader, model)
        chosen = _choose_version(reader, name, version)
        saved = reader.saved_model(name, chosen)
        if reference is None and saved is None:
            raise ConfigurationError(
                "reference",
                None,
                f"a saved reference file for model {_named(name, chosen)}: {str(db)!r} holds none (it was written by an older"
                " version, or by a monitor that was never started)",
            )
        ref = as_reference(reference) if reference is not None else _saved_reference(saved, name, str(db))  # type: ignore[arg-type]
        settings = _settings(saved, ref)
        live_window = int(settings.get("window", 1000))
        replay = None
        capacity = live_window
        if reader.replay:
            answered, with_inputs = reader.row_counts(name, version=chosen)
            capacity = window if window is not None else (min(with_inputs, MAX_REPLAY_ROWS) or live_window)
            replay = Replay(answered, with_inputs, min(with_inputs, capacity))
            reader.replay_rows = replay.rows_judged
        monitor = Monitor(
            ref,
            name=name,
            version=chosen,
            db=reader,
            window=capacity,
            recent_requests=int(settings.get("recent_requests", 1000)),
            methods=settings.get("methods") or None,
            redact=settings.get("redact", ()),
            report_values=bool(settings.get("report_values", False)),
            thresholds=PipelineThresholds(**settings["thresholds"]) if settings.get("thresholds") else None,
        )
        monitor.min_rows = min(live_window, MIN_ROWS)  # the live service's rule, whatever rows are replayed
        reader.encode = monitor.encode
        reader.width = monitor.baseline.width
        reader.progress = progress
        report = monitor.health()
        histograms = monitor.histograms()
        history = tuple(monitor.history())
    finally:
        reader.close()
    return OfflineReport(
        report=report,
        db=str(db),
        since=iso(since_ts) if since_ts is not None else None,
        replay=replay,
        reference="the store" if reference is None else str(reference) if not isinstance(reference, Reference) else "given",
        histograms=histograms,
        history=history,
    )


def _saved_reference(saved: SavedModel, name: str, db: str) -> Reference:
    try:
        return Reference.from_json(json.loads(saved.reference))
    except (TypeError, ValueError) as exc:  # a damaged row (InvalidReferenceError is a ValueError too)
        raise ConfigurationError(
            "reference",
            None,
            f"a reference file for model {name!r}: the saved reference of model {name!r} in {db!r} is unreadable"
            f" ({type(exc).__name__})",
        ) from None


def _choose_model(reader: StoreReader, model: str | None) -> str:
    names = reader.model_names()
    if model is not None:
        if model not in names:
            raise ConfigurationError("model", model, f"one of the models in {reader.path}: {names}" if names else "a model")
        return model
    if not names:
        raise ConfigurationError("db", reader.path, "a log store holding at least one model's requests (this one has none)")
    if len(names) > 1:
        raise ConfigurationError("model", None, f"one of the models in {reader.path}: {names}")
    return names[0]


def _choose_version(reader: StoreReader, name: str, version: str | None) -> str | None:
    """The version asked for (``""``: the unversioned one), or the model's only one."""
    versions = [v for n, v in reader.model_versions() if n == name]
    listed = [v if v is not None else "" for v in versions]
    expected = f"one of the versions of model {name!r} in {reader.path}: {listed}"
    expected += " ('' is the unversioned one)" if "" in listed else ""
    if version is not None:
        if (version or None) not in versions:
            raise ConfigurationError("version", version, expected)
        return version or None
    if len(versions) > 1:
        raise ConfigurationError("version", None, expected)
    return versions[0] if versions else None


def _named(name: str, version: str | None) -> str:
    return repr(name) if version is None else f"{name!r} version {version!r}"


def _settings(saved: SavedModel | None, reference: Reference) -> dict[str, Any]:
    """The saved monitoring settings, keeping only the feature names this reference has; a setting of the
    wrong type (a damaged or hand-edited row) is left to its default."""
    settings = dict(saved.settings) if saved is not None else {}
    names = set(reference.feature_names) | {p.name for p in reference.outputs}
    kinds = {p.name: p.kind for p in (*reference.features, *reference.outputs)}
    methods = settings.get("methods")
    allowed = {"numeric": NUMERIC_METHODS, "categorical": CATEGORICAL_METHODS}
    if isinstance(methods, dict):
        settings["methods"] = {k: v for k, v in methods.items() if k in names and v in allowed[kinds[k]]}
    else:
        settings["methods"] = {}
    redact = settings.get("redact")
    settings["redact"] = [n for n in redact if n in reference.feature_names] if isinstance(redact, list) else []
    for key in ("window", "recent_requests"):
        value = settings.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            settings.pop(key, None)
    if not isinstance(settings.get("report_values"), bool):
        settings.pop("report_values", None)
    thresholds = settings.get("thresholds")
    fields = {f.name for f in dataclasses.fields(PipelineThresholds)}
    if not (
        isinstance(thresholds, dict)
        and set(thresholds) <= fields
        and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in thresholds.values())
    ):
        settings.pop("thresholds", None)
    return settings
