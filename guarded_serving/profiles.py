"""Feature profiles: what one column of a model's inputs or outputs looked like in the reference.

A :class:`FeatureProfile` holds, per feature, what the checks compare with (quantile bins and a sorted sample
for a number, category shares for a category, missing rate, range); :func:`profile_columns` profiles every
column of a table, :func:`profile_outputs` a model's predictions, :func:`row_sample_of` keeps rows whole.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import ConfigurationError, InvalidReferenceError
from .rowsample import RowSample
from .tabular import Columns, columns_from_data
from .valuesample import ValueSample

__all__ = [
    "BINS",
    "SAMPLE_SIZE",
    "Category",
    "FeatureProfile",
    "output_columns",
    "profile_columns",
    "profile_outputs",
    "row_sample_of",
]

Kind = Literal["numeric", "categorical"]
BINS = 10  # quantile bins per numeric feature, for PSI and Jensen-Shannon
SAMPLE_SIZE = 5000  # sorted sample kept per numeric feature, for exact two-sample statistics
Category = str | int | float | bool
NO_SAMPLE = ValueSample()  # a categorical feature's, or an empty numeric one's


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
    sample: ValueSample = NO_SAMPLE  # sorted, float32 (any sequence of numbers given is made one)
    top_share: float = 0.0
    singletons: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.sample, ValueSample):
            object.__setattr__(self, "sample", ValueSample(self.sample))

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
        distinct, counts = np.unique(values_sorted, return_counts=True)
        deciles = np.quantile(values_sorted, np.linspace(0, 1, BINS + 1)[1:-1], method="lower")
        # A value holding at least half a bin's share (a point mass: the zeros of a sparse feature, a count's
        # common values) gets a bin of its own, from it to the next larger value, whatever the deciles are.
        atoms = distinct[counts >= len(finite) / (2 * BINS)]
        after = distinct[np.minimum(np.searchsorted(distinct, atoms, side="right"), len(distinct) - 1)]
        edges = np.unique(np.concatenate([deciles, atoms, after]))
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
            sample=ValueSample(sample),
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
            sample=ValueSample(np.frombuffer(base64.b64decode(data.get("sample_f32", "")), dtype="<f4")),
            top_share=float(data.get("top_share", 0.0)),
            singletons=int(data.get("singletons", 0)),
        )


def profile_columns(columns: Columns) -> tuple[FeatureProfile, ...]:
    return tuple(
        FeatureProfile.from_column(name, values, cat)
        for name, values, cat in zip(columns.names, columns.values, columns.categorical, strict=True)
    )


def row_sample_of(columns: Columns, profiles: tuple[FeatureProfile, ...]) -> RowSample:
    """Some rows whole, encoded as the drift window encodes served rows (a category as its profile index)."""
    codes = [{c: k for k, (c, _) in enumerate(p.categories)} if p.kind == "categorical" else None for p in profiles]
    return RowSample.of(columns.names, columns.values, codes)


def profile_outputs(predictions: Any) -> tuple[FeatureProfile, ...]:
    """Profile a model's outputs: one profile per output column (``prediction``, or ``output_0``...)."""
    return profile_columns(output_columns(predictions))


def output_columns(predictions: Any) -> Columns:
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
