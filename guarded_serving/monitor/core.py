"""Monitor: the framework-free core every request goes through, assembled from its parts.

recording.py   Recorder: a finished request accounted for, encoded for the window, queued for the store
feedback.py    Labels: labels checked, stored and joined to the outputs they label
evaluation.py  Evaluator: the health report from every check; judged.py, what drift and the estimate judge against
periodic.py    PeriodicEvaluator: health judged every ``history_interval`` seconds
exporters      attached through :meth:`Monitor.subscribe`: the history (always), Prometheus metrics
               (with ``metrics=``); neither is imported by the parts above
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np

from ..drift.baseline import Baseline
from ..drift.window import Chunk, WindowData
from ..environment import WarningLog, WarningRecord
from ..errors import InputError, Problem, StoreError
from ..health import HealthReport
from ..histograms import FeatureHistogram, window_histograms
from ..history import MEMORY_KEEP, History, Snapshot
from ..inputs import kind_of_reference, redacted_kind, withheld_descriptors
from ..logs import get_logger
from ..options import MonitorKeywords, Options
from ..profiles import FeatureProfile
from ..redaction import redacted_reference
from ..reference import Reference
from ..store import RequestRecord, Store, Totals, open_store
from .evaluation import Evaluator
from .feedback import FeedbackResult, Labels
from .judged import kept_rows
from .periodic import PeriodicEvaluator
from .recording import Recorder
from .references import as_reference

if TYPE_CHECKING:
    from ..metrics import MetricsExporter

__all__ = ["Monitor"]


class Monitor:
    """Watches one model: records requests, and judges health on demand.

    Usable in any Python process (a batch job, another web framework, a test)::

        monitor = Monitor(X_train, name="churn", db="guarded_serving.db")
        with monitor:
            request_id = monitor.observe(rows, predictions)
            report = monitor.health()

    ``reference``: a :class:`Reference`, a saved one's path, or training data to profile. ``db``: the log store's
    path, None (or ``":memory:"``) for none, or a :class:`Store`. ``metrics``: a Prometheus metrics factory (the
    ``prometheus_client`` module). The other keywords are :class:`~guarded_serving.options.Options`'.
    """

    def __init__(
        self,
        reference: Any,
        *,
        db: str | os.PathLike[str] | Store | None = None,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str | int] | None = None,
        metrics: Any = None,
        **options: Unpack[MonitorKeywords],
    ) -> None:
        made = Options.of(db=None if isinstance(db, Store) else db, **options)
        reference = as_reference(reference, feature_names, categorical, made.request.input_format)
        self._assemble(reference, made, db if isinstance(db, Store) else None, metrics)

    @classmethod
    def of(cls, reference: Reference, options: Options, *, store: Store | None = None, metrics: Any = None) -> Monitor:
        """A monitor of ``reference`` with options already made (guard() makes them once); ``store`` instead of
        the one ``options.db`` names (an offline report's reader)."""
        monitor = cls.__new__(cls)
        monitor._assemble(reference, options, store, metrics)
        return monitor

    def _assemble(self, reference: Reference, options: Options, store: Store | None, metrics: Any) -> None:
        options.check_reference(reference)
        withheld = withheld_descriptors(reference, options.privacy.redact)
        if withheld:  # a redacted text's drawn token would quote it: withheld like a redacted feature
            privacy = dataclasses.replace(options.privacy, redact=options.privacy.redact | withheld)
            options = dataclasses.replace(options, privacy=privacy)
        redact = options.privacy.redact
        if redact and reference.row_sample is not None:  # a redacted feature's values never leave, rows included
            reference = dataclasses.replace(reference, row_sample=reference.row_sample.without(redact))
        self.reference = reference
        self.options = options
        monitoring = options.monitor
        self.name, self.version, self.window = monitoring.name, monitoring.version, monitoring.window
        self.history_interval = float(monitoring.history_interval)
        kept = kept_rows(bool(reference.outputs), reference.provenance.outputs, self.window)
        self.store = store if store is not None else _open_store(options, kept)
        self.baseline = Baseline.from_profiles(reference.features, monitoring.methods)
        self.output_baseline = Baseline.from_profiles(reference.outputs, monitoring.methods) if reference.outputs else None
        self._log = get_logger().bind(model=self.name)
        # The logger, not the monitor: no reference cycle, so a monitor nobody holds is freed (and its evaluator stops).
        self.warnings = WarningLog(on_new=functools.partial(_log_new_warning, self._log))
        features = reference.feature_names
        self._recorder = Recorder(
            options, features, self.baseline, self.output_baseline, self.store, kept, self.warnings, self._log,
            kind=kind_of_reference(reference),
        )  # fmt: skip
        self._labels = Labels(reference, self.name, self.version, self.store, self.window)
        self._recorder.on_record(self._labels.remember)
        self._evaluator = Evaluator(
            reference, options, self.store, self.baseline, self.output_baseline, self._recorder, self._labels,
            self.warnings, kept, self._log,
        )  # fmt: skip
        self._history = History(self.name, self.history_interval, self.store, version=self.version)
        self.subscribe(self._history.record)
        self._periodic = PeriodicEvaluator(self.history_interval, self._log)
        self._started = False  # start() runs once: on the first record, observe or label when not called before
        self._start_lock = threading.Lock()
        self._metrics_factory = _metrics_factory(metrics) if metrics is not None else None
        self.metrics: MetricsExporter | None = None

    # -- what it was made with ----------------------------------------------------------------
    @property
    def redact(self) -> frozenset[str]:
        return self.options.privacy.redact

    @property
    def min_rows(self) -> int:
        """Rows the window needs before drift and quality are judged (an offline report sets the live service's)."""
        return self._evaluator.min_rows

    @min_rows.setter
    def min_rows(self, rows: int) -> None:
        self._evaluator.min_rows = rows

    def settings(self) -> dict[str, Any]:
        """The settings that decide how health is judged (as JSON values), saved with the reference."""
        return self.options.settings()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Monitor:
        """Open the store and start its writer, start judging health every ``history_interval`` seconds,
        and start the metrics exporter when ``metrics=`` was given.

        The writer records the reference and :meth:`settings` in the store's ``models`` table, so that
        ``guarded-serving report`` can judge the file again offline, the way this monitor does.

        Once until :meth:`close`: a second call does nothing. A monitor given rows or labels before it was started starts then,
        so that a ``Monitor(..., db=path)`` used without ``with`` or ``start()`` still writes what it records
        (it used to keep them in a buffer no writer read, lost at exit, and refuse labels: the file did not exist).
        """
        with self._start_lock:
            if self._started:
                return self
            self._started = True
        if self.store is not None:
            self.store.open()
            # A redacted feature's profile holds its values, and a redacted text's vocabulary its words.
            saved = redacted_kind(redacted_reference(self.reference, self.redact), self.redact)
            reference = json.dumps(saved.to_json(), separators=(",", ":"), allow_nan=False)
            self.store.save_model(self.name, self.version, reference, self.settings())
        threading.Thread(target=self.calibration, name="guarded-serving-calibration", daemon=True).start()
        threading.Thread(target=self.joint_baseline, name="guarded-serving-joint-calibration", daemon=True).start()
        if self._metrics_factory is not None:
            if self.metrics is None:
                self.metrics = _attach_metrics(self, self._metrics_factory)
            self.metrics.start()
        self._periodic.start(self, _judge)
        self._evaluator.log_environment()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop the periodic health evaluation, flush the store and stop its writer, waiting at most ``timeout`` seconds."""
        with self._start_lock:
            self._started = False  # a monitor may be started again after it closed
        timeout = self._periodic.stop(timeout)
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

    # -- recording and labels ---------------------------------------------------------------
    def encode(
        self,
        inputs: Sequence[Sequence[Any]] | np.ndarray,
        outputs: Sequence[Any] | None,
        *,
        input_matrix: np.ndarray | None = None,
        output_array: Any = None,
    ) -> Chunk:
        """Encode rows (in feature order) and their predictions for the drift window: O(features) per row.

        ``input_matrix`` (the rows as float64, for an all-numeric reference; ``inputs`` may then be that
        matrix itself) and ``output_array`` (the model's own numeric result) spare converting the rows and
        outputs again.
        """
        return self._recorder.encode(inputs, outputs, input_matrix=input_matrix, output_array=output_array)

    def record(self, record: RequestRecord) -> None:
        """Account for one finished request (answered, rejected or failed) and queue it for the store."""
        if not self._started:
            self.start()
        self._recorder.record(record)

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
        if not self._started:
            self.start()
        return self._recorder.observe(rows, predictions, request_id=request_id, latency_ms=latency_ms, stages=stages)

    def feedback(self, request_id: str, labels: Sequence[Any]) -> FeedbackResult:
        """Labels for every row of an answered request, in row order; they may arrive late and out of order."""
        if not isinstance(labels, (list, tuple)):
            raise InputError([Problem(f"labels is {type(labels).__name__}", "a list with one label per row")])
        return self.feedback_items([(request_id, row, label) for row, label in enumerate(labels)], whole_requests=True)

    def feedback_items(self, items: Sequence[tuple[str, int, Any]], whole_requests: bool = False) -> FeedbackResult:
        """Labels as (request id, row, label). Everything is checked before anything is stored: on any
        problem (an unknown id, a row out of range, a label of the wrong kind) nothing is written."""
        if not self._started:
            self.start()
        return self._labels.feedback_items(items, whole_requests)

    # -- health ----------------------------------------------------------------------------
    def totals(self) -> Totals:
        """Requests, rows, rejections and errors so far (all workers' when there is a store)."""
        if self.store is not None:
            return self.store.totals(self.name, version=self.version)
        return self._recorder.totals()

    def health(self) -> HealthReport:
        """Judge the model now. Never mutates the monitor's state, apart from the last status seen and the
        baselines it adopts from served traffic when the reference's outputs or performance are training rows'.

        Whatever the store holds, this answers: rows that do not decode are skipped where they are read,
        and should anything else in the store's content fail the judgement, this worker's own traffic is
        judged instead, with the ``store`` check alerting.
        """
        return self._evaluator.health()

    def subscribe(self, listener: Callable[[HealthReport], object]) -> None:
        """Call ``listener`` with every health report this monitor computes (exporters, history).

        A listener that raises is logged and otherwise ignored: it never fails a health request.
        """
        self._evaluator.subscribe(listener)

    def history(self, since: float | None = None, limit: int = MEMORY_KEEP) -> list[Snapshot]:
        """Health snapshots, oldest first: the newest ``limit`` taken at or after ``since`` (epoch seconds).

        With a store, every worker's (one per ``history_interval`` slot); without one, this process's.
        """
        return self._history.read(since, limit)

    def histograms(self) -> tuple[FeatureHistogram, ...]:
        """The window's inputs (and outputs) on the reference's bins, for the dashboard; redacted features left out."""
        try:
            window = self.window_data()
        except StoreError:
            window = self.window_data(memory=True)
        return window_histograms(self.reference.features, self.judged_outputs(), window, skip=self.redact)

    def calibration(self) -> Any:
        """Thresholds for this window size (computed once, on first use or in the background at start)."""
        return self._evaluator.calibration()

    def joint_baseline(self) -> Any:
        """What the joint drift check compares with (computed once, on first use or in the background at start)."""
        return self._evaluator.joint_baseline()

    def window_data(self, memory: bool = False, rows: int | None = None) -> WindowData:
        """The newest ``window`` (or ``rows``) rows: every worker's, from the store, or this process's."""
        return self._evaluator.window_data(memory, rows)

    def judged_outputs(self) -> tuple[FeatureProfile, ...]:
        """The output profiles prediction drift judges against: the reference's, or those adopted from served traffic."""
        return self._evaluator.judged.judged_outputs()


def _metrics_factory(metrics: Any) -> Any:
    """The factory, once checked: the Prometheus exporter is loaded only when asked for (the core imports no exporter)."""
    from ..metrics import check_factory

    return check_factory(metrics)


def _attach_metrics(monitor: Monitor, factory: Any) -> MetricsExporter:
    """The Prometheus exporter, attached: it sees every record, every report and the adopted output baseline."""
    from ..metrics import MetricsExporter

    store = monitor.store
    exporter = MetricsExporter(
        factory,
        model=monitor.name,
        version=monitor.options.monitor.version,
        inputs=monitor.baseline,
        outputs=monitor.output_baseline,
        outputs_judged=not monitor._evaluator.judged.adopt_outputs,
        skip=monitor.redact,
        store_stats=store.stats if store is not None else lambda: None,
        labels=monitor.options.privacy.metrics_labels,
    )
    monitor._recorder.on_record(exporter.add)
    monitor._evaluator.judged.on_outputs_adopted(exporter.reference_shares)
    monitor.subscribe(exporter.on_report)
    return exporter


def _judge(monitor: Monitor) -> None:
    monitor.health()


def _open_store(options: Options, window: int) -> Store | None:
    """The log store ``options.db`` names (None for none), keeping ``window`` rows of the shared drift window."""
    return open_store(options.db, dataclasses.replace(options.store, window=window))


def _log_new_warning(log: Any, warning: WarningRecord) -> None:
    log.warning("model_warning", category=warning.category, message=warning.message, location=warning.location)
