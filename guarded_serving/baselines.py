"""What prediction drift and concept drift judge against, and where it came from.

Inputs are judged against the reference's features. A model's outputs and performance are judged
against the reference's own when those describe rows the model never saw (held-out rows, or rows the
user gave). When they describe its training rows, they are wrong as a baseline: a forest, a boosted
model or a nearest-neighbour model is more confident, and more often right, on the rows it was fitted
on than on any new row, so healthy traffic would look drifted from the first window on. Then the
monitor adopts its baselines from early served traffic instead:

* **outputs**: those of the first full window whose inputs pass the data-drift and data-quality checks;
* **performance**: that of the first full window of labelled rows, taken while inputs pass those checks;
  with it, what each confidence level was worth on those same rows (a
  :class:`~guarded_serving.confidence.ConfidenceProfile`), which ``estimated_performance`` reads when the
  reference has none, as the one-liner's does not.

An adopted baseline is kept in the store (table ``baselines``, keyed by model, version and a digest of
the reference), so that every worker judges against the same one and a restart keeps it; without a
store, each process adopts its own. The report says which baseline each check judges against and since
when (:class:`~guarded_serving.health.BaselineSource`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .confidence import ConfidenceProfile, profile_of
from .drift.baseline import Baseline
from .drift.calibration import Calibration
from .errors import InvalidReferenceError, StoreError
from .health import BaselineSource
from .performance import Performance, Task, infer_task, row_losses
from .profiles import FeatureProfile
from .reference import Reference
from .store import Store

__all__ = [
    "AdoptedOutputs",
    "ServedBaselines",
    "adopted_profiles",
    "reference_digest",
    "served_performance",
    "served_task",
    "source_of",
]

OUTPUTS = "outputs"
PERFORMANCE = "performance"
_SOURCES = {"training": "training rows", "holdout": "held-out rows", "given": "reference rows"}


def source_of(origin: str, rows: int | None) -> BaselineSource:
    """The baseline a reference part gives, named by where it came from."""
    return BaselineSource(_SOURCES.get(origin, "reference rows"), rows)


def reference_digest(reference: Reference) -> str:
    """A key that changes when the reference's profiles change (a new model or data), not with its build time."""
    parts = [[f.to_json() for f in reference.features], [f.to_json() for f in reference.outputs]]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class AdoptedOutputs:
    """Output profiles adopted from served traffic, laid out and calibrated like the reference's."""

    profiles: tuple[FeatureProfile, ...]
    baseline: Baseline
    calibration: Calibration
    source: BaselineSource


def adopted_profiles(reference: Sequence[FeatureProfile], outputs: np.ndarray) -> tuple[FeatureProfile, ...]:
    """Profile served outputs (as the window encodes them) like the reference's outputs.

    A categorical output keeps the reference's categories in their order (the window's codes index
    them), with the shares served; a value the reference never saw is left out.
    """
    out = []
    for j, ref in enumerate(reference):
        column = outputs[:, j]
        if ref.kind == "numeric":
            out.append(FeatureProfile.from_column(ref.name, column, categorical=False))
            continue
        present = column[~np.isnan(column)]
        codes = present[present >= 0].astype(np.intp)
        counts = np.bincount(codes, minlength=len(ref.categories))[: len(ref.categories)]
        total = max(int(counts.sum()), 1)
        out.append(
            FeatureProfile(
                name=ref.name,
                kind="categorical",
                count=len(column),
                missing_rate=1 - len(codes) / max(len(column), 1),
                categories=tuple((c, n / total) for (c, _), n in zip(ref.categories, counts.tolist(), strict=True)),
                top_share=float(counts.max()) / total if len(counts) else 0.0,
                singletons=int((counts == 1).sum()),
            )
        )
    return tuple(out)


