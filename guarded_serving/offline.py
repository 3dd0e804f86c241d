"""Judge a log store offline: the health that a service's SQLite file holds, recomputed from its rows.

``guarded-serving report`` is a thin shell around :func:`offline_health`. It builds a
:class:`~guarded_serving.monitor.Monitor` over the file with the reference and settings the service
saved when it started (the ``models`` table), on a reader of the store (:func:`~guarded_serving.store.open_reader`)
that never creates or writes it, and asks it for :meth:`Monitor.health`: the code the live
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
from .jsontext import loads
from .monitor import MIN_ROWS, Monitor, as_reference
from .operational import PipelineThresholds
from .reference import Reference
from .store import ReadOnlyStore, SavedModel, StoreReader, open_reader
from .times import iso, parse_since

__all__ = ["MAX_REPLAY_ROWS", "OfflineReport", "Replay", "offline_health", "since_seconds"]

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


@dataclass
class _Replayer:
    """Re-encodes the logged input rows of a reader into window chunks, newest first, with the monitor's
    own encoder: the window a report limited by ``since`` or ``window`` judges instead of the stored one."""

    reader: StoreReader
    rows: int = MAX_REPLAY_ROWS  # rows re-encoded at most (the window asks for no more anyway)
    encode: Callable[[Sequence[Sequence[Any]], Sequence[Any] | None], Chunk] | None = None
    width: int | None = None  # features per logged row: a row of another length is not replayed
    progress: Progress | None = None

    def chunks(self, model: str, version: str | None) -> Iterator[Chunk]:
        if self.encode is None:
            raise StoreError("a replayed window needs its encode function (set by offline_health)")
        done = 0
        logged = self.reader.logged_rows(model, version=version)  # stored per request, as arrays: newest first
        while done < self.rows:
            requests: list[tuple[list[Any], list[Any]]] = []
            rows = 0
            while rows < _BATCH and (found := next(logged, None)) is not None:
                decoded = _logged_rows(found[0], found[1], self.width)
                if decoded is not None:
                    requests.append(decoded)
                    rows += len(decoded[0])
            if not requests:
                break
            requests.reverse()  # oldest first within a chunk, as the writer stores them
            inputs = [row for rows_in, _ in requests for row in rows_in]
            outputs = [out for _, rows_out in requests for out in rows_out]
            keep = min(len(inputs), self.rows - done)
            inputs, outputs = inputs[-keep:], outputs[-keep:]
            done += keep
            chunk = self.encode(inputs, outputs)
            if self.progress is not None:
                self.progress(done, self.rows)
            yield chunk


def _logged_rows(inputs: Any, outputs: Any, width: int | None) -> tuple[list[Any], list[Any]] | None:
    """A logged request's input rows and outputs, or None when they do not decode to one list of
    ``width`` values per row and one output per row (a damaged or hand-edited row is not replayed)."""
    try:
        rows_in = loads(inputs)
        rows_out = loads(outputs) if outputs is not None else None
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
    reader = open_reader(db, since=since_ts)
    replayer = _Replayer(reader) if window is not None or since_ts is not None else None
    store = ReadOnlyStore(reader, window=replayer.chunks if replayer is not None else None)
    try:
        name = _choose_model(reader, model)
        chosen = _choose_version(reader, name, version)
        saved = reader.saved_model(name, chosen)
        if reference is None and saved is None:
            raise ConfigurationError(
                "reference",
                None,
                f"a saved reference file for model {_named(name, chosen)}: {reader.path!r} holds none (it was written by an older"
                " version, or by a monitor that was never started)",
            )
        ref = as_reference(reference) if reference is not None else _saved_reference(saved, name, reader.path)  # type: ignore[arg-type]
        settings = _settings(saved, ref)
        live_window = int(settings.get("window", 1000))
        replay = None
        capacity = live_window
        if replayer is not None:
            answered, with_inputs = reader.row_counts(name, version=chosen)
            capacity = window if window is not None else (min(with_inputs, MAX_REPLAY_ROWS) or live_window)
            replay = Replay(answered, with_inputs, min(with_inputs, capacity))
            replayer.rows = replay.rows_judged
        monitor = Monitor(
            ref,
            name=name,
            version=chosen,
            db=store,
            window=capacity,
            recent_requests=int(settings.get("recent_requests", 1000)),
            methods=settings.get("methods") or None,
            redact=settings.get("redact", ()),
            report_values=bool(settings.get("report_values", False)),
            thresholds=PipelineThresholds(**settings["thresholds"]) if settings.get("thresholds") else None,
        )
        monitor.min_rows = min(live_window, MIN_ROWS)  # the live service's rule, whatever rows are replayed
        if replayer is not None:
            replayer.encode = monitor.encode
            replayer.width = monitor.baseline.width
            replayer.progress = progress
        report = monitor.health()
        histograms = monitor.histograms()
        history = tuple(monitor.history())
    finally:
        store.close()
    return OfflineReport(
        report=report,
        db=reader.path,  # a URL without its password
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
