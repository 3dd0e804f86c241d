"""The text kind: one string per row, and the model gets a list of strings.

``guard(pipe.predict_proba, reference=texts)`` with ``texts`` a list of strings (or ``input_format="text"``).
A request is ``{"rows": ["first text", "second text"]}``; each text is described by
:class:`~guarded_serving.inputs.descriptors.TextDescriptors` under the field name ``text``
(``text.chars``, ``text.unknown``, ... ``text.token``), and logged cut to 1,000 characters
(``redact=["text"]`` logs none).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ConfigurationError, Problem
from ..tabular import Columns
from ..validation import describe as describe_value
from .descriptors import TextDescriptors
from .kind import check_rows

if TYPE_CHECKING:
    from ..profiles import FeatureProfile

__all__ = ["LOGGED_CHARS", "MAX_CHARS", "TextFactory", "TextKind", "cut", "text_problem"]

FIELD = "text"
MAX_CHARS = 100_000  # a longer text is refused (413): the body limit bounds a request, this one a row
LOGGED_CHARS = 1_000  # a logged text keeps its first 1,000 characters and says how many it had


def cut(text: str, limit: int = LOGGED_CHARS) -> str:
    """``text`` as logged: at most ``limit`` characters, and the count of those left out."""
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"


def text_problem(row: int, field: str, value: Any) -> Problem | None:
    """What is wrong with ``value`` as a text (a string of at most 100,000 characters), or None."""
    if not isinstance(value, str):
        return Problem(f"got {describe_value(value)}", "a string", row=row, feature=field, kind="type")
    if len(value) > MAX_CHARS:
        too_long = f"a text of {len(value)} characters"
        return Problem(too_long, f"at most {MAX_CHARS} characters", row=row, feature=field, kind="size")
    return None


def as_texts(data: Any, where: str) -> list[str]:
    """A list, tuple, 1-D array or pandas Series of strings as a list of strings (a ConfigurationError naming
    the first row that is not one)."""
    values = data.tolist() if hasattr(data, "tolist") and not isinstance(data, (list, tuple)) else data
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigurationError(where, data, "a non-empty list of strings, one text per row")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ConfigurationError(f"{where} row {i}", value, "a string (the reference is one text per row)")
    return list(values)


class TextKind:
    """One text per row (see the module docstring)."""

    name: ClassVar[str] = "text"

    def __init__(self, descriptors: TextDescriptors) -> None:
        self.descriptors = descriptors

    @property
    def fields(self) -> tuple[str, ...]:
        return (FIELD,)

    def items(self, data: Any, where: str = "reference") -> list[Any]:
        return as_texts(data, where)

    def parse(self, rows: list[Any], allow_missing: bool) -> list[Any]:
        check_rows(rows, lambda i, value: text_problem(i, FIELD, value))
        return rows

    def model_input(self, items: list[Any]) -> Any:
        return list(items)

    def describe(self, items: list[Any], reference: bool = False) -> Columns:
        described = self.descriptors.columns(items, reference=reference)
        return Columns(
            names=tuple(n for n, _, _ in described),
            values=tuple(v for _, v, _ in described),
            categorical=tuple(c for _, _, c in described),
            input_format="records",
        )

    def logged(self, items: list[Any], redact: Collection[str]) -> list[Any]:
        if FIELD in redact:
            return [None] * len(items)
        return [cut(text) for text in items]

    def explain(self, feature: str, reference: FeatureProfile, values: np.ndarray) -> str | None:
        return self.descriptors.explain(feature, reference, values)

    def redacted(self, redact: Collection[str]) -> TextKind:
        return TextKind(TextDescriptors(FIELD, ())) if FIELD in redact else self

    def to_json(self) -> dict[str, Any]:
        return {"descriptors": self.descriptors.to_json()}


class TextFactory:
    """Chooses the text kind for training data that is a sequence of strings."""

    name = "text"

    def accepts(self, data: Any) -> bool:
        series = type(data).__module__.startswith("pandas") and getattr(data, "ndim", 0) == 1
        if series or (isinstance(data, np.ndarray) and data.ndim == 1 and data.dtype.kind in "OU"):
            data = data.tolist()
        return isinstance(data, (list, tuple)) and bool(data) and all(isinstance(v, str) for v in _head(data))

    def fit(self, data: Any) -> TextKind:
        return TextKind(TextDescriptors.fit(FIELD, as_texts(data, "reference")))

    def from_json(self, state: dict[str, Any]) -> TextKind:
        return TextKind(TextDescriptors.from_json(state.get("descriptors")))


def _head(values: Sequence[Any]) -> Sequence[Any]:
    return values[:100]
