"""The reference profile: what the model's inputs (and outputs) looked like when it was validated.

A :class:`Reference` is built once from training data with :meth:`Reference.from_data`, saved as a
versioned JSON document and loaded when the service starts. Everything a per-request check needs
(feature names and kinds, ranges, category sets) is computed here, not per request.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .environment import Fingerprint, current_fingerprint
from .errors import ConfigurationError, InvalidReferenceError
from .estimate import ConfidenceProfile, profile_of
from .performance import Performance
from .rowsample import RowSample
from .tabular import INPUT_FORMATS, Columns, InputFormat, columns_from_data

__all__ = ["FeatureProfile", "Reference"]

FORMAT = "guarded-serving/reference"
VERSION = 1

Kind = Literal["numeric", "categorical"]
BINS = 10  # quantile bins per numeric feature, for PSI and Jensen-Shannon
SAMPLE_SIZE = 5000  # sorted sample kept per numeric feature, for exact two-sample statistics
Category = str | int | float | bool


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    """One feature of the reference: its kind, missing rate, and range or category frequencies."""

    name: str
    kind: Kind
    count: int
    missing_rate: float
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    categories: tuple[tuple[Category, float], ...] = ()
    edges: tuple[float, ...] = ()
    proportions: tuple[float, ...] = ()
    sample: tuple[float, ...] = ()
    top_share: float = 0.0
    singletons: int = 0

    @property
    def category_set(self) -> frozenset[Category]:
        return frozenset(c for c, _ in self.categories)

    @classmethod
    def from_column(cls, name: str, values: np.ndarray, categorical: bool) -> FeatureProfile:
        count = len(values)
        if categorical:
            present = [v for v in values if v is not None]
            missing = count - len(present)
            freq: dict[Category, int] = {}
            for v in present:
                freq[v] = freq.get(v, 0) + 1
            total = max(len(present), 1)
            ordered = sorted(freq.items(), key=lambda kv: (-kv[1], str(kv[0])))
            return cls(
                name=name,
                kind="categorical",
                count=count,
                missing_rate=missing / count,
                categories=tuple((c, n / total) for c, n in ordered),
                top_share=ordered[0][1] / total if ordered else 0.0,
                singletons=sum(1 for _, n in ordered if n == 1),
            )
        finite = values[np.isfinite(values)]
        if np.isinf(values).any():
            bad = int(np.flatnonzero(np.isinf(values))[0])
            raise ConfigurationError(f"reference feature {name!r} row {bad}", values[bad], "a finite number or missing")
        missing = count - len(finite)
        if len(finite) == 0:
            return cls(name=name, kind="numeric", count=count, missing_rate=1.0)
        values_sorted = np.sort(finite)
        _, counts = np.unique(values_sorted, return_counts=True)
        edges = np.unique(np.quantile(values_sorted, np.linspace(0, 1, BINS + 1)[1:-1], method="lower"))
        edges = edges[edges > values_sorted[0]]  # edges are data values, so discrete features get one bin per value
        bins = np.bincount(np.searchsorted(edges, values_sorted, side="right"), minlength=len(edges) + 1)
        sample = values_sorted
        if len(sample) > SAMPLE_SIZE:  # evenly spaced order statistics: a deterministic quantile sketch
            sample = sample[np.linspace(0, len(sample) - 1, SAMPLE_SIZE).round().astype(int)]
        return cls(
            name=name,
            kind="numeric",
            count=count,
            missing_rate=missing / count,
            minimum=_finite(finite.min()),
            maximum=_finite(finite.max()),
            mean=_finite(finite.mean()),
            std=_finite(finite.std()),
            edges=tuple(float(e) for e in edges),
            proportions=tuple(float(b) / len(finite) for b in bins),
            sample=tuple(float(v) for v in sample.astype(np.float32)),
            top_share=float(counts.max()) / len(finite),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "count": self.count, "missing_rate": self.missing_rate}
        if self.kind == "numeric":
            out.update(minimum=self.minimum, maximum=self.maximum, mean=self.mean, std=self.std)
            out.update(edges=list(self.edges), proportions=list(self.proportions), top_share=self.top_share)
            out["sample_f32"] = base64.b64encode(np.asarray(self.sample, dtype="<f4").tobytes()).decode("ascii")
        else:
            out["categories"] = [[c, f] for c, f in self.categories]
            out.update(top_share=self.top_share, singletons=self.singletons)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureProfile:
        kind = data["kind"]
        if kind not in ("numeric", "categorical"):
            raise InvalidReferenceError(f"feature {data.get('name')!r}: kind must be 'numeric' or 'categorical', got {kind!r}")
        return cls(
            name=str(data["name"]),
            kind=kind,
            count=int(data["count"]),
            missing_rate=float(data["missing_rate"]),
            minimum=data.get("minimum"),
            maximum=data.get("maximum"),
            mean=data.get("mean"),
            std=data.get("std"),
            categories=tuple((c, float(f)) for c, f in data.get("categories", [])),
            edges=tuple(float(e) for e in data.get("edges", ())),
            proportions=tuple(float(p) for p in data.get("proportions", ())),
            sample=tuple(float(v) for v in np.frombuffer(base64.b64decode(data.get("sample_f32", "")), dtype="<f4")),
            top_share=float(data.get("top_share", 0.0)),
            singletons=int(data.get("singletons", 0)),
        )


def _profile(columns: Columns) -> tuple[FeatureProfile, ...]:
    return tuple(
        FeatureProfile.from_column(name, values, cat)
        for name, values, cat in zip(columns.names, columns.values, columns.categorical, strict=True)
    )


def _row_sample(columns: Columns, profiles: tuple[FeatureProfile, ...]) -> RowSample:
    """Some rows whole, encoded as the drift window encodes served rows (a category as its profile index)."""
    codes = [{c: k for k, (c, _) in enumerate(p.categories)} if p.kind == "categorical" else None for p in profiles]
    return RowSample.of(columns.names, columns.values, codes)


def profile_outputs(predictions: Any) -> tuple[FeatureProfile, ...]:
    """Profile a model's outputs: one profile per output column (``prediction``, or ``output_0``...)."""
    return _profile(_output_columns(predictions))


