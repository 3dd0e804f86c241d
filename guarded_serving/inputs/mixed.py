"""The mixed kind: rows of named fields where some field is free text, beside numbers and categories.

A free-text field judged as a categorical feature alarms on healthy traffic (nearly every value is new), so
such a field is described by :class:`~guarded_serving.inputs.descriptors.TextDescriptors` instead
(``review.chars``, ``review.unknown``, ...), and the other fields are judged as they are. The model gets
the rows as the training data was shaped (a DataFrame for a ColumnTransformer, dicts, or lists).

A field is free text when its values are strings, most of them distinct (over half of the first 2,000
rows) and most of them of several words (a median of at least three tokens); ``input_format="mixed"``
takes every string field whose values are mostly distinct.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ConfigurationError, InputError, InvalidReferenceError
from ..tabular import Columns, columns_from_data, columns_to_rows, to_model_input
from ..validation import ANY_CATEGORY, NUMBER, RowSchema, parse_table
from .descriptors import TextDescriptors, tokens
from .kind import check_rows
from .text import cut, text_problem

if TYPE_CHECKING:
    from ..profiles import FeatureProfile

__all__ = ["MixedFactory", "MixedKind", "free_text_fields"]

SCAN = 2000  # rows looked at to decide whether a field is free text
TEXT: frozenset[type] = frozenset({str})


def free_text_fields(columns: Columns, min_tokens: float = 3.0) -> tuple[str, ...]:
    """The string columns whose values are mostly distinct and (with ``min_tokens``) mostly several words."""
    found = []
    for name, values, categorical in zip(columns.names, columns.values, columns.categorical, strict=True):
        head = [v for v in values[:SCAN] if v is not None]
        if not categorical or len(head) < 20 or not all(isinstance(v, str) for v in head):
            continue
        if len(set(head)) <= len(head) / 2:
            continue
        if min_tokens and float(np.median([len(tokens(v)) for v in head])) < min_tokens:
            continue
        found.append(name)
    return tuple(found)


class MixedKind:
    """Rows with free-text fields (see the module docstring)."""

    name: ClassVar[str] = "mixed"

    def __init__(
        self,
        names: tuple[str, ...],
        numeric: tuple[bool, ...],
        input_format: str,
        texts: dict[str, TextDescriptors],
        takes_missing: tuple[bool, ...] = (),
    ) -> None:
        self.names, self.numeric, self.input_format, self.texts = names, numeric, input_format, texts
        types = tuple(NUMBER if num else TEXT if n in texts else ANY_CATEGORY for n, num in zip(names, numeric, strict=True))
        # parse_batch limits the rows; takes_missing: where the model takes a null (a text's is an empty text)
        self._schema = RowSchema(names, numeric, max_rows=sys.maxsize, types=types, takes_missing=takes_missing)
        self._text_idx = [(j, n) for j, n in enumerate(names) if n in texts]
        self._text_cols = frozenset(j for j, _ in self._text_idx)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.names

    def items(self, data: Any, where: str = "reference") -> list[Any]:
        try:
            columns = columns_from_data(data, feature_names=None if _named(data) else self.names)
        except ConfigurationError as exc:
            raise ConfigurationError(where, exc.got, f"rows with the fields {list(self.names)}") from exc
        if columns.names != self.names:
            raise ConfigurationError(where, f"fields {list(columns.names)}", f"the fields {list(self.names)}")
        rows = columns_to_rows(columns)
        for i, row in enumerate(rows):
            for j, field in self._text_idx:
                if row[j] is None:
                    row[j] = ""
                elif not isinstance(row[j], str):
                    raise ConfigurationError(f"{where} row {i}, field {field!r}", row[j], "a string (a free-text field)")
        return rows

    def parse(self, rows: list[Any], allow_missing: bool) -> list[Any]:
        schema = self._schema if allow_missing == self._schema.allow_missing else _with_missing(self._schema, allow_missing)
        try:
            parsed = parse_table({"rows": rows}, schema).rows
        except InputError as exc:  # a text field's wrong value is not a category's: say what the field takes
            texts = self.texts
            problems = [
                dataclasses.replace(p, expected="a string (free text)")
                if p.kind in ("type", "missing") and p.feature in texts
                else p
                for p in exc.problems
            ]
            raise InputError(problems, exc.status) from None
        check_rows(parsed, self._size_problem)
        text = self._text_cols
        return [[("" if v is None and j in text else v) for j, v in enumerate(row)] for row in parsed]

    def _size_problem(self, i: int, row: list[Any]) -> Any:
        for j, field in self._text_idx:
            if row[j] is not None and (problem := text_problem(i, field, row[j])) is not None:
                return problem
        return None

    def model_input(self, items: list[Any]) -> Any:
        return to_model_input(items, self.names, False, self.input_format)

    def with_missing(self, takes_missing: tuple[bool, ...]) -> MixedKind:
        """This kind refusing a null (422) in the fields where ``takes_missing`` says the model takes none."""
        return MixedKind(self.names, self.numeric, self.input_format, self.texts, takes_missing)

    def describe(self, items: list[Any], reference: bool = False) -> Columns:
        names: list[str] = []
        values: list[np.ndarray] = []
        categorical: list[bool] = []
        for j, (name, numeric) in enumerate(zip(self.names, self.numeric, strict=True)):
            column = [row[j] for row in items]
            if name in self.texts:
                for n, v, c in self.texts[name].columns(column, reference=reference):
                    names.append(n)
                    values.append(v)
                    categorical.append(c)
                continue
            names.append(name)
            categorical.append(not numeric)
            if numeric:
                values.append(np.array([math.nan if v is None else float(v) for v in column], dtype=np.float64))
            else:
                values.append(np.array(column, dtype=object))
        return Columns(tuple(names), tuple(values), tuple(categorical), "records")

    def logged(self, items: list[Any], redact: Collection[str]) -> list[Any]:
        blank = [j for j, n in enumerate(self.names) if n in redact]
        out = []
        for row in items:
            row = [cut(v) if j in self._text_cols and isinstance(v, str) else v for j, v in enumerate(row)]
            for j in blank:
                row[j] = None
            out.append(row)
        return out

    def explain(self, feature: str, reference: FeatureProfile, values: np.ndarray) -> str | None:
        field = feature.rsplit(".", 1)[0]
        return self.texts[field].explain(feature, reference, values) if field in self.texts else None

    def redacted(self, redact: Collection[str]) -> MixedKind:
        texts = {f: TextDescriptors(f, ()) if f in redact else d for f, d in self.texts.items()}
        return MixedKind(self.names, self.numeric, self.input_format, texts, self._schema.takes_missing)

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "numeric": list(self.numeric),
            "input_format": self.input_format,
            "texts": [d.to_json() for d in self.texts.values()],
        }


class MixedFactory:
    """Chooses the mixed kind for tabular training data with a free-text field."""

    name = "mixed"

    def accepts(self, data: Any) -> bool:
        if not (_named(data) or (isinstance(data, list) and data and isinstance(data[0], (list, tuple)))):
            return False
        head = data.iloc[:SCAN] if hasattr(data, "iloc") else data[:SCAN]  # asked of every tabular reference
        try:
            columns = columns_from_data(head)
        except ConfigurationError:
            return False
        return bool(free_text_fields(columns))

    def fit(self, data: Any) -> MixedKind:
        columns = columns_from_data(data)
        fields = free_text_fields(columns, min_tokens=0)
        if not fields:
            raise ConfigurationError("input_format", "mixed", "training data with a field of distinct strings (free text)")
        kind = MixedKind(columns.names, tuple(not c for c in columns.categorical), columns.input_format, {})
        rows = kind.items(data)
        texts = {f: TextDescriptors.fit(f, (row[columns.names.index(f)] for row in rows)) for f in fields}
        return MixedKind(columns.names, kind.numeric, columns.input_format, texts)

    def from_json(self, state: dict[str, Any]) -> MixedKind:
        try:
            texts = {d.field: d for d in (TextDescriptors.from_json(t) for t in state["texts"])}
            return MixedKind(tuple(state["names"]), tuple(bool(n) for n in state["numeric"]), str(state["input_format"]), texts)
        except (KeyError, TypeError) as exc:
            raise InvalidReferenceError(f"malformed mixed input kind in the reference: {exc!r}") from exc


def _named(data: Any) -> bool:
    frame = type(data).__module__.startswith("pandas") and hasattr(data, "columns")
    return frame or (isinstance(data, list) and bool(data) and isinstance(data[0], dict))


def _with_missing(schema: RowSchema, allow_missing: bool) -> RowSchema:
    return RowSchema(
        schema.names, schema.numeric, allow_missing, schema.max_rows, schema.types, schema.limits, schema.takes_missing
    )
