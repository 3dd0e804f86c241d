"""Prometheus metrics: the health report's verdicts, the request path's counts and latencies, the log
store's counters, and per-feature histograms that a fleet of replicas can add up.

Nothing here imports prometheus_client. A :class:`MetricsExporter` takes a *metrics factory*: anything
with prometheus_client's ``Gauge``, ``Counter`` and ``Histogram`` constructors (the prometheus_client
module itself; the BentoML adapter passes it from inside each worker, once BentoML has put
prometheus_client in multiprocess mode, so that ``/metrics`` merges every worker's values).

The request path pays for one ``deque.append``: :meth:`MetricsExporter.add` queues a finished
request's status, rows, latency, stage timings and its rows as already encoded for the drift window,
and a daemon thread folds the queue into the metrics every ``interval`` seconds (counts per status,
latency histograms filled with one ``searchsorted`` per label set, rows per reference bin with
:class:`~guarded_serving.drift.bins.FeatureBins`). The gauges are set from each health report,
through :meth:`~guarded_serving.monitor.Monitor.subscribe`. Every series is labelled by ``model`` and
``version`` (``""`` for an unversioned model): two versions served side by side, a canary beside the current
one, keep their own series.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .concept import ConceptDetails
from .drift.baseline import Baseline
from .drift.bins import FeatureBins, by_feature
from .drift.checks import DriftDetails
from .drift.joint import JointDetails
from .drift.quality import QualityDetails
from .drift.window import Chunk
from .errors import ConfigurationError
from .estimate import EstimateDetails
from .health import HealthReport, Status
from .logs import get_logger
from .options import METRICS_LABELS
from .stages import BATCH_SIZE
from .store import RequestRecord, StoreStats

__all__ = [
    "LATENCY_BUCKETS",
    "METRICS",
    "STATUS_VALUES",
    "MetricSpec",
    "MetricsExporter",
    "check_factory",
    "observe_many",
]

STATUS_VALUES = {Status.INSUFFICIENT_DATA: -1.0, Status.OK: 0.0, Status.WARN: 1.0, Status.ALERT: 2.0}
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIX = "guarded_serving_"
# The report's series that name no feature: all that metrics_labels="none" exports of a report.
_MODEL_LEVEL = frozenset(
    {
        "guarded_serving_status",
        "guarded_serving_window_rows",
        "guarded_serving_health_timestamp_seconds",
        "guarded_serving_check_status",
        "guarded_serving_performance",
        "guarded_serving_estimated_performance",
        "guarded_serving_labels_received",
    }
)
DRIFT_STATISTICS = ("mean_shift_std", "spread_ratio", "wasserstein", "psi", "js", "tv")
_Pending = tuple[str, int, float, dict[str, float], Chunk | None]  # status, rows, latency (ms), stages (ms), window


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric. ``mode`` is a gauge's multiprocess mode (how workers' values combine)."""

    name: str
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    mode: str = "mostrecent"


def _spec(name: str, kind: str, labels: str, help: str, mode: str = "mostrecent") -> MetricSpec:
    return MetricSpec(PREFIX + name, kind, tuple(labels.split()), help, mode)


METRICS = (
    # from each health report (every worker reads the same store, so the newest report is the answer)
    _spec("status", "gauge", "model version", "Overall health: -1 insufficient_data, 0 ok, 1 warn, 2 alert."),
    _spec("check_status", "gauge", "model version check", "Each check's status, coded as guarded_serving_status."),
    _spec("feature_status", "gauge", "model version check feature", "Per-feature status of the drift and quality checks."),
    _spec("drift_score", "gauge", "model version check feature method", "The primary method's drift score on the window."),
    _spec("drift_threshold", "gauge", "model version check feature method", "The calibrated threshold of that score."),
    _spec("drift_statistic", "gauge", "model version check feature statistic", "Other drift statistics of the window."),
    _spec("quality_statistic", "gauge", "model version feature statistic", "Missing rate, out-of-range share, wrong types."),
    _spec(
        "performance", "gauge", "model version metric of", "Realized performance: on labelled rows (of=window), the reference's."
    ),
    _spec(
        "estimated_performance", "gauge", "model version metric of", "Estimated from outputs: of=window, reference, low, high."
    ),
    _spec("labels_received", "gauge", "model version", "Labels received through /feedback, all workers."),
    _spec("window_rows", "gauge", "model version", "Rows in the window the drift checks judged."),
    _spec("health_timestamp_seconds", "gauge", "model version", "When the newest health report was computed."),
    # from the request path, summed over workers
    _spec("requests_total", "counter", "model version status", "Requests by outcome: ok, rejected, error."),
    _spec("rows_total", "counter", "model version", "Rows of answered requests."),
    _spec("request_duration_seconds", "histogram", "model version status", "Request latency, before logging."),
    _spec("stage_duration_seconds", "histogram", "model version stage", "Latency of each pipeline stage."),
    _spec("feature_bin_total", "counter", "model version source feature bin", "Rows per reference bin, per feature."),
    _spec("feature_missing_total", "counter", "model version source feature", "Rows with the feature missing."),
    _spec("feature_reference_share", "gauge", "model version source feature bin", "The reference's share of each bin."),
    # from this worker's store writer
    _spec("store_rows_written_total", "counter", "model version", "Rows written to the log store."),
    _spec("store_rows_dropped_total", "counter", "model version", "Rows dropped: buffer full or unwritable."),
    _spec("store_file_replaced_total", "counter", "model version", "Times the database file was found deleted or replaced."),
    _spec("store_pending_rows", "gauge", "model version", "Rows waiting in memory for the writer.", "livesum"),
    _spec("store_failing", "gauge", "model version", "1 while the last write failed, else 0.", "livemax"),
)


