"""Monitor: the framework-free core every request goes through.

Usable in any Python process (a batch job, another web framework, a test)::

    monitor = Monitor(X_train, name="churn", db="guarded_serving.db")
    with monitor:
        request_id = monitor.observe(rows, predictions)
        report = monitor.health()
        timeline = monitor.history()

The BentoML service is a thin adapter around one Monitor per worker. With a store, totals, recent
requests and warnings are read back from the database, so whichever worker answers sees every
worker's traffic (within one flush interval).

Once started, a monitor judges its health every ``history_interval`` seconds by itself (so status
changes are logged without anyone asking) and keeps a snapshot of each report in its history.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import json
import math
import numbers
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from .baselines import AdoptedOutputs, ServedBaselines, source_of
from .checks import PipelineThresholds, environment_check, pipeline_check, store_check
from .concept import concept_check
from .dashboard import FeatureHistogram, feature_histograms
from .drift.baseline import Baseline
from .drift.calibration import Calibration
from .drift.checks import ALPHA_DATA, ALPHA_PREDICTION, Columns, drift_check, quality_check
from .drift.joint import JointBaseline, joint_check
from .drift.window import Chunk, Encoder, MemoryWindow, WindowData, assemble, output_rows
from .environment import WarningLog, WarningRecord, current_fingerprint, diff_environment
from .errors import ConfigurationError, InputError, Problem, StoreError, UnknownRequestError
from .estimate import estimate_check
from .fleet import fleet_environment_check, fleet_store_check, replica_statuses
from .health import BaselineSource, CheckResult, HealthReport, Status, worst
from .history import MEMORY_KEEP, History, Snapshot
from .logs import get_logger
from .metrics import MetricsExporter, check_factory
from .performance import Performance, check_class, row_losses
from .redaction import redacted_reference, withheld_warnings
from .reference import FeatureProfile, Reference
from .stages import RecentRequest, summarise
from .store import DEFAULT_CAPACITY, DEFAULT_CAPACITY_BYTES, Overflow, RequestRecord, Store, StoreOptions, Totals, open_store

__all__ = ["FeedbackResult", "Monitor", "as_reference", "new_request_id"]


@dataclasses.dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What a feedback call stored: labels accepted, of which new and replacing an earlier label."""

    accepted: int
    new: int
    replaced: int


DEFAULT_DB = "guarded_serving.db"
MEMORY = ":memory:"  # db=":memory:" keeps no log store, as db=None does
# Rows (of outputs, or labelled) a baseline adopted from served traffic rests on, or the window if larger: every
# later check is judged against it, so its own noise should be small next to a window's.
ADOPT_ROWS = 2000
PREDICTIONS_KEPT = 10_000  # rows of recent predictions kept in memory for joining labels (at least 2 windows)
MIN_ROWS = 100  # drift and quality are judged once the window holds min(window, MIN_ROWS) rows


def new_request_id() -> str:
    """32 hex digits: the time in milliseconds, then 80 random bits (like a UUIDv7's layout).

    Ids that grow with time are appended at the right edge of the store's indexes instead of
    landing on a random page each: a large batch of rows commits several times faster. No system
    call per request, unlike uuid4 (``random`` reseeds itself in forked children).
    """
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


def as_reference(
    reference: Any, feature_names: Sequence[str] | None = None, categorical: Sequence[str | int] | None = None
) -> Reference:
    """Accept a Reference, a path to a saved one, or training data to profile."""
    if isinstance(reference, Reference):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        return Reference.load(reference)
    if reference is None:
        raise ConfigurationError(
            "reference", None, "training data (array, list of rows, DataFrame), a Reference, or a saved reference path"
        )
    return Reference.from_data(reference, feature_names=feature_names, categorical=categorical)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(name, value, "a positive integer")
    return value


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(name, value, "a positive number of seconds")
    return float(value)


