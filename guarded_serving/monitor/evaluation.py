"""Evaluation: the health report assembled from every check, judged on the window and the recent requests.

With a store, totals, recent requests, warnings, the window and labels are every worker's, read back from
it; without one (or when it cannot be read) this process's own. Listeners (:meth:`Evaluator.subscribe`:
the history, the metrics exporter) get every report. The thresholds (calibration) and the joint baseline
are computed once, on first use or in the background at start; a window too short to judge is not kept
waiting for them (its checks read only the error budgets and the pair count).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..baselines import ServedBaselines, source_of
from ..drift.assembler import WindowAssembler
from ..drift.baseline import Baseline
from ..drift.calibration import Calibration
from ..drift.checks import ALPHA_DATA, ALPHA_PREDICTION, drift_check
from ..drift.columns import WindowColumns
from ..drift.joint import JointBaseline, RelatedPairs, joint_check
from ..drift.quality import ALPHA_QUALITY, quality_check
from ..drift.repeats import Repeats, RowKeys
from ..drift.window import WindowData, assemble
from ..environment import WarningLog, current_fingerprint, diff_environment
from ..errors import StoreError
from ..fleet import fleet_environment_check, fleet_store_check, replica_statuses
from ..health import CheckResult, HealthReport, Status, worst
from ..inputs import kind_of_reference, worded
from ..operational import environment_check, pipeline_check, store_check
from ..options import Options
from ..reference import Reference
from ..stages import RecentRequest
from ..store import Store
from ..tally import RecentTally
from .feedback import Labels
from .judged import Judged, with_rejections
from .memo import Generation, WindowMemo
from .recording import Recorder
from .stored import StoredRecent

__all__ = ["MIN_ROWS", "Evaluator"]

MIN_ROWS = 100  # drift and quality are judged once the window holds min(window, MIN_ROWS) rows


class Evaluator:
    """Judges one model version's health on demand (:meth:`health`) and hands each report to its listeners."""

    def __init__(
        self,
        reference: Reference,
        options: Options,
        store: Store | None,
        baseline: Baseline,
        output_baseline: Baseline | None,
        recorder: Recorder,
        labels: Labels,
        warnings: WarningLog,
        kept_rows: int,
        log: Any,
    ) -> None:
        self.reference = reference
        self.kind = kind_of_reference(reference)  # None for rows of scalars
        self.options = options
        self.name, self.version = options.monitor.name, options.monitor.version
        self.window = options.monitor.window
        self.redact = options.privacy.redact
        self.store = store
        self.baseline = baseline
        self.output_baseline = output_baseline
        self.recorder = recorder
        self.warnings = warnings
        self.kept_rows = kept_rows
        self.min_rows = min(self.window, MIN_ROWS)
        self.row_keys = RowKeys.of(reference.row_sample, baseline)  # how repeated rows are told (drift.repeats)
        self._log = log
        fingerprint = current_fingerprint()
        self.env_diff = diff_environment(reference.environment, fingerprint)
        self._python = (reference.environment.python, fingerprint.python)
        self._calibrations: tuple[Calibration, Calibration | None] | None = None
        self._calibration_lock = threading.Lock()
        self._joint: JointBaseline | None = None
        self._related: RelatedPairs | None = None  # its first stage, while the rest is computed
        self._related_lock = threading.Lock()
        self._joint_lock = threading.Lock()
        self._listeners: list[Callable[[HealthReport], object]] = []
        self._transition_lock = threading.Lock()
        self._last_status: Status | None = None
        self._pipeline: tuple[list[RecentRequest], CheckResult] | None = None  # the last recent requests, judged
        self._tally = RecentTally()  # their pipeline summary, moved on as they move
        self.memo = WindowMemo()  # results on the window's contents, reused until they change
        self._recent = StoredRecent()  # the recent requests read from the store, decoded once each
        # the window's rows kept from one health check to the next, new ones appended: the store's, this process's
        self._assemblers = (WindowAssembler(), WindowAssembler())
        served = ServedBaselines(
            reference, self.name, self.version, store, dict(options.monitor.methods), self.window, ALPHA_PREDICTION
        )
        self.judged = Judged(self, served, labels)

    def log_environment(self) -> None:
        """Log, once at start, how the packages differ from the reference's (the environment check says it too)."""
        diff = self.env_diff
        if diff.differs:
            self._log.warning(
                "environment_differs",
                python=diff.python,
                changed=[str(c) for c in diff.changed[:10]],
                missing=[str(c) for c in diff.missing[:10]],
            )

    def subscribe(self, listener: Callable[[HealthReport], object]) -> None:
        self._listeners.append(listener)

    def health(self) -> HealthReport:
        """Judge the model now (see :meth:`guarded_serving.monitor.Monitor.health`)."""
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
                recent = self._recent.read(store, self.name, self.version, self.recorder.recent.maxlen or 1000)
                warnings = store.warnings(self.name, version=self.version)
                replicas = store.replicas(self.name, version=self.version)
                window = self.window_data()
            except StoreError as exc:  # the file is gone or unreadable: judge this worker's own traffic
                read_error = str(exc)
                store = None
        if store is None:
            replicas = []
            totals = self.recorder.totals()
            recent = self.recorder.recent_requests()
            warnings = self.warnings.snapshot()
            window = self.window_data(memory=True)
        same = self.memo.of(window)
        base = self.baseline
        columns = same.get(  # after a move, the last window's lay-out with the rows that left and came (drift/columns.py)
            ("columns", base),
            lambda: WindowColumns.of(window.inputs, base),
            lambda before, move: before.moved(window.inputs, move.left_inputs, move.arrived_inputs, base),
        )
        cal_inputs, cal_outputs = self._calibrations_for(window.rows)
        source = source_of(self.reference.provenance.features, self.reference.rows)
        repeats = _repeats(self.row_keys, same, window) if window.rows >= self.min_rows else None
        data_drift = same.get(
            ("data_drift", cal_inputs),
            lambda: drift_check("data_drift", base, cal_inputs, columns, self.min_rows, "features", self.redact, source, repeats),
        )
        if self.kind is not None:  # "texts 2.3x longer", not a quantile shift of text.chars
            data_drift = worded(data_drift, self.kind, self.reference.features, window.inputs)
        judged_data = with_rejections(window, recent, self.baseline.names, newest_first=store is not None)
        judge = functools.partial(
            _quality, same, base, columns, self.min_rows, self.redact, self.options.monitor.report_values, repeats
        )
        quality = judge(judged_data)
        # Served baselines are taken from rows whose own inputs pass the data checks: rejected requests never
        # reached them (counted, one bad request in 2,500 rows kept a one-liner from ever adopting its baselines)
        rows_quality = quality if judged_data is window else judge(window)
        inputs_ok = data_drift.status is Status.OK and rows_quality.status is Status.OK
        joint = self._joint_for(window.rows)
        checks: list[CheckResult] = [
            data_drift,
            self.judged.prediction_drift(window, cal_outputs, inputs_ok, memory=store is None, same=same, repeats=repeats),
            self.judged.concept(data_drift, store is not None, inputs_ok, repeats),  # may adopt a served profile
            quality,
            same.get(("joint_drift", joint), lambda: joint_check(joint, window.inputs, columns, base, self.min_rows, repeats)),
            self.judged.estimated_performance(window, same, repeats),
            self._pipeline_check(recent),
            store_check(self.store.stats() if self.store is not None else None, read_error=read_error),
            environment_check(self.env_diff, self._python[0], self._python[1], warnings),
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

    def _pipeline_check(self, recent: list[RecentRequest]) -> CheckResult:
        """The pipeline check of ``recent``, reused while they are the last check's (a health check asked again on
        the same traffic; the list comparison stops at the first request that differs, or at once when there are
        more or fewer); after a move, their summary moved on with them (guarded_serving/tally.py: summarising 1,000
        requests of three stages afresh cost ~1-1.5 ms)."""
        last = self._pipeline
        if last is not None and last[0] == recent:
            return last[1]
        result = pipeline_check(self._tally.summary(recent), self.options.monitor.thresholds)
        self._pipeline = (recent, result)
        return result

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

    def _calibrations_for(self, rows: int) -> tuple[Calibration, Calibration | None]:
        """The calibrations a window of ``rows`` is judged with. While they are still being computed (the thread
        :meth:`Monitor.start` runs: ~2 s at 64 features) and the window holds fewer rows than drift is judged from,
        stand-ins that hold only the error budgets, all such a window's checks read: the first health check after
        start (a probe, a deploy script) answers at once instead of waiting for thresholds it would not use."""
        if self._calibrations is not None or rows >= self.min_rows:
            return self.calibration()
        outputs = _pending(self.window, ALPHA_PREDICTION) if self.output_baseline is not None else None
        return _pending(self.window, ALPHA_DATA), outputs

    def joint_baseline(self) -> JointBaseline:
        """What the joint drift check compares with (computed once, on first use or in the background at start)."""
        with self._joint_lock:
            if self._joint is None:
                with self._related_lock:
                    related = self._related = self._related or self._relate()
                joint = related.finished()
                with self._related_lock:
                    self._joint, self._related = joint, None  # the first stage's sample columns let go
            return self._joint

    def _joint_for(self, rows: int) -> JointBaseline:
        """The joint baseline a window of ``rows`` is judged with: while its null spread is still being measured
        (the thread :meth:`Monitor.start` runs: ~0.35 s at 64 features) and the window is too short to judge, the
        baseline's first stage, all such a window's check reads (see drift.joint.RelatedPairs)."""
        if rows >= self.min_rows:
            return self.joint_baseline()
        with self._related_lock:
            if self._joint is not None:
                return self._joint
            self._related = self._related or self._relate()
            return self._related.unfinished

    def _relate(self) -> RelatedPairs:
        return RelatedPairs.of(self.reference.row_sample, self.baseline, self.window, self.redact)

    def window_data(self, memory: bool = False, rows: int | None = None) -> WindowData:
        """The newest ``window`` (or ``rows``) rows: every worker's, from the store, or this process's."""
        output_width = self.output_baseline.width if self.output_baseline is not None else None
        if self.store is not None and self.recorder.window_in_store and not memory:
            # Chunks of another shape were written under an older reference of the same model version: skip them.
            chunks: Any = (
                c
                for c in self.store.window_chunks(self.name, version=self.version)
                if c.inputs.shape[1] == self.baseline.width
                and (output_width is None or (c.outputs is not None and c.outputs.shape[1] == output_width))
            )
            assembler = self._assemblers[0]
        else:
            chunks = iter(self.recorder.memory_window.newest_first())
            assembler = self._assemblers[1]
        if rows is not None and rows != self.window:  # another size: the assemblers keep the health check's
            return assemble(chunks, rows, self.baseline.width, output_width)
        return assembler.assemble(chunks, self.window, self.baseline.width, output_width)

    def _note_transition(self, status: Status, checks: list[CheckResult]) -> None:
        with self._transition_lock:  # the periodic evaluator and a health request may judge at once
            previous, self._last_status = self._last_status, status
        if previous is not None and previous is not status:
            bad = {c.name: c.summary for c in checks if c.status.rank >= Status.WARN.rank}
            log = self._log.warning if status.rank > previous.rank else self._log.info
            log("status_changed", previous=previous.value, status=status.value, checks=bad)


def _quality(
    same: Generation,
    base: Baseline,
    columns: WindowColumns,
    min_rows: int,
    redact: frozenset[str],
    reveal: bool,
    repeats: Repeats | None,
    data: WindowData,
) -> CheckResult:
    """The data-quality check of ``data`` (the window, with or without the rejected requests' counts), reused while
    the window and those counts are the same; ``reveal``: unseen categories named, not fingerprinted."""
    counts = tuple(tuple(sorted(c.items())) for c in (data.type_errors, data.refused_missing, data.refused_range))
    return same.get(
        ("data_quality", *counts, repr(sorted(data.unseen.items()))),
        lambda: quality_check(base, columns, data, min_rows, ALPHA_QUALITY, redact, reveal, repeats),
    )


def _repeats(keys: RowKeys | None, same: Generation, window: WindowData) -> Repeats | None:
    """How many independent rows the window is worth when its rows repeat beyond chance (drift.repeats), its rows'
    fingerprints moved on with it (~0.1 ms for 2,000 rows afresh); None when they do not."""
    if keys is None:
        return None
    prints = same.get(
        ("fingerprints", keys),
        lambda: keys.fingerprints(window.inputs),
        lambda before, move: np.concatenate([before[move.departed :], keys.fingerprints(move.arrived_inputs)]),
    )
    found = same.get(("repeats", keys), lambda: keys.repeats(prints))
    return found if found.replayed else None


def _pending(window: int, alpha: float) -> Calibration:
    """A stand-in for a calibration not computed yet, for a window holding fewer rows than the checks judge: such a
    check reads only its error budget (``alpha``, for its details). Its null summaries are empty, so that a check
    judging with it would fail at once rather than answer with made-up thresholds."""
    arrays = {f.name: np.empty(0) for f in dataclasses.fields(Calibration) if f.init and f.type == "np.ndarray"}
    return Calibration(window=window, alpha=alpha, tests=0, z_one_sided=np.nan, z_two_sided=np.nan, **arrays)