def check_factory(factory: Any) -> Any:
    """The factory, or a ConfigurationError naming what it lacks."""
    missing = [name for name in ("Gauge", "Counter", "Histogram") if not callable(getattr(factory, name, None))]
    if missing:
        raise ConfigurationError("metrics", factory, f"an object with prometheus_client's {', '.join(missing)} (the module)")
    return factory


_INSTRUMENTS: dict[int, tuple[Any, dict[str, Any]]] = {}
_INSTRUMENTS_LOCK = threading.Lock()


def _instruments(factory: Any) -> dict[str, Any]:
    """The metric objects of a factory, created once per factory: monitors in one process share them
    (a registry refuses a name twice); their ``model`` and ``version`` labels keep them apart."""
    with _INSTRUMENTS_LOCK:
        cached = _INSTRUMENTS.get(id(factory))
        if cached is not None and cached[0] is factory:
            return cached[1]
        made: dict[str, Any] = {}
        for spec in METRICS:
            if spec.kind == "counter":
                made[spec.name] = factory.Counter(spec.name, spec.help, spec.labels)
            elif spec.kind == "histogram":
                made[spec.name] = factory.Histogram(spec.name, spec.help, spec.labels, buckets=LATENCY_BUCKETS)
            else:
                made[spec.name] = factory.Gauge(spec.name, spec.help, spec.labels, multiprocess_mode=spec.mode)
        _INSTRUMENTS[id(factory)] = (factory, made)
        return made


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every value (NaN aside). On prometheus_client's histograms, each
    bucket's count is added at once through their per-bucket values (``_buckets``, ``_upper_bounds``,
    ``_sum``): an observe costs ~5 us in multiprocess mode. Any other histogram gets its observes."""
    values = values[~np.isnan(values)]
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for v in values:
            histogram.observe(float(v))
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=float), values, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts):
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))


class MetricsExporter:
    """Keeps one model's Prometheus metrics up to date (see the module docstring)."""

    def __init__(
        self,
        factory: Any,
        *,
        model: str,
        inputs: Baseline,
        outputs: Baseline | None = None,
        outputs_judged: bool = True,
        skip: Iterable[str] = (),
        store_stats: Callable[[], StoreStats | None] = lambda: None,
        interval: float = 1.0,
        capacity: int = 10_000,
        labels: str = "names",
        version: str | None = None,
    ) -> None:
        if labels not in METRICS_LABELS:
            raise ConfigurationError("metrics_labels", labels, f"one of {list(METRICS_LABELS)}")
        self.model = model
        self.version = version or ""  # the label of an unversioned model's series
        self.interval = interval
        self.labels = labels
        self._metrics = _instruments(check_factory(factory))
        indexed = labels == "indexed"
        self._bins = [FeatureBins.of(inputs, "input", skip, indexed)] if labels != "none" else []
        if outputs is not None and labels != "none":
            self._bins.append(FeatureBins.of(outputs, "output", indexed=indexed))
        # False while the outputs' baseline is being collected from served traffic (see reference_shares)
        self._outputs_judged = outputs_judged
        self._store_stats = store_stats
        self._capacity = capacity
        self._pending: collections.deque[_Pending] = collections.deque()
        self._overflow = 0
        self._store_seen = {"written": 0, "dropped": 0, "replaced": 0}
        self._reported: set[tuple[str, tuple[str, ...]]] = set()
        self._flush_lock = threading.Lock()
        self._report_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger().bind(model=model)

    def _get(self, name: str, *labels: str) -> Any:
        return self._metrics[name].labels(self.model, self.version, *labels)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> MetricsExporter:
        """Create every series a dashboard expects from the start (at 0), and start the flushing thread."""
        if self._thread is not None:
            return self
        for status in ("ok", "rejected", "error"):
            self._get("guarded_serving_requests_total", status)
        self._get("guarded_serving_rows_total")
        for bins in self._bins:
            for _, name, labels, shares in bins.features:
                self._get("guarded_serving_feature_missing_total", bins.source, name)
                judged = bins.source != "output" or self._outputs_judged
                for label, share in zip(labels, shares, strict=True):
                    self._get("guarded_serving_feature_bin_total", bins.source, name, label)
                    self._get("guarded_serving_feature_reference_share", bins.source, name, label).set(
                        float(share) if judged else math.nan
                    )
        self._fold_store(self._store_stats())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="guarded-serving-metrics", daemon=True)
        self._thread.start()
        return self

    def reference_shares(self, profiles: Iterable[Any]) -> None:
        """Export the shares of an output baseline adopted from served traffic (the reference's are the model's
        training rows', which fleet-wide drift rules must not compare with): its profiles on the same bins."""
        self._outputs_judged = True
        for bins in self._bins[1:]:
            for name, shares in bins.shares_of(profiles).items():
                labels = next(labels for _, n, labels, _ in bins.features if n == name)
                for label, share in zip(labels, shares, strict=True):
                    self._get("guarded_serving_feature_reference_share", bins.source, name, label).set(float(share))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and fold in what is still pending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception as exc:  # a metrics failure must never stop the service, nor this thread
                self._log.error("metrics_flush_failed", error=repr(exc)[:300])

    # -- request path ----------------------------------------------------------------------
    def add(self, record: RequestRecord) -> None:
        """Queue what the metrics need of a finished request: O(1), and not its rows (kept alive for a
        second they would cost the garbage collector). ``stages`` is read a flush later, once the
        request has timed its ``log`` stage too."""
        if len(self._pending) < self._capacity:
            self._pending.append((record.status, record.rows, record.latency_ms, record.stages, record.window))
        else:
            self._overflow += 1

    def flush(self) -> None:
        """Fold the queued requests and the store's counters into the metrics."""
        with self._flush_lock:
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            overflow, self._overflow = self._overflow, 0
            if overflow:
                self._log.warning("metrics_buffer_full", skipped=overflow, capacity=self._capacity)
            if batch:
                self._fold(batch)
            self._fold_store(self._store_stats())

    def _fold(self, batch: list[_Pending]) -> None:
        statuses: dict[str, list[float]] = {}
        stages: dict[str, list[float]] = {}
        rows = 0
        chunks = []
        for status, count, latency_ms, timings, window in batch:
            statuses.setdefault(status, []).append(latency_ms)
            for name, ms in dict(timings).items():  # dict(): one atomic copy, the request may still add "log"
                if name != BATCH_SIZE:  # a count, not a duration
                    stages.setdefault(name, []).append(ms)
            if status == "ok":
                rows += count
            if window is not None:
                chunks.append(window)
        for status, latencies in statuses.items():
            self._get("guarded_serving_requests_total", status).inc(len(latencies))
            observe_many(self._get("guarded_serving_request_duration_seconds", status), np.asarray(latencies) / 1000.0)
        for name, durations in stages.items():
            observe_many(self._get("guarded_serving_stage_duration_seconds", name), np.asarray(durations) / 1000.0)
        if rows:
            self._get("guarded_serving_rows_total").inc(rows)
        if chunks and self._bins:
            self._fold_bins(self._bins[0], by_feature([c.inputs for c in chunks]))
            with_outputs = [c.outputs for c in chunks if c.outputs is not None]
            if len(self._bins) > 1 and with_outputs:
                self._fold_bins(self._bins[1], by_feature(with_outputs))

    def _fold_bins(self, bins: FeatureBins, columns: np.ndarray) -> None:
        for name, labels, counts, missing in bins.count(columns):
            for k in np.flatnonzero(counts):
                self._get("guarded_serving_feature_bin_total", bins.source, name, labels[k]).inc(int(counts[k]))
            if missing:
                self._get("guarded_serving_feature_missing_total", bins.source, name).inc(missing)

    def _fold_store(self, stats: StoreStats | None) -> None:
        if stats is None:
            return
        seen = self._store_seen
        for key, metric in (
            ("written", "guarded_serving_store_rows_written_total"),
            ("dropped", "guarded_serving_store_rows_dropped_total"),
            ("replaced", "guarded_serving_store_file_replaced_total"),
        ):
            value, counter = getattr(stats, key), self._get(metric)  # created at 0 on the first flush
            if value > seen[key]:  # `written` can dip for an instant while a batch is retried row by row
                counter.inc(value - seen[key])
                seen[key] = value
        self._get("guarded_serving_store_pending_rows").set(stats.pending)
        self._get("guarded_serving_store_failing").set(1.0 if stats.last_error else 0.0)

    # -- health reports --------------------------------------------------------------------
    def on_report(self, report: HealthReport) -> None:
        """Set the gauges from a health report; series the report no longer carries become NaN."""
        values = dict(_report_values(report))
        if self.labels == "none":  # no series that names a feature
            values = {key: value for key, value in values.items() if key[0] in _MODEL_LEVEL}
        with self._report_lock:
            for name, labels in self._reported - values.keys():
                self._get(name, *labels).set(math.nan)
            for (name, labels), value in values.items():
                self._get(name, *labels).set(value)
            self._reported = set(values)