def to_jsonable_output(value: Any) -> Any:
    """numpy arrays, scalars and nested lists to plain JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [to_jsonable_output(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable_output(v) for k, v in value.items()}
    tolist = getattr(value, "tolist", None)  # pandas Series / Index
    if callable(tolist):
        return tolist()
    return value


class Monitor:
    """Watches one model: records requests, and judges health on demand.

    Parameters
    ----------
    reference:
        A :class:`Reference`, a path to a saved one, or training data to profile.
    name, version:
        The model's name and optional version: together the key of everything the store holds for it
        (totals, window, labels, history, retention), so that versions sharing a file judge their own traffic.
    db:
        Path of the SQLite log store, or ``None`` (or ``":memory:"``) to keep everything in memory (or
        a :class:`Store` already built, such as the read-only one of an offline report).
    window:
        Rows of recent traffic the drift checks judge.
    recent_requests:
        How many recent requests the pipeline check judges.
    metrics:
        A Prometheus metrics factory (the ``prometheus_client`` module, or anything with its ``Gauge``,
        ``Counter`` and ``Histogram``): when given, :meth:`start` exports this model's metrics through
        it (see :mod:`guarded_serving.metrics`).
    history_interval:
        Seconds between the health evaluations a started monitor makes by itself, and the width of
        a history slot: the history keeps one snapshot per slot (with a store, one for all workers).
    """

    def __init__(
        self,
        reference: Any,
        *,
        name: str = "model",
        version: str | None = None,
        db: str | os.PathLike[str] | Store | None = None,
        window: int = 1000,
        recent_requests: int = 1000,
        flush_interval: float = 0.2,
        store_capacity: int = DEFAULT_CAPACITY,
        store_capacity_bytes: int = DEFAULT_CAPACITY_BYTES,
        thresholds: PipelineThresholds | None = None,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str | int] | None = None,
        methods: dict[str, str] | None = None,
        redact: Sequence[str] = (),
        log_inputs: bool = True,
        sample_rate: float = 1.0,
        max_rows: int | None = None,
        max_age: float | None = None,
        overflow: str = "drop",
        report_values: bool = False,
        metrics: Any = None,
        history_interval: float = 60.0,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError("name", name, "a non-empty string naming the model")
        if version is not None and (not isinstance(version, str) or not version):
            raise ConfigurationError("version", version, "a non-empty string or None")
        if db is not None and not isinstance(db, (str, os.PathLike, Store)):
            raise ConfigurationError("db", db, "a file path, a Store, or None")
        if isinstance(db, (str, os.PathLike)) and not isinstance(db, Store):
            if not str(db).strip():
                raise ConfigurationError("db", db, f"a file path, or None or {MEMORY!r} for no log store")
            db = None if str(db) == MEMORY else db
        if thresholds is not None and not isinstance(thresholds, PipelineThresholds):
            raise ConfigurationError("thresholds", thresholds, "a PipelineThresholds")
        self.reference = as_reference(reference, feature_names, categorical)
        self.name = name
        self.version = version
        self.window = _positive_int("window", window)
        self.thresholds = thresholds or PipelineThresholds()
        flush_interval = _positive_float("flush_interval", flush_interval)
        store_capacity = _positive_int("store_capacity", store_capacity)
        store_capacity_bytes = _positive_int("store_capacity_bytes", store_capacity_bytes)
        if isinstance(redact, str) or not all(isinstance(r, str) for r in redact):
            raise ConfigurationError("redact", redact, "a list of feature names")
        unknown_redact = sorted(set(redact) - set(self.reference.feature_names))
        if unknown_redact:
            raise ConfigurationError("redact", unknown_redact, f"feature names among {list(self.reference.feature_names)}")
        if not isinstance(log_inputs, bool):
            raise ConfigurationError("log_inputs", log_inputs, "True or False")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not 0 < sample_rate <= 1:
            raise ConfigurationError("sample_rate", sample_rate, "a fraction in (0, 1]")
        if max_rows is not None:
            _positive_int("max_rows", max_rows)
        if max_age is not None:
            _positive_float("max_age", max_age)
        if overflow not in ("drop", "block"):
            raise ConfigurationError("overflow", overflow, "'drop' (count and drop) or 'block' (back-pressure)")
        if not isinstance(report_values, bool):
            raise ConfigurationError("report_values", report_values, "True or False")
        self.report_values = report_values
        self.history_interval = _positive_float("history_interval", history_interval)
        self.redact = frozenset(redact)
        if self.redact and self.reference.row_sample is not None:  # a redacted feature's values never leave, rows included
            self.reference = dataclasses.replace(self.reference, row_sample=self.reference.row_sample.without(self.redact))
        self._redact_idx = [j for j, n in enumerate(self.reference.feature_names) if n in self.redact]
        self.log_inputs = log_inputs
        self.sample_rate = float(sample_rate)
        self._sampler = random.Random(0)
        provenance = self.reference.provenance
        # Outputs or performance of the model's training rows are no baseline: adopt them from served traffic,
        # the outputs from the newest ADOPT_ROWS rows (kept as the window is) when a window is first judged.
        self._adopt_outputs = bool(self.reference.outputs) and provenance.outputs == "training"
        self._adopt_performance = self.reference.performance is None or provenance.performance == "training"
        self._kept_rows = max(self.window, ADOPT_ROWS) if self._adopt_outputs else self.window
        self.store = (
            db
            if isinstance(db, Store)
            else open_store(
                db,
                StoreOptions(
                    flush_interval=flush_interval,
                    capacity=store_capacity,
                    capacity_bytes=store_capacity_bytes,
                    window=self._kept_rows,
                    max_rows=max_rows,
                    max_age=max_age,
                    overflow=cast(Overflow, overflow),
                ),
            )
        )
        if methods is not None and not isinstance(methods, dict):
            raise ConfigurationError("methods", methods, "a dict of feature name -> method")
        unknown = sorted(set(methods or {}) - set(self.reference.feature_names) - {p.name for p in self.reference.outputs})
        if unknown:
            raise ConfigurationError("methods", unknown, f"feature or output names among {list(self.reference.feature_names)}")
        self.methods = dict(methods or {})
        self.baseline = Baseline.from_profiles(self.reference.features, methods)
        self.output_baseline = Baseline.from_profiles(self.reference.outputs, methods) if self.reference.outputs else None
        self._encoder = Encoder(self.baseline)
        self._output_encoder = Encoder(self.output_baseline) if self.output_baseline is not None else None
        self._memory_window = MemoryWindow(self._kept_rows)
        self.min_rows = min(self.window, MIN_ROWS)
        self._calibrations: tuple[Calibration, Calibration | None] | None = None
        self._calibration_lock = threading.Lock()
        self._joint: JointBaseline | None = None
        self._joint_lock = threading.Lock()
        self._recent: collections.deque[RecentRequest] = collections.deque(
            maxlen=_positive_int("recent_requests", recent_requests)
        )
        self._lock = threading.Lock()
        self._requests = self._rows = self._rejected = self._errors = 0
        self._log = get_logger().bind(model=name)
        # The logger, not the monitor: no reference cycle, so a monitor nobody holds is freed (and its evaluator stops).
        self.warnings = WarningLog(on_new=functools.partial(_log_new_warning, self._log))
        fingerprint = current_fingerprint()
        self._env_diff = diff_environment(self.reference.environment, fingerprint)
        self._python = (self.reference.environment.python, fingerprint.python)
        self._last_status: Status | None = None
        self._dropped_logged = 0
        self.performance = self.reference.performance  # what labels are checked against
        self._served = ServedBaselines(self.reference, name, version, self.store, self.methods, self.window, ALPHA_PREDICTION)
        self._shares_exported = False  # the adopted output baseline's shares, given to the metrics exporter once
        # Recent answered requests (id -> sequence, time, outputs), so that a label arriving right after
        # its prediction (before the store has flushed it) is joined; bounded by PREDICTIONS_KEPT rows.
        # Without a store these are the only predictions labels can join: older ones are unknown.
        self._predictions: collections.OrderedDict[str, tuple[int, float, list[Any]]] = collections.OrderedDict()
        self._prediction_rows = 0
        self._sequence = 0
        # Without a store: labels by (request id, row) -> (label, labelled at); bounded like the predictions.
        self._labels: dict[tuple[str, int], tuple[Any, float]] = {}
        self._label_counts = [0, 0]
        self._listeners: list[Callable[[HealthReport], object]] = []
        self._transition_lock = threading.Lock()
        self._history = History(name, self.history_interval, self.store, version=version)
        self.subscribe(self._history.record)
        self._stop = threading.Event()
        self._evaluator: threading.Thread | None = None

        self._metrics_factory = check_factory(metrics) if metrics is not None else None
        self.metrics: MetricsExporter | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Monitor:
        """Open the store and start its writer, start judging health every ``history_interval`` seconds,
        and start the metrics exporter when ``metrics=`` was given.

        The writer records the reference and :meth:`settings` in the store's ``models`` table, so that
        ``guarded-serving report`` can judge the file again offline, the way this monitor does.
        """
        if self.store is not None:
            self.store.open()
            saved = redacted_reference(self.reference, self.redact)  # a redacted feature's profile holds its values
            reference = json.dumps(saved.to_json(), separators=(",", ":"), allow_nan=False)
            self.store.save_model(self.name, self.version, reference, self.settings())
        threading.Thread(target=self.calibration, name="guarded-serving-calibration", daemon=True).start()
        threading.Thread(target=self.joint_baseline, name="guarded-serving-joint-calibration", daemon=True).start()
        if self._metrics_factory is not None:
            if self.metrics is None:
                store = self.store
                self.metrics = MetricsExporter(
                    self._metrics_factory,
                    model=self.name,
                    inputs=self.baseline,
                    outputs=self.output_baseline,
                    outputs_judged=not self._adopt_outputs,
                    skip=self.redact,
                    store_stats=store.stats if store is not None else lambda: None,
                )
                self.subscribe(self.metrics.on_report)
            self.metrics.start()
        if self._evaluator is None:
            self._stop.clear()
            self._evaluator = threading.Thread(
                target=_evaluate_periodically,
                args=(weakref.ref(self), self._stop, self.history_interval),
                name="guarded-serving-health",
                daemon=True,
            )
            self._evaluator.start()
            weakref.finalize(self, self._stop.set)  # a monitor nobody closed stops evaluating once it is freed
        if self._env_diff.differs:
            self._log.warning(
                "environment_differs",
                python=self._env_diff.python,
                changed=[str(c) for c in self._env_diff.changed[:10]],
                missing=[str(c) for c in self._env_diff.missing[:10]],
            )
        return self

    def settings(self) -> dict[str, Any]:
        """The settings that decide how health is judged (as JSON values), saved with the reference."""
        return {
            "window": self.window,
            "recent_requests": self._recent.maxlen,
            "methods": dict(self.methods),
            "redact": sorted(self.redact),
            "log_inputs": self.log_inputs,
            "report_values": self.report_values,
            "thresholds": dataclasses.asdict(self.thresholds),
        }

    def close(self, timeout: float = 10.0) -> None:
        """Stop the periodic health evaluation, flush the store and stop its writer, waiting at most ``timeout`` seconds."""
        evaluator, self._evaluator = self._evaluator, None
        if evaluator is not None:
            started = time.monotonic()
            self._stop.set()
            evaluator.join(min(timeout / 4, 1.0))  # let a health computation in progress finish, but not for long
            timeout = max(timeout - (time.monotonic() - started), 0.5)
        if self.store is not None and not self.store.close(timeout):
            self._log.error("store_close_timeout", pending=self.store.stats().pending, timeout=timeout)
        if self.metrics is not None:  # after the store, so that its last writes are counted
            self.metrics.close()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every recorded request is on disk."""
        return self.store.flush(timeout) if self.store is not None else True

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def history(self, since: float | None = None, limit: int = MEMORY_KEEP) -> list[Snapshot]:
        """Health snapshots, oldest first: the newest ``limit`` taken at or after ``since`` (epoch seconds).

        With a store, every worker's (one per ``history_interval`` slot); without one, this process's.
        """
        if since is not None and (isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since)):
            raise ConfigurationError("since", since, "epoch seconds or None")
        return self._history.read(None if since is None else float(since), _positive_int("limit", limit))

    def histograms(self) -> tuple[FeatureHistogram, ...]:
        """The window's inputs (and outputs) on the reference's bins, for the dashboard; redacted features left out."""
        try:
            window = self.window_data()
        except StoreError:
            window = self.window_data(memory=True)
        out = feature_histograms(self.reference.features, window.inputs, skip=self.redact)
        if self.reference.outputs and window.outputs is not None:
            out += feature_histograms(self.judged_outputs(), window.outputs, role="output")
        return out

    def subscribe(self, listener: Callable[[HealthReport], object]) -> None:
        """Call ``listener`` with every health report this monitor computes (exporters, history).

        A listener that raises is logged and otherwise ignored: it never fails a health request.
        """
        self._listeners.append(listener)

    # -- recording -------------------------------------------------------------------------
    def encode(
        self,
        inputs: Sequence[Sequence[Any]],
        outputs: Sequence[Any] | None,
        *,
        input_matrix: np.ndarray | None = None,
        output_array: Any = None,
    ) -> Chunk:
        """Encode rows (in feature order) and their predictions for the drift window: O(features) per row.

        ``input_matrix`` (the rows as float64, for an all-numeric reference) and ``output_array``
        (the model's own numeric result) spare converting the rows and outputs again.
        """
        unseen: dict[int, dict[str, int]] = {}
        errors: dict[int, int] = {}
        if input_matrix is not None and self._encoder.all_numeric and input_matrix.shape == (len(inputs), self._encoder.width):
            matrix = input_matrix
        else:
            matrix = self._encoder.encode(inputs, unseen, errors)
        encoded_outputs = None
        if self._output_encoder is not None and outputs is not None:
            encoded_outputs = self._numeric_outputs(output_array, len(outputs))
            if encoded_outputs is None:
                rows = output_rows(outputs, self._output_encoder.width)
                encoded_outputs = self._output_encoder.encode(rows, {}, {})
        return Chunk(matrix, encoded_outputs, unseen, errors)

    def _numeric_outputs(self, result: Any, rows: int) -> np.ndarray | None:
        """The model's float/int array result as the encoded outputs, when it has the profiled shape."""
        encoder = self._output_encoder
        if encoder is None or not encoder.all_numeric or not isinstance(result, np.ndarray) or result.dtype.kind not in "fiu":
            return None
        if result.shape == (rows, encoder.width) or (encoder.width == 1 and result.shape == (rows,)):
            return result.astype(np.float64).reshape(rows, encoder.width)  # a copy: the window must not share it
        return None

    def record(self, record: RequestRecord) -> None:
        """Account for one finished request (answered, rejected or failed) and queue it for the store."""
        if self.redact and record.warnings:  # a warning's message may quote the model's input
            record = dataclasses.replace(record, warnings=withheld_warnings(record.warnings))
        if record.status == "ok" and record.window is None and record.inputs is not None:
            record = dataclasses.replace(record, window=self.encode(record.inputs, record.outputs))
        if record.window is not None:  # kept in memory too: the fallback when the store cannot be read
            self._memory_window.add(record.window)
        if self.metrics is not None:
            self.metrics.add(record)
        with self._lock:
            self._requests += 1
            if record.status == "ok":
                self._rows += record.rows
                self._remember(record)
            elif record.status == "rejected":
                self._rejected += 1
            else:
                self._errors += 1
            self._recent.append(
                RecentRequest(record.status, record.latency_ms, record.stages, record.failed_stage, record.problem_features)
            )
        for w in record.warnings:
            self.warnings.record(w.category, w.message, w.location, w.count)
        if self.store is not None and not self.store.put(self._for_disk(record)):
            dropped = self.store.stats().dropped
            if dropped >= 2 * self._dropped_logged:  # log at 1, 2, 4, 8... dropped rows, not every time
                self._dropped_logged = max(dropped, 1)
                self._log.error("store_dropping_rows", dropped=dropped, capacity=self.store.options.capacity)

    @property
    def _window_in_store(self) -> bool:
        """The window is shared through the store, unless inputs must not reach disk at all."""
        return self.store is not None and self.log_inputs

    def _for_disk(self, record: RequestRecord) -> RequestRecord:
        """What of a record may be written: redacted features blanked, inputs dropped when not logged
        or not sampled, and the encoded window kept off disk when inputs must not reach it."""
        if (record.inputs is None and record.inputs_json is None) or (
            not self._redact_idx and self.log_inputs and self.sample_rate >= 1.0
        ):
            return record  # the common case: everything may be written as it is
        inputs: Sequence[Any] | None = record.inputs
        if inputs is None and record.inputs_json is not None:
            inputs = json.loads(record.inputs_json)
        window = record.window if self.log_inputs else None
        if self._redact_idx and inputs is not None:
            inputs = [[None if j in self._redact_idx else v for j, v in enumerate(row)] for row in inputs]
            if window is not None:
                blanked = window.inputs.copy()
                blanked[:, self._redact_idx] = np.nan
                kept = {j: n for j, n in window.unseen.items() if j not in self._redact_idx}
                window = Chunk(blanked, window.outputs, kept, {})
        if not self.log_inputs:
            inputs = None
        outputs = record.outputs
        if self.sample_rate < 1.0 and self._sampler.random() >= self.sample_rate:
            inputs, outputs = None, None
        outputs_json = record.outputs_json if outputs is not None else None
        return dataclasses.replace(
            record, inputs=inputs, outputs=outputs, window=window, inputs_json=None, outputs_json=outputs_json
        )

    def _remember(self, record: RequestRecord) -> None:
        """Keep an answered request's outputs for joining labels (call with the lock held)."""
        self._sequence += 1
        outputs = list(record.outputs) if record.outputs is not None else [None] * record.rows
        previous = self._predictions.pop(record.request_id, None)
        if previous is not None:  # a client's reused request id: labels join the newest request with it
            self._prediction_rows -= len(previous[2])
            if self.store is None:
                for row in range(len(previous[2])):
                    self._labels.pop((record.request_id, row), None)
        self._predictions[record.request_id] = (self._sequence, record.ts, outputs)
        self._prediction_rows += len(outputs)
        while self._prediction_rows > max(PREDICTIONS_KEPT, 2 * self.window) and len(self._predictions) > 1:
            old_id, (_, _, old_outputs) = self._predictions.popitem(last=False)
            self._prediction_rows -= len(old_outputs)
            if self.store is None:
                for row in range(len(old_outputs)):
                    self._labels.pop((old_id, row), None)

    # -- feedback --------------------------------------------------------------------------
    def feedback(self, request_id: str, labels: Sequence[Any]) -> FeedbackResult:
        """Labels for every row of an answered request, in row order; they may arrive late and out of order."""
        if not isinstance(labels, (list, tuple)):
            raise InputError([Problem(f"labels is {type(labels).__name__}", "a list with one label per row")])
        return self.feedback_items([(request_id, row, label) for row, label in enumerate(labels)], whole_requests=True)

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
        encoded = [(rid, int(row), json.dumps(label)) for rid, row, label in items]
        if self.store is not None:
            new, replaced = self.store.write_feedback(self.name, encoded, version=self.version)
        else:
            now = time.time()
            with self._lock:
                replaced = 0
                for rid, row, label in items:  # a row labelled twice in one call is replaced too
                    replaced += (rid, row) in self._labels
                    self._labels[(rid, int(row))] = (label, now)
                new = len(items) - replaced
                self._label_counts[0] += new
                self._label_counts[1] += replaced
        return FeedbackResult(accepted=len(items), new=new, replaced=replaced)

    def _request_rows(self, ids: list[str]) -> dict[str, int]:
        with self._lock:
            found = {rid: len(self._predictions[rid][2]) for rid in ids if rid in self._predictions}
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

    def _labelled(self, from_store: bool, limit: int | None = None) -> tuple[list[Any], list[Any], np.ndarray, int, int]:
        """The newest ``limit`` (``window``) labelled rows, oldest first: outputs, labels, delays (s), received, replaced."""
        limit = limit or self.window
        stored = None
        if self.store is not None and from_store:
            try:
                stored = self.store.labelled(self.name, limit, version=self.version)
                received, replaced = self.store.label_totals(self.name, version=self.version)
            except StoreError:
                stored = None
        if stored is not None:
            outputs, labels, delays = stored.outputs, stored.labels, stored.delays
            return outputs, labels, delays, max(received, len(outputs)), replaced  # a damaged count is at least what joined
        with self._lock:
            joined = []
            for (rid, row), (label, labelled_at) in self._labels.items():
                kept = self._predictions.get(rid)
                if kept is not None and row < len(kept[2]):
                    seq, ts, outs = kept
                    joined.append((seq, row, outs[row], label, labelled_at - ts))
            received, replaced = self._label_counts
        joined.sort(key=lambda item: (item[0], item[1]))
        joined = joined[-limit:]
        return [j[2] for j in joined], [j[3] for j in joined], np.array([j[4] for j in joined]), received, replaced

    def _concept(self, data_drift: CheckResult, window: WindowData, from_store: bool, inputs_ok: bool) -> CheckResult:
        outputs, labels, delays, received, replaced = self._labelled(from_store)
        performance = self.performance
        source = source_of(self.reference.provenance.performance, performance.rows if performance is not None else None)
        if self._adopt_performance:
            served = self._served_performance(from_store, inputs_ok, received)
            if isinstance(served, CheckResult):  # not judged yet: what it waits for
                return served
            performance, source = served
        errors = np.zeros(0)
        losses = np.zeros(0)
        unscored = 0
        if performance is not None and outputs:
            scored = row_losses(performance.task, performance.classes, outputs, labels)
            errors, losses, unscored = scored.error, scored.loss, scored.unscored
        drifted = None if data_drift.status is Status.INSUFFICIENT_DATA else data_drift.status.rank >= Status.WARN.rank
        return concept_check(performance, errors, losses, delays, received, replaced, drifted, unscored, baseline=source)

    def _served_performance(
        self, from_store: bool, inputs_ok: bool, received: int
    ) -> tuple[Performance, BaselineSource] | CheckResult:
        """The performance baseline adopted from served labels (adopting it when ready), or what it waits for."""
        served = self._served.performance()
        if served is not None:
            return served
        needed = max(self.window, ADOPT_ROWS)
        if not received:
            summary = (
                f"Not judged: no labels received yet (POST /feedback); the first {needed} labelled rows will be the baseline."
            )
            return CheckResult("concept_drift", Status.OK, summary)
        outputs, labels, _, _, _ = self._labelled(from_store, needed)
        if inputs_ok and len(labels) >= needed:
            served = self._served.adopt_performance(outputs, labels)
        return served if served is not None else _collecting_performance(len(labels), needed, self.performance is not None)

    def observe(
        self,
        rows: Any,
        predictions: Any,
        *,
        request_id: str | None = None,
        latency_ms: float = 0.0,
        stages: dict[str, float] | None = None,
    ) -> str:
        """Record rows and the model's predictions for them; return the request id logged.

        ``rows`` may be a list of lists (reference feature order), a list of dicts, a 2-D array or
        a DataFrame; ``predictions`` must have one entry per row.
        """
        inputs = self._rows_as_lists(rows)
        outputs = to_jsonable_output(predictions)
        if not isinstance(outputs, list) or len(outputs) != len(inputs):
            got = f"{len(outputs)} predictions" if isinstance(outputs, list) else repr(type(predictions).__name__)
            raise ConfigurationError("predictions", got, f"one prediction per row ({len(inputs)})")
        request_id = request_id or new_request_id()
        self.record(
            RequestRecord(
                request_id=request_id,
                ts=time.time(),
                model=self.name,
                version=self.version,
                status="ok",
                rows=len(inputs),
                latency_ms=latency_ms,
                stages=dict(stages or {}),
                inputs=inputs,
                outputs=outputs,
            )
        )
        return request_id

    def _rows_as_lists(self, rows: Any) -> list[list[Any]]:
        names = self.reference.feature_names
        if hasattr(rows, "columns") and hasattr(rows, "to_numpy"):
            missing = [n for n in names if n not in rows.columns]
            if missing:
                raise ConfigurationError("rows", f"columns {list(rows.columns)}", f"the reference features {list(names)}")
            rows = rows[list(names)].to_numpy(dtype=object)
        if isinstance(rows, np.ndarray):
            rows = rows.reshape(1, -1).tolist() if rows.ndim == 1 else rows.tolist()
        if not isinstance(rows, list) or not rows:
            raise ConfigurationError("rows", rows, "a non-empty list of rows, a 2-D array or a DataFrame")
        out = []
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                out.append([to_jsonable_output(row.get(n)) for n in names])
            elif isinstance(row, (list, tuple)) and len(row) == len(names):
                out.append([to_jsonable_output(v) for v in row])
            else:
                raise ConfigurationError(f"rows[{i}]", row, f"a list of {len(names)} values or a dict by feature name")
        return out

    # -- health ----------------------------------------------------------------------------
    def _recent_from_store(self, store: Store) -> list[RecentRequest]:
        recent = (_recent_request(r) for r in store.recent_requests(self.name, self._recent.maxlen or 1000, version=self.version))
        return [r for r in recent if r is not None]

    def totals(self) -> Totals:
        """Requests, rows, rejections and errors so far (all workers' when there is a store)."""
        if self.store is not None:
            return self.store.totals(self.name, version=self.version)
        with self._lock:
            return Totals(self._requests, self._rows, self._rejected, self._errors)

    def health(self) -> HealthReport:
        """Judge the model now. Never mutates the monitor's state, apart from the last status seen and the
        baselines it adopts from served traffic when the reference's outputs or performance are training rows'.

        Whatever the store holds, this answers: rows that do not decode are skipped where they are read,
        and should anything else in the store's content fail the judgement, this worker's own traffic is
        judged instead, with the ``store`` check alerting.
        """
        try:
            return self._judge()
        except Exception as exc:
            if self.store is None:
                raise
            self._log.error("health_store_content_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return self._judge(read_error=f"the log store's content could not be judged ({type(exc).__name__})")

    def _judge(self, read_error: str | None = None) -> HealthReport:
        store = self.store if read_error is None else None
        if store is not None:
            if store.stats().last_error is None:  # let this worker's own latest requests land first
                store.flush(timeout=0.5)
            try:
                totals = store.totals(self.name, version=self.version)
                recent = self._recent_from_store(store)
                warnings = store.warnings(self.name, version=self.version)
                replicas = store.replicas(self.name, version=self.version)
                window = self.window_data()
            except StoreError as exc:  # the file is gone or unreadable: judge this worker's own traffic
                read_error = str(exc)
                store = None
        if store is None:
            replicas = []
            with self._lock:
                totals = Totals(self._requests, self._rows, self._rejected, self._errors)
                recent = list(self._recent)
            warnings = self.warnings.snapshot()
            window = self.window_data(memory=True)
        columns = Columns.of(window.inputs, self.baseline)
        cal_inputs, cal_outputs = self.calibration()
        inputs_source = source_of(self.reference.provenance.features, self.reference.rows)
        data_drift = drift_check(
            "data_drift", self.baseline, cal_inputs, columns, self.min_rows, skip=self.redact, baseline=inputs_source
        )
        quality = quality_check(
            self.baseline,
            columns,
            _with_rejections(window, recent, self.baseline.names),
            self.min_rows,
            skip=self.redact,
            reveal=self.report_values,
        )
        inputs_ok = data_drift.status is Status.OK and quality.status is Status.OK  # served baselines are taken only then
        checks: list[CheckResult] = [
            data_drift,
            self._prediction_drift(window, cal_outputs, inputs_ok, memory=store is None),
            self._concept(data_drift, window, store is not None, inputs_ok),
            quality,
            joint_check(self.joint_baseline(), window.inputs, columns, self.baseline, self.min_rows),
            estimate_check(self.reference.confidence, window.outputs, self.min_rows),
            pipeline_check(summarise(recent), self.thresholds),
            store_check(self.store.stats() if self.store is not None else None, read_error=read_error),
            environment_check(self._env_diff, self._python[0], self._python[1], warnings),
        ]
        if replicas:  # a store shared by a fleet: the store and environment checks speak for every replica
            checks[-2] = fleet_store_check(checks[-2], replicas, self.store.replica if self.store is not None else None)
            checks[-1] = fleet_environment_check(checks[-1], replicas)
        status = worst(c.status for c in checks)
        self._note_transition(status, checks)
        report = HealthReport(
            status=status,
            model_name=self.name,
            model_version=self.version,
            generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            window_rows=window.rows,
            window_capacity=self.window,
            requests=totals.requests,
            rows=totals.rows,
            rejected=totals.rejected,
            errors=totals.errors,
            checks=tuple(checks),
            replicas=replica_statuses(replicas),
        )
        for listener in self._listeners:
            try:
                listener(report)
            except Exception as exc:  # an exporter's failure must not fail the health answer
                self._log.error("health_listener_failed", listener=repr(listener)[:100], error=repr(exc)[:300])
        return report

    def calibration(self) -> tuple[Calibration, Calibration | None]:
        """Thresholds for this window size (computed once, on first use or in the background at start)."""
        with self._calibration_lock:
            if self._calibrations is None:
                inputs = Calibration.fit(self.baseline, self.window, ALPHA_DATA)
                outputs = (
                    Calibration.fit(self.output_baseline, self.window, ALPHA_PREDICTION)
                    if self.output_baseline is not None
                    else None
                )
                self._calibrations = (inputs, outputs)
            return self._calibrations

    def joint_baseline(self) -> JointBaseline:
        """What the joint drift check compares with (computed once, on first use or in the background at start)."""
        with self._joint_lock:
            if self._joint is None:
                self._joint = JointBaseline.fit(self.reference.row_sample, self.baseline, self.window, self.redact)
            return self._joint

    def window_data(self, memory: bool = False, rows: int | None = None) -> WindowData:
        """The newest ``window`` (or ``rows``) rows: every worker's, from the store, or this process's."""
        output_width = self.output_baseline.width if self.output_baseline is not None else None
        if self.store is not None and self._window_in_store and not memory:
            # Chunks of another shape were written under an older reference of the same model version: skip them.
            chunks: Any = (
                c
                for c in self.store.window_chunks(self.name, version=self.version)
                if c.inputs.shape[1] == self.baseline.width
                and (output_width is None or (c.outputs is not None and c.outputs.shape[1] == output_width))
            )
        else:
            chunks = iter(self._memory_window.newest_first())
        return assemble(chunks, rows or self.window, self.baseline.width, output_width)

    def _prediction_drift(
        self, window: WindowData, calibration: Calibration | None, inputs_ok: bool, memory: bool = False
    ) -> CheckResult:
        if self.output_baseline is None or calibration is None or window.outputs is None:
            return CheckResult(
                "prediction_drift",
                Status.OK,
                "Not judged: the reference has no profile of the model's outputs"
                " (build it with predictions=, or give guard() training data).",
            )
        base, source = self.output_baseline, source_of(self.reference.provenance.outputs, self.reference.outputs[0].count)
        if self._adopt_outputs:
            served, kept = self._served.outputs(), window.rows
            if served is None and window.rows >= self.window:  # a full window: enough rows, unless inputs fail
                served, kept = self._adopt_served_outputs(memory) if inputs_ok else (None, self._kept_rows)
            if served is None:
                return _collecting_outputs(kept, self._kept_rows)
            if self.metrics is not None and not self._shares_exported:
                self._shares_exported = True
                self.metrics.reference_shares(served.profiles)
            base, calibration, source = served.baseline, served.calibration, served.source
        columns = Columns.of(window.outputs, base)
        return drift_check("prediction_drift", base, calibration, columns, self.min_rows, what="outputs", baseline=source)

    def _adopt_served_outputs(self, memory: bool) -> tuple[AdoptedOutputs | None, int]:
        """Adopt the outputs of the newest ``_kept_rows`` rows when there are that many and their inputs pass the
        data-drift and data-quality checks (judged as a window of that size is); and the rows there are."""
        kept = self.window_data(memory=memory, rows=self._kept_rows)
        if kept.rows < self._kept_rows or kept.outputs is None:
            return None, kept.rows
        if kept.rows > self.window:
            columns = Columns.of(kept.inputs, self.baseline)
            cal_inputs, _ = self.calibration()
            drift = drift_check("data_drift", self.baseline, cal_inputs, columns, self.min_rows, skip=self.redact)
            quality = quality_check(self.baseline, columns, kept, self.min_rows, skip=self.redact)
            if drift.status is not Status.OK or quality.status is not Status.OK:
                return None, kept.rows
        return self._served.adopt_outputs(kept.outputs), kept.rows

    def judged_outputs(self) -> tuple[FeatureProfile, ...]:
        """The output profiles prediction drift judges against: the reference's, or those adopted from served traffic."""
        served = self._served.outputs() if self._adopt_outputs else None
        return served.profiles if served is not None else self.reference.outputs

    def _note_transition(self, status: Status, checks: list[CheckResult]) -> None:
        with self._transition_lock:  # the periodic evaluator and a health request may judge at once
            previous, self._last_status = self._last_status, status
        if previous is not None and previous is not status:
            bad = {c.name: c.summary for c in checks if c.status.rank >= Status.WARN.rank}
            log = self._log.warning if status.rank > previous.rank else self._log.info
            log("status_changed", previous=previous.value, status=status.value, checks=bad)


def _log_new_warning(log: Any, warning: WarningRecord) -> None:
    log.warning("model_warning", category=warning.category, message=warning.message, location=warning.location)


def _evaluate_periodically(ref: weakref.ref[Monitor], stop: threading.Event, interval: float) -> None:
    """Judge a monitor's health every ``interval`` seconds, in the middle of each history slot (so that every
    slot gets a snapshot despite timer jitter), the first time at least half an interval after start; until
    ``stop`` is set or the monitor is garbage (a monitor nobody closed is not kept alive by this thread)."""
    wait = interval - ((time.time() - interval / 2) % interval)
    wait += interval if wait < interval / 2 else 0.0
    while not stop.wait(wait):
        monitor = ref()
        if monitor is None:
            return
        try:
            monitor.health()
        except Exception as exc:  # never let the evaluator die: the next slot may work
            monitor._log.error("health_evaluation_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        del monitor
        wait = interval - ((time.time() - interval / 2) % interval)


def _with_rejections(window: WindowData, recent: list[RecentRequest], names: tuple[str, ...]) -> WindowData:
    """Add the features named by recently rejected requests to the window's wrong-type counts."""
    index = {name: j for j, name in enumerate(names)}
    errors = dict(window.type_errors)
    for r in recent:
        for feature in r.problem_features:
            j = index.get(feature)
            if j is not None:
                errors[j] = errors.get(j, 0) + 1
    if errors == window.type_errors:
        return window
    return WindowData(window.inputs, window.outputs, window.unseen, errors)


def _recent_request(r: dict[str, Any]) -> RecentRequest | None:
    """A stored request as the pipeline check reads it; None for a status it does not know. Values of
    the wrong type (a damaged row) count as absent."""
    status = r["status"]
    if status not in ("ok", "rejected", "error"):
        return None
    try:
        stages = json.loads(r["stages"]) if r["stages"] else {}
    except (TypeError, ValueError):
        stages = {}
    try:
        problems = json.loads(r["problem_features"]) if r["problem_features"] else []
    except (TypeError, ValueError):
        problems = []
    return RecentRequest(
        status,
        _milliseconds(r["latency_ms"]),
        {str(k): _milliseconds(v) for k, v in stages.items()} if isinstance(stages, dict) else {},
        r["failed_stage"] if isinstance(r["failed_stage"], str) else None,
        tuple(p for p in problems if isinstance(p, str)) if isinstance(problems, list) else (),
    )


def _milliseconds(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else 0.0


def _collecting_outputs(rows: int, needed: int) -> CheckResult:
    waiting = f"{rows} of {needed} rows" if rows < needed else f"waiting for {needed} rows whose inputs pass the data checks"
    return CheckResult(
        "prediction_drift",
        Status.INSUFFICIENT_DATA,
        f"Collecting a baseline of the model's outputs from served traffic ({waiting}): the reference's outputs are"
        " the model's on its training rows, where it is more confident than on new rows (guard(..., holdout=) gives"
        " one from the start).",
    )


def _collecting_performance(labelled: int, window: int, had_reference: bool) -> CheckResult:
    why = (
        "the reference's performance is the model's on its training rows, better than on new rows"
        if had_reference
        else "the reference has no performance"
    )
    waiting = f"{labelled} of {window} labelled rows" if labelled < window else "waiting for inputs that pass the data checks"
    return CheckResult(
        "concept_drift",
        Status.INSUFFICIENT_DATA,
        f"Collecting a performance baseline from served traffic ({waiting}): {why}"
        " (guard(..., holdout=(X_val, y_val)) gives one from the start).",
    )
