"""What prediction drift, concept drift and estimated performance judge against: the reference's outputs,
performance and confidence profile, or baselines adopted from served traffic when the reference's are the model's
training rows' (the estimate's profile is of the labelled rows the performance baseline was adopted from).

Outputs are adopted from the newest ``ADOPT_ROWS`` rows (or the window, if larger) once their inputs pass
the data-drift and data-quality checks; performance from as many labelled rows, or from their older rows as soon
as, at one of four checkpoints, the rows after them perform worse (a change that began while they were collected).
Until then the checks say what they are collecting. Hooks (:meth:`Judged.on_outputs_adopted`) learn the adopted output profiles.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

from ..baselines import AdoptedOutputs, ServedBaselines, served_task, source_of
from ..concept import MIN_ERROR_RISE, MIN_RELATIVE_RISE, concept_check
from ..confidence import ConfidenceProfile
from ..cusum import cusum_alarms
from ..drift.calibration import Calibration
from ..drift.checks import drift_check
from ..drift.columns import WindowColumns
from ..drift.quality import quality_check
from ..drift.repeats import Repeats
from ..drift.window import WindowData
from ..estimate import estimate_check, moved_rows
from ..health import BaselineSource, CheckResult, Status
from ..performance import Performance, row_losses
from ..profiles import FeatureProfile
from ..stages import RecentRequest
from .feedback import Labelled, Labels
from .memo import Generation
from .realized import Detector, RealizedRows

if TYPE_CHECKING:
    from .evaluation import Evaluator

# the last concept judgement: the labels, the performance, what else it read, and its result
_Judgement = tuple[Labelled, Performance | None, tuple[BaselineSource | None, bool | None, Repeats | None], CheckResult]

__all__ = ["ADOPT_ROWS", "Judged", "with_rejections"]

# Rows (of outputs, or labelled) a baseline adopted from served traffic rests on, or the window if larger: every
# later check is judged against it, so its own noise should be small next to a window's.
ADOPT_ROWS = 2000
# The share of healthy collections of labels whose older rows may be adopted alone by chance, spread over the
# 16 (checkpoint, split) pairs where the collection is judged for a change (Bonferroni; measured 0.07 %).
ALPHA_SPLIT = 0.001
_Z_SPLIT = float(norm.isf(ALPHA_SPLIT / 16))


def kept_rows(reference_outputs: bool, provenance_outputs: str | None, window: int) -> int:
    """Rows of traffic kept (in memory and in the store's window): enough to adopt an output baseline from
    when the reference's outputs are the model's training rows'."""
    return max(window, ADOPT_ROWS) if reference_outputs and provenance_outputs == "training" else window


class Judged:
    """Prediction drift and concept drift, each against the baseline it should be judged against."""

    def __init__(self, evaluator: Evaluator, served: ServedBaselines, labels: Labels) -> None:
        self.evaluator = evaluator
        self.served = served
        self.labels = labels
        reference = evaluator.reference
        provenance = reference.provenance
        self.adopt_outputs = bool(reference.outputs) and provenance.outputs == "training"
        self.adopt_performance = reference.performance is None or provenance.performance == "training"
        self._hooks: list[Callable[[tuple[FeatureProfile, ...]], object]] = []
        self._shares_told = False  # the adopted output baseline, told to the hooks once
        # The last concept check and what it judged: reused while labels, outputs and baseline are the same
        self._concept: _Judgement | None = None
        self._realized = RealizedRows()  # the labelled rows' scoring and change detector, moved on between checks

    def on_outputs_adopted(self, hook: Callable[[tuple[FeatureProfile, ...]], object]) -> None:
        self._hooks.append(hook)

    def prediction_drift(
        self,
        window: WindowData,
        calibration: Calibration | None,
        inputs_ok: bool,
        memory: bool = False,
        same: Generation | None = None,
        repeats: Repeats | None = None,
    ) -> CheckResult:
        """Judged against the reference's outputs or the served baseline; ``same`` holds results on this window's
        contents (the check is reused when judged against the same baseline and calibration)."""
        ev = self.evaluator
        reference = ev.reference
        if ev.output_baseline is None or calibration is None or window.outputs is None:
            return CheckResult(
                "prediction_drift",
                Status.OK,
                "Not judged: the reference has no profile of the model's outputs"
                " (build it with predictions=, or give guard() training data).",
            )
        base, source = ev.output_baseline, source_of(reference.provenance.outputs, reference.outputs[0].count)
        if self.adopt_outputs:
            served, kept = self.served.outputs(), window.rows
            if served is None and window.rows >= ev.window:  # a full window: enough rows, unless inputs fail
                served, kept = self._adopt_served_outputs(memory) if inputs_ok else (None, ev.kept_rows)
            if served is None:
                return _collecting_outputs(kept, ev.kept_rows)
            if not self._shares_told:
                self._shares_told = True
                for hook in self._hooks:
                    hook(served.profiles)
            base, calibration, source = served.baseline, served.calibration, served.source
        outputs, cal = window.outputs, calibration

        def judge() -> CheckResult:
            columns = WindowColumns.of(outputs, base)
            return drift_check(
                "prediction_drift", base, cal, columns, ev.min_rows, what="outputs", baseline=source, repeats=repeats
            )

        return judge() if same is None else same.get(("prediction_drift", base, cal, source), judge)

    def _adopt_served_outputs(self, memory: bool) -> tuple[AdoptedOutputs | None, int]:
        """Adopt the outputs of the newest ``kept_rows`` rows when there are that many and their inputs pass the
        data-drift and data-quality checks (judged as a window of that size is); and the rows there are."""
        ev = self.evaluator
        kept = ev.window_data(memory=memory, rows=ev.kept_rows)
        if kept.rows < ev.kept_rows or kept.outputs is None:
            return None, kept.rows
        if kept.rows > ev.window:
            columns = WindowColumns.of(kept.inputs, ev.baseline)
            cal_inputs, _ = ev.calibration()
            repeats = ev.row_keys.replayed(kept.inputs) if ev.row_keys is not None else None
            drift = drift_check("data_drift", ev.baseline, cal_inputs, columns, ev.min_rows, skip=ev.redact, repeats=repeats)
            quality = quality_check(ev.baseline, columns, kept, ev.min_rows, skip=ev.redact, repeats=repeats)
            if drift.status is not Status.OK or quality.status is not Status.OK:
                return None, kept.rows
        return self.served.adopt_outputs(kept.outputs), kept.rows

    def judged_outputs(self) -> tuple[FeatureProfile, ...]:
        """The output profiles prediction drift judges against: the reference's, or those adopted from served traffic."""
        served = self.served.outputs() if self.adopt_outputs else None
        return served.profiles if served is not None else self.evaluator.reference.outputs

    def confidence(self) -> tuple[ConfidenceProfile | None, BaselineSource | None, bool]:
        """The profile ``estimated_performance`` reads and where it came from: the reference's when it has one, else
        that of the labelled served rows the performance baseline was adopted from; and, without either, whether
        one will come with that baseline (it is adopted from served labels)."""
        reference = self.evaluator.reference
        if reference.confidence is not None:
            return reference.confidence, source_of(reference.provenance.outputs, reference.confidence.rows), False
        if not self.adopt_performance:
            return None, None, False
        if self.served.performance() is None:  # one read of the store while none is adopted, not two
            return None, None, True
        served = self.served.confidence()  # the adopted performance's: kept in memory, no read
        return (served[0], served[1], False) if served is not None else (None, None, False)

    def estimated_performance(self, window: WindowData, same: Generation, repeats: Repeats | None) -> CheckResult:
        """Judged with :meth:`confidence`'s profile; the result and the window's reading are kept in ``same`` under
        where the profile came from too, so that one computed with the reference's never stands for a served one."""
        profile, source, collecting = self.confidence()
        outputs, min_rows = window.outputs, self.evaluator.min_rows
        return same.get(
            ("estimated_performance", source, profile, collecting),
            lambda: estimate_check(
                profile,
                outputs,
                min_rows,
                moved_rows(profile, outputs, same, source),  # the outputs' reading, moved on
                repeats.worth if repeats is not None else None,
                source,
                collecting,
            ),
        )

    def concept(self, data_drift: CheckResult, from_store: bool, inputs_ok: bool, repeats: Repeats | None = None) -> CheckResult:
        labelled = self.labels.labelled(from_store)
        performance = self.labels.performance
        reference = self.evaluator.reference
        source = source_of(reference.provenance.performance, performance.rows if performance is not None else None)
        if self.adopt_performance:
            served = self._served_performance(from_store, inputs_ok, labelled.received)
            if isinstance(served, CheckResult):  # not judged yet: what it waits for
                return served
            performance, source = served
        drifted = None if data_drift.status is Status.INSUFFICIENT_DATA else data_drift.status.rank >= Status.WARN.rank
        last = self._concept
        if last is not None and last[1] is performance and last[2] == (source, drifted, repeats) and _same(last[0], labelled):
            return last[3]  # the same labels joined to the same outputs, judged against the same performance
        errors = np.zeros(0)
        losses = np.zeros(0)
        unscored = 0
        detector: Detector = cusum_alarms
        if performance is not None and labelled.outputs:
            scored, detector = self._realized.score(performance, labelled)
            errors, losses, unscored = scored.error, scored.loss, scored.unscored
        result = concept_check(
            performance,
            errors,
            losses,
            labelled.delays,
            labelled.received,
            labelled.replaced,
            drifted,
            unscored,
            baseline=source,
            detector=detector,
            worth=repeats.worth if repeats is not None else None,
        )
        self._concept = (labelled, performance, (source, drifted, repeats), result)
        return result

    def _served_performance(
        self, from_store: bool, inputs_ok: bool, received: int
    ) -> tuple[Performance, BaselineSource] | CheckResult:
        """The performance baseline adopted from served labels (adopting it when ready), or what it waits for."""
        served = self.served.performance()
        if served is not None:
            return served
        needed = max(self.evaluator.window, ADOPT_ROWS)
        if not received:
            summary = (
                f"Not judged: no labels received yet (POST /feedback); the first {needed} labelled rows will be the baseline."
            )
            return CheckResult("concept_drift", Status.OK, summary)
        labelled = self.labels.labelled(from_store, needed)
        # The rows before a change in performance are adopted whatever the inputs do, while the labels are the
        # first ``needed`` (the checkpoints' rows): a fault that moved inputs and performance together from row
        # 1,000 kept the baseline waiting for inputs that pass, and concept drift unjudged, for good. Beyond them
        # the labels are the newest ``needed``, a set that slides: judged again at every check, it would be
        # judged as often as health is asked.
        if inputs_ok or labelled.received <= needed:
            half = _before_a_change(self.evaluator.reference.performance, labelled, needed)
            if half is not None:  # the rows before it: adopted from all of them, the baseline would hold the change
                served = self.served.adopt_performance(labelled.outputs[:half], labelled.labels[:half])
            elif inputs_ok and len(labelled.labels) >= needed:
                served = self.served.adopt_performance(labelled.outputs, labelled.labels)
        if served is not None:
            return served
        return _collecting_performance(len(labelled.labels), needed, self.labels.performance is not None)


def _before_a_change(reference: Performance | None, labelled: Labelled, needed: int) -> int | None:
    """While a performance baseline is collected from ``needed`` served labels: how many of the older rows to adopt
    when the rows after them perform worse, else None. Judged only at fixed checkpoints (each quarter of the
    collection: 500, 1,000, 1,500 and 2,000 of 2,000 labelled rows, a row answered NaN among them though not
    scored), each split at every earlier eighth (16 pairs in all), at ``ALPHA_SPLIT`` spread over the pairs; at
    the first checkpoint where some split's later rows are worse, the rows are adopted up to where a change most
    likely began: the split, every fortieth, where they are the most worse.

    The same rows give the same answer however often health is asked. Judged instead at every health check, the
    newer half against the older by concept drift's own tests (0.1 % a look, each half's error rate its own), a
    lucky older half of healthy labels was adopted in 1.1 % of collections (40 of 3,600; a look every 50 or 100
    labels; bench/split_null.py), and every later window judged against an accuracy better than the model's; so
    0.07 % (44 of 63,600). The price: a change is flagged at the next checkpoint, up to 500 labels after it."""
    step = needed // 8
    if len(labelled.labels) < 2 * step:
        return None
    served = served_task(reference, labelled.outputs, labelled.labels)  # from every row: a class seen late counts
    if served is None:
        return None
    task, classes = served
    try:
        scored = row_losses(task, classes, labelled.outputs, labelled.labels, labelled.matrix)
    except (TypeError, ValueError):
        return None
    # Checkpoints and splits count labelled rows, as ``needed`` and the caller's slice do; a row left unscored (a
    # NaN output) adds to neither running sum. Counted among the scored rows, 25 NaN outputs of 2,000 left 1,975,
    # short of the last checkpoint, and a change from row 1,500 was adopted whole (seeds 21-30, every one); the
    # first 100 made a change at row 500 scored row 400, and 400 rows were adopted (seeds 22 and 26).
    kept = np.ones(len(labelled.labels), dtype=bool) if scored.kept is None else scored.kept
    errors = np.zeros(len(kept))
    errors[kept] = scored.error
    total = np.concatenate(([0.0], np.cumsum(errors)))
    count = np.concatenate(([0], np.cumsum(kept)))
    regression = task == "regression"
    for checkpoint in range(2 * step, len(kept) + 1, 2 * step):
        # Under no change both parts have one error rate (or spread): estimated from all the rows, not from each
        # part, where a lucky older part's small one made its luck look significant (each part's own: 0.16 % and
        # 0.32 % of healthy collections at error rates 0.1 and 0.05; this: 0.08 % and 0.10 %, of 100,000 simulated)
        rows = int(count[checkpoint])
        if not rows:
            continue
        rate = total[checkpoint] / rows
        spread = float(scored.error[:rows].var()) if regression else max(rate * (1 - rate), 1 / rows)
        worse = functools.partial(_worse, total, count, spread, regression, checkpoint)
        if max(worse(split) for split in range(step, checkpoint, step)) > _Z_SPLIT:
            return max(range(step, checkpoint - step + 1, step // 5), key=worse)
    return None


def _worse(total: np.ndarray, count: np.ndarray, spread: float, regression: bool, checkpoint: int, split: int) -> float:
    """How much rows ``split..checkpoint-1`` are worse than those before them, in standard errors (``total`` and
    ``count``: the errors' and the scored rows' running sums; ``spread``: the errors' variance); -inf when less
    than concept drift's least rise, or when either part has no scored row."""
    before, after = int(count[split]), int(count[checkpoint] - count[split])
    if not before or not after:
        return -math.inf
    older, newer = total[split] / before, (total[checkpoint] - total[split]) / after
    if newer - older < (MIN_RELATIVE_RISE * max(older, 1e-12) if regression else MIN_ERROR_RISE):
        return -math.inf
    return float((newer - older) / math.sqrt(max(spread, 1e-24) * (1 / before + 1 / after)))


def _same(a: Labelled, b: Labelled) -> bool:
    """The same labelled rows (the memory join hands back its last result while nothing changed; the store's
    is compared: ~0.3 ms for 2,000 rows against ~3 ms to score them and run the CUSUM again)."""
    if a is b:
        return True
    return (
        (a.received, a.replaced) == (b.received, b.replaced)
        and a.delays.shape == b.delays.shape
        and bool(np.array_equal(a.delays, b.delays))
        and (a.labels is b.labels or a.labels == b.labels)
        and (a.outputs is b.outputs or a.outputs == b.outputs)
    )


def with_rejections(window: WindowData, recent: list[RecentRequest], names: tuple[str, ...], newest_first: bool) -> WindowData:
    """Add the features named by the requests rejected since the window's oldest row to the window's wrong-type
    counts, and count those refused for a missing value (``recent``: oldest first as a recorder lists them, or
    newest first as a store does). Since then, not among all the recent requests: one bad request kept data
    quality warning for the next 1,000 requests (100,000 rows at 100 a request), long after the rows around it
    had left the window."""
    index = {name: j for j, name in enumerate(names)}
    errors = dict(window.type_errors)
    refused: dict[int, int] = {}
    beyond: dict[int, int] = {}
    served = 0  # the answered rows newer than the request looked at, newest first
    for r in recent if newest_first else reversed(recent):
        if served >= window.rows:  # older than the window's oldest row
            break
        served += r.rows
        if not (r.problem_features or r.missing_features or r.range_features):  # an answered request: most of them
            continue
        for features, counts in ((r.problem_features, errors), (r.missing_features, refused), (r.range_features, beyond)):
            for feature in features:
                j = index.get(feature)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
    if errors == window.type_errors and not refused and not beyond:
        return window
    return WindowData(window.inputs, window.outputs, window.unseen, errors, refused_missing=refused, refused_range=beyond)


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