class ServedBaselines:
    """Baselines adopted from served traffic for one model, version and reference; shared through the store.

    Reads go to the store until a baseline is found, then it is kept in memory (it never changes).
    Adopting writes it unless another worker was first, and takes whichever is stored.
    """

    def __init__(
        self,
        reference: Reference,
        name: str,
        version: str | None,
        store: Store | None,
        methods: dict[str, str],
        window: int,
        alpha: float,
    ) -> None:
        self.reference = reference
        self.name = name
        self.version = version
        self.store = store
        self.methods = methods
        self.window = window
        self.alpha = alpha
        self.key = reference_digest(reference)
        self._outputs: AdoptedOutputs | None = None
        self._performance: tuple[Performance, BaselineSource] | None = None
        self._confidence: ConfidenceProfile | None = None  # adopted with the performance, from the same rows
        self._local: dict[str, tuple[str, int, str]] = {}  # without a store (or while it fails): this process's own

    def _load(self, kind: str) -> tuple[str, int, str] | None:
        if self.store is not None:
            try:
                found = self.store.baseline(self.name, self.version, self.key, kind)
            except StoreError:
                found = None
            if found is not None:
                return found
        return self._local.get(kind)

    def _save(self, kind: str, rows: int, document: str) -> tuple[str, int, str]:
        if self.store is not None and not self.store.stats().read_only:
            with contextlib.suppress(StoreError):  # else kept in memory below; the next worker to adopt writes its own
                self.store.save_baseline(self.name, self.version, self.key, kind, rows, document)
        found = self._load(kind)
        if found is None:
            found = self._local[kind] = (dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), rows, document)
        return found

    # -- outputs -----------------------------------------------------------------------------
    def outputs(self) -> AdoptedOutputs | None:
        if self._outputs is None:
            found = self._load(OUTPUTS)
            if found is not None:
                self._outputs = self._outputs_from(found)
        return self._outputs

    def adopt_outputs(self, outputs: np.ndarray) -> AdoptedOutputs:
        """Adopt the outputs of a window whose inputs passed the checks (or the one another worker kept first)."""
        profiles = adopted_profiles(self.reference.outputs, outputs)
        document = json.dumps([p.to_json() for p in profiles], allow_nan=False)
        self._outputs = self._outputs_from(self._save(OUTPUTS, len(outputs), document))
        return self._outputs

    def _outputs_from(self, found: tuple[str, int, str]) -> AdoptedOutputs:
        since, rows, document = found
        profiles = tuple(FeatureProfile.from_json(p) for p in json.loads(document))
        baseline = Baseline.from_profiles(profiles, self.methods)
        calibration = Calibration.fit(baseline, self.window, self.alpha)
        return AdoptedOutputs(profiles, baseline, calibration, BaselineSource("served traffic", rows, since))

    # -- performance -------------------------------------------------------------------------
    def performance(self) -> tuple[Performance, BaselineSource] | None:
        if self._performance is None:
            found = self._load(PERFORMANCE)
            if found is not None:
                self._performance_from(found)
        return self._performance

    def confidence(self) -> tuple[ConfidenceProfile, BaselineSource] | None:
        """What each confidence level was worth on the labelled rows the performance baseline was adopted from,
        and that baseline's source; None before it is adopted, or when those rows gave no profile (a classifier
        answering labels, a baseline stored before profiles were kept with it)."""
        performance = self.performance()
        if performance is None or self._confidence is None:
            return None
        return self._confidence, performance[1]

    def adopt_performance(self, outputs: list[Any], labels: list[Any]) -> tuple[Performance, BaselineSource] | None:
        """Adopt the performance on some labelled rows, and the profile of their confidences with it (one document,
        so a worker never reads one without the other); None when the labels cannot be scored against the outputs."""
        performance = served_performance(self.reference.performance, outputs, labels)
        if performance is None:
            return None
        document = performance.to_json()
        try:
            profile = profile_of(outputs, performance, labels)
        except (TypeError, ValueError):  # rows that scored but give no profile: the performance alone
            profile = None
        if profile is not None:
            document["confidence"] = profile.to_json()
        try:
            text = json.dumps(document, allow_nan=False)
        except ValueError:  # a figure of the profile that JSON cannot hold: the performance alone
            text = json.dumps(performance.to_json(), allow_nan=False)
        self._performance_from(self._save(PERFORMANCE, len(labels), text))
        return self._performance

    def _performance_from(self, found: tuple[str, int, str]) -> None:
        since, rows, document = found
        data = json.loads(document)
        try:  # absent from baselines stored before it was kept
            self._confidence = ConfidenceProfile.from_json(data["confidence"]) if data.get("confidence") else None
        except (InvalidReferenceError, KeyError, TypeError, ValueError):  # another version's: no estimate, not a failure
            self._confidence = None
        # the profile first: a thread that finds the performance finds the profile of its rows with it
        self._performance = (Performance.from_json(data), BaselineSource("served traffic", rows, since))


def served_performance(reference: Performance | None, outputs: list[Any], labels: list[Any]) -> Performance | None:
    """The performance of served outputs against their labels, with the reference's task and classes when it
    has them; else inferred (:func:`served_task`)."""
    served = served_task(reference, outputs, labels)
    if served is None:
        return None
    task, classes = served
    try:
        losses = row_losses(task, classes, outputs, labels)
    except (TypeError, ValueError):
        return None
    if not len(losses.error) or not np.isfinite(losses.error).all():
        return None
    return Performance(
        task=task,
        classes=tuple(classes),
        rows=len(losses.error),  # the rows scored: its means and their standard errors are of these
        error_mean=float(losses.error.mean()),
        error_std=float(losses.error.std()),
        loss_mean=float(losses.loss.mean()),
    )


def served_task(reference: Performance | None, outputs: list[Any], labels: list[Any]) -> tuple[Task, tuple[Any, ...]] | None:
    """The task and classes served outputs are scored with: the reference's when it has them, else inferred from
    these rows (class probabilities map onto the sorted labels, or onto 0..k-1 for integer labels); None when the
    labels do not map onto the outputs."""
    if reference is not None:
        return reference.task, tuple(reference.classes)
    task = infer_task(labels, outputs)
    classes = _classes(labels, outputs) if task == "classification" else ()
    return None if classes is None else (task, tuple(classes))


def _classes(labels: list[Any], outputs: list[Any]) -> tuple[Any, ...] | None:
    first = outputs[0] if outputs else None
    width = len(first) if isinstance(first, list) else 1
    distinct = sorted(set(labels), key=lambda v: (str(type(v)), v))
    if width == 1:
        return tuple(distinct)
    if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < width for v in distinct):
        return tuple(range(width))
    return tuple(distinct) if len(distinct) == width else None
