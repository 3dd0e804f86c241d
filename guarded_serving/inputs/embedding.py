"""The embedding kind: one vector per row (a model fed precomputed embeddings); the model gets them stacked.

``guard(model.predict_proba, reference=vectors, input_format="embedding")`` with ``vectors`` rows x
dimensions (a 2-D array is otherwise a table). A request is ``{"rows": [[0.1, -0.3, ...], ...]}``; each row
must have the reference's length (a 422 names the row), and the model receives ``np.stack(rows)``. Each row is
watched through :class:`~guarded_serving.inputs.embeddings.EmbeddingSummary` under the field ``embedding``:
``embedding.dim_0`` ... (or ``embedding.projection_1`` ... beyond 64 dimensions), ``embedding.norm`` and
``embedding.distance`` (Mahalanobis, to the reference's mean); ``redact=["embedding"]`` logs no vector and
withholds its coordinates as redacted features (a random projection of a wide one is kept; so are the norm and
distance).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import InvalidReferenceError
from ..tabular import Columns
from .embeddings import EmbeddingSummary
from .kind import QUOTES_KEY
from .shaped import ArrayRows, ShapedKind
from .tensor import columns_of, explain_mean

if TYPE_CHECKING:
    from ..profiles import FeatureProfile

__all__ = ["EmbeddingFactory", "EmbeddingKind"]

FIELD = "embedding"
WORDS = {"norm": "embedding length (norm)", "distance": "distance to the reference's centre (Mahalanobis)"}


class EmbeddingKind(ShapedKind):
    """One embedding vector per row (see the module docstring)."""

    name: ClassVar[str] = "embedding"

    def __init__(self, rows: ArrayRows, summary: EmbeddingSummary) -> None:
        super().__init__(rows)
        self.summary = summary

    def describe(self, items: list[Any], reference: bool = False) -> Columns:
        return columns_of(FIELD, self.summary.names, self.summary(np.stack(items), reference=reference))

    def logged(self, items: list[Any], redact: Collection[str]) -> list[Any]:
        return self.rows.logged(items, redact)

    def explain(self, feature: str, reference: FeatureProfile, values: np.ndarray) -> str | None:
        what = feature.removeprefix(f"{FIELD}.")
        return explain_mean(WORDS[what], reference, values) if what in WORDS else None

    def to_json(self) -> dict[str, Any]:
        # the coordinates are the vector itself: withheld with it when redact= names the field (the norm and
        # distance are still judged)
        quotes = [f"{FIELD}.{n}" for n in self.summary.names if n.startswith("dim_")]
        return {"size": self.summary.size, **self.rows.state(), "summary": self.summary.to_json(), QUOTES_KEY: quotes}


class EmbeddingFactory:
    """The embedding kind, chosen by name only (``input_format="embedding"``): by shape, a 2-D array is a table."""

    name = "embedding"

    def accepts(self, data: Any) -> bool:
        return False

    def fit(self, data: Any) -> EmbeddingKind:
        rows, array = ArrayRows.of_reference(FIELD, data)
        if array.ndim != 2:
            rows, array = ArrayRows.of_reference(FIELD, np.asarray(array).reshape(len(array), -1))
        return EmbeddingKind(rows, EmbeddingSummary.fit(array))

    def from_json(self, state: dict[str, Any]) -> EmbeddingKind:
        try:
            rows = ArrayRows.from_state(FIELD, (int(state["size"]),), state)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidReferenceError(f"embedding kind: expected its size and dtype in the reference, got {state!r}") from exc
        summary = EmbeddingSummary.from_json(state.get("summary") or {})
        if summary.size != rows.shape[0]:
            raise InvalidReferenceError(f"embedding kind: summary of {summary.size} values for rows of {rows.shape[0]}")
        return EmbeddingKind(rows, summary)
