"""The tensor kind: one array of a fixed shape per row (an image, a spectrogram); the model gets them stacked.

``guard(model.predict_proba, reference=images)`` with ``images`` an array of rows x height x width (any array
of three dimensions or more), or ``input_format="tensor"``. A request is ``{"rows": [<nested lists>, ...]}``;
each row must have the reference's shape and element type (a 422 names the row and the shape expected),
and the model receives ``np.stack(rows)``. Each row is watched through
:class:`~guarded_serving.inputs.arrays.TensorSummary` under the field ``tensor`` (``tensor.mean``,
``tensor.saturated_high``, ``tensor.edges_rows``, ``tensor.projection_1`` ...); a row is logged as its values
(up to 4,096 of them; ``redact=["tensor"]`` logs none).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import InvalidReferenceError
from ..tabular import Columns
from .arrays import TensorSummary
from .shaped import ArrayRows, ShapedKind

if TYPE_CHECKING:
    from ..profiles import FeatureProfile

__all__ = ["TensorFactory", "TensorKind", "columns_of"]

FIELD = "tensor"
WORDS = {
    "mean": "mean value",
    "spread": "spread of values within a row",
    "edges_rows": "change between neighbouring rows",
    "edges_columns": "change between neighbouring columns",
}
SHARES = {
    "saturated_low": "share of values at the reference's minimum",
    "saturated_high": "share of values at the reference's maximum",
}


def columns_of(field: str, names: tuple[str, ...], matrix: np.ndarray) -> Columns:
    """A summary matrix (rows x names) as descriptor columns named ``field.name``."""
    return Columns(
        names=tuple(f"{field}.{n}" for n in names),
        values=tuple(np.ascontiguousarray(matrix[:, j]) for j in range(len(names))),
        categorical=(False,) * len(names),
        input_format="array",
    )


def explain_mean(words: str, reference: FeatureProfile, values: np.ndarray) -> str | None:
    """ "mean value 1.2x higher (4.9 -> 5.9 on average)", from the reference's mean and the window's."""
    present = values[~np.isnan(values)]
    if reference.mean is None or not len(present):
        return None
    was, now = float(reference.mean), float(present.mean())
    if was > 0 and now > 0:
        ratio = now / was
        how = f"{ratio:.3g}x higher" if ratio >= 1 else f"{1 / ratio:.3g}x lower"
        return f"{words} {how} ({was:.3g} -> {now:.3g} on average)"
    return f"{words} {was:.3g} -> {now:.3g} on average"


class TensorKind(ShapedKind):
    """One fixed-shape tensor per row (see the module docstring)."""

    name: ClassVar[str] = "tensor"

    def __init__(self, rows: ArrayRows, summary: TensorSummary) -> None:
        super().__init__(rows)
        self.summary = summary

    def describe(self, items: list[Any], reference: bool = False) -> Columns:
        return columns_of(FIELD, self.summary.names, self.summary(np.stack(items)))

    def logged(self, items: list[Any], redact: Collection[str]) -> list[Any]:
        return self.rows.logged(items, redact)

    def explain(self, feature: str, reference: FeatureProfile, values: np.ndarray) -> str | None:
        what = feature.removeprefix(f"{FIELD}.")
        present = values[~np.isnan(values)]
        if what in SHARES and reference.mean is not None and len(present):
            return f"{SHARES[what]} {float(reference.mean):.1%} -> {float(present.mean()):.1%}"
        return explain_mean(WORDS[what], reference, values) if what in WORDS else None

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.rows.shape), **self.rows.state(), "summary": self.summary.to_json()}


class TensorFactory:
    """Chooses the tensor kind for training data that is an array of three dimensions or more (rows x a
    2-D or larger tensor), or a list of equal-shaped arrays of two dimensions or more."""

    name = "tensor"

    def accepts(self, data: Any) -> bool:
        if isinstance(data, np.ndarray):
            return data.ndim >= 3 and data.dtype.kind in "biuf"
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], np.ndarray):
            return data[0].ndim >= 2 and data[0].dtype.kind in "biuf"
        return False

    def fit(self, data: Any) -> TensorKind:
        rows, array = ArrayRows.of_reference(FIELD, data)
        return TensorKind(rows, TensorSummary.fit(array))

    def from_json(self, state: dict[str, Any]) -> TensorKind:
        try:
            rows = ArrayRows.from_state(FIELD, tuple(int(s) for s in state["shape"]), state)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidReferenceError(f"tensor kind: expected its shape and dtype in the reference, got {state!r}") from exc
        summary = TensorSummary.from_json(state.get("summary") or {})
        if summary.shape != rows.shape:
            raise InvalidReferenceError(f"tensor kind: summary of shape {summary.shape} for rows of shape {rows.shape}")
        return TensorKind(rows, summary)