def _report_values(report: HealthReport) -> Iterable[tuple[tuple[str, tuple[str, ...]], float]]:
    """(metric, labels after ``model``) -> value, for every gauge a report sets."""
    yield ("guarded_serving_status", ()), STATUS_VALUES[report.status]
    yield ("guarded_serving_window_rows", ()), float(report.window_rows)
    yield ("guarded_serving_health_timestamp_seconds", ()), dt.datetime.fromisoformat(report.generated_at).timestamp()
    for check in report.checks:
        yield ("guarded_serving_check_status", (check.name,)), STATUS_VALUES[check.status]
        details = check.details
        if isinstance(details, DriftDetails):
            for feature, drift in details.features.items():
                yield ("guarded_serving_feature_status", (check.name, feature)), STATUS_VALUES[drift.status]
                yield ("guarded_serving_drift_score", (check.name, feature, drift.method)), _number(drift.score)
                yield ("guarded_serving_drift_threshold", (check.name, feature, drift.method)), _number(drift.threshold)
                for statistic in DRIFT_STATISTICS:
                    value = getattr(drift, statistic)
                    if value is not None:
                        yield ("guarded_serving_drift_statistic", (check.name, feature, statistic)), float(value)
        elif isinstance(details, QualityDetails):
            for feature, quality in details.features.items():
                yield ("guarded_serving_feature_status", (check.name, feature)), STATUS_VALUES[quality.status]
                yield ("guarded_serving_quality_statistic", (feature, "missing_rate")), quality.missing_rate
                yield ("guarded_serving_quality_statistic", (feature, "type_errors")), float(quality.type_errors)
                yield ("guarded_serving_quality_statistic", (feature, "refused_missing")), float(quality.refused_missing)
                yield ("guarded_serving_quality_statistic", (feature, "refused_range")), float(quality.refused_range)
                if quality.out_of_range is not None:
                    yield ("guarded_serving_quality_statistic", (feature, "out_of_range")), quality.out_of_range
        elif isinstance(details, JointDetails):
            for feature, joint in details.features.items():
                yield ("guarded_serving_feature_status", (check.name, feature)), STATUS_VALUES[joint.status]
                yield ("guarded_serving_drift_score", (check.name, feature, "correlation")), _number(joint.score)
                yield ("guarded_serving_drift_threshold", (check.name, feature, "correlation")), _number(joint.threshold)
        elif isinstance(details, EstimateDetails):
            low, high = details.interval or (None, None)
            shift_low, shift_high = details.label_shift_interval or (None, None)
            for of, value in (
                ("window", details.estimated),
                ("reference", details.reference),
                ("low", low),
                ("high", high),
                ("label_shift", details.label_shift_estimated),
                ("label_shift_low", shift_low),
                ("label_shift_high", shift_high),
            ):
                if value is not None:
                    yield ("guarded_serving_estimated_performance", (details.metric, of)), float(value)
        elif isinstance(details, ConceptDetails):
            yield ("guarded_serving_labels_received", ()), float(details.labels_received)
            for metric, of, value in (
                (details.metric, "reference", details.reference),
                (details.metric, "window", details.current),
                (details.loss, "reference", details.reference_loss),
                (details.loss, "window", details.current_loss),
            ):
                if value is not None:
                    yield ("guarded_serving_performance", (metric, of)), float(value)


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