def _output_columns(predictions: Any) -> Columns:
    """Profile model outputs: one column per output (a class probability, a regression target...)."""
    array = np.asarray(predictions)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise ConfigurationError(
            "predictions", f"array of shape {array.shape}", "one prediction (or one row of outputs) per reference row"
        )
    names = ["prediction"] if array.shape[1] == 1 else [f"output_{j}" for j in range(array.shape[1])]
    return columns_from_data(array, feature_names=names)


@dataclass(frozen=True, slots=True)
class Reference:
    """The profile of the data a model was validated on, with the environment it was validated in.

    ``classes``: the labels a classifier can return, when known without labelled data (from the model's
    ``classes_`` or the width of its probabilities; :func:`guard` fills it in): labels sent as feedback must
    be among them. With ``performance``, its classes decide instead.

    ``row_sample``: some of the rows whole, for the joint drift check (None in references saved before
    it existed). ``confidence``: what the model's outputs on these rows were worth, for the estimated
    performance check (None without ``predictions=``).
    """

    features: tuple[FeatureProfile, ...]
    rows: int
    input_format: InputFormat
    environment: Fingerprint
    created_at: str
    outputs: tuple[FeatureProfile, ...] = ()
    target: FeatureProfile | None = None
    performance: Performance | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    classes: tuple[Category, ...] = ()
    row_sample: RowSample | None = None
    confidence: ConfidenceProfile | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @classmethod
    def from_data(
        cls,
        X: Any,
        y: Any = None,
        predictions: Any = None,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str | int] | None = None,
        input_format: InputFormat | None = None,
        task: str | None = None,
    ) -> Reference:
        """Profile training data ``X`` (array, list of lists, list of dicts or DataFrame).

        ``y`` and ``predictions`` are optional and must have one entry per row of ``X``.
        ``input_format`` fixes what the predict function receives at serving time; by default the
        same shape as ``X`` (``"array"``, ``"records"`` or ``"dataframe"``). With both ``y`` and
        ``predictions``, the reference's performance is computed (``task`` is inferred unless given):
        build the reference on held-out data, so that it is what production should match.
        """
        columns = columns_from_data(X, feature_names=feature_names, categorical=categorical)
        if input_format is not None and input_format not in INPUT_FORMATS:
            raise ConfigurationError("input_format", input_format, f"one of {list(INPUT_FORMATS)}")
        outputs: tuple[FeatureProfile, ...] = ()
        if predictions is not None:
            out_cols = _output_columns(predictions)
            if out_cols.rows != columns.rows:
                raise ConfigurationError("predictions", f"{out_cols.rows} rows", f"{columns.rows} rows, one per row of X")
            outputs = _profile(out_cols)
        target = None
        if y is not None:
            y_cols = columns_from_data(np.asarray(y, dtype=object).reshape(-1, 1), feature_names=["target"])
            if y_cols.rows != columns.rows:
                raise ConfigurationError("y", f"{y_cols.rows} labels", f"{columns.rows} labels, one per row of X")
            target = _profile(y_cols)[0]
        performance = None
        if y is not None and predictions is not None:
            performance = Performance.from_data(y, to_jsonable_predictions(predictions), task=task)  # type: ignore[arg-type]
        features = _profile(columns)
        return cls(
            features=features,
            rows=columns.rows,
            input_format=input_format or columns.input_format,
            environment=current_fingerprint(),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            outputs=outputs,
            target=target,
            performance=performance,
            row_sample=_row_sample(columns, features),
            confidence=profile_of(predictions, performance, y),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "rows": self.rows,
            "input_format": self.input_format,
            "features": [f.to_json() for f in self.features],
            "outputs": [f.to_json() for f in self.outputs],
            "target": self.target.to_json() if self.target is not None else None,
            "performance": self.performance.to_json() if self.performance is not None else None,
            "environment": self.environment.to_json(),
            "extra": dict(self.extra),
            "classes": list(self.classes),
            "row_sample": self.row_sample.to_json() if self.row_sample is not None else None,
            "confidence": self.confidence.to_json() if self.confidence is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidReferenceError(f"not a guarded-serving reference: expected format {FORMAT!r}, got {found!r}")
        version = data.get("version")
        if version != VERSION:
            raise InvalidReferenceError(f"reference version {version!r} is not supported; this library reads version {VERSION}")
        try:
            features = tuple(FeatureProfile.from_json(f) for f in data["features"])
            if not features:
                raise InvalidReferenceError("reference has no features")
            return cls(
                features=features,
                rows=int(data["rows"]),
                input_format=data.get("input_format", "array"),
                environment=Fingerprint.from_json(data["environment"]),
                created_at=str(data["created_at"]),
                outputs=tuple(FeatureProfile.from_json(f) for f in data.get("outputs", [])),
                target=FeatureProfile.from_json(data["target"]) if data.get("target") else None,
                performance=Performance.from_json(data["performance"]) if data.get("performance") else None,
                extra=dict(data.get("extra", {})),
                classes=tuple(data.get("classes", ())),
                row_sample=RowSample.from_json(data["row_sample"]) if data.get("row_sample") else None,
                confidence=ConfidenceProfile.from_json(data["confidence"]) if data.get("confidence") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidReferenceError):
                raise
            raise InvalidReferenceError(f"malformed reference document: {type(exc).__name__}: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the reference as JSON (atomically: a partial file never replaces a good one)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reference:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidReferenceError(f"cannot read reference {str(path)!r}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidReferenceError(f"reference {str(path)!r} is not valid JSON: {exc}") from exc
        try:
            return cls.from_json(data)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"reference {str(path)!r}: {exc}") from exc


def to_jsonable_predictions(predictions: Any) -> Any:
    """Predictions as plain lists (rows of outputs), as they are logged."""
    array = np.asarray(predictions)
    return array.tolist() if array.dtype != object else [v.item() if isinstance(v, np.generic) else v for v in array.tolist()]
