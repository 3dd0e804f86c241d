"""Parse and validate a prediction request against the reference's features.

The guard owns input parsing so that every bad request gets the same kind of answer: a 4xx whose
problems each name the row, the feature, what was wrong and what was expected.
"""

from __future__ import annotations

import functools
import json
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic_core import from_json

from .errors import InputError, Problem
from .reference import Reference

__all__ = ["RowSchema", "Table", "parse_json", "parse_rows", "parse_table"]

MAX_PROBLEMS = 20
FLOAT_MAX = sys.float_info.max


class _NonFinite:
    """Stands for a NaN/Infinity literal, which Python's json accepts but JSON does not allow."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _describe(value: object) -> str:
    if isinstance(value, _NonFinite):
        return value.text
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True, slots=True)
class RowSchema:
    """What a valid row looks like, precomputed from the reference once."""

    names: tuple[str, ...]
    numeric: tuple[bool, ...]
    allow_missing: bool = True
    max_rows: int = 1000

    @classmethod
    def from_reference(cls, reference: Reference, allow_missing: bool = True, max_rows: int = 1000) -> RowSchema:
        return cls(
            names=reference.feature_names,
            numeric=tuple(f.kind == "numeric" for f in reference.features),
            allow_missing=allow_missing,
            max_rows=max_rows,
        )

    @property
    def all_numeric(self) -> bool:
        return all(self.numeric)

    def fast_check(self) -> Callable[[list[Any]], bool]:
        """A per-row check that is True only for rows that are surely valid (types checked in C).

        A False sends the row through the detailed checks that name each problem.
        """
        none = {type(None)} if self.allow_missing else set()
        numbers = frozenset({float, int} | none)
        categories = frozenset({str, int, float, bool} | none)
        num_idx = [j for j, n in enumerate(self.numeric) if n]
        cat_idx = [j for j, n in enumerate(self.numeric) if not n]
        if not cat_idx:
            return lambda row: numbers.issuperset(map(type, row))
        take_num = _taker(num_idx)
        take_cat = _taker(cat_idx)
        return lambda row: numbers.issuperset(map(type, take_num(row))) and categories.issuperset(map(type, take_cat(row)))


def _taker(indices: list[int]) -> Callable[[list[Any]], Sequence[Any]]:
    if not indices:
        return lambda row: ()
    if len(indices) == 1:
        j = indices[0]
        return lambda row: (row[j],)
    return operator.itemgetter(*indices)  # type: ignore[return-value]


def parse_json(body: bytes) -> Any:
    """Decode a JSON body; malformed JSON is a 400 that says where parsing stopped.

    Valid JSON is parsed by pydantic-core's Rust parser (5-7x faster than the standard library's, the
    largest share of a wide request's cost); anything it refuses (malformed JSON, NaN literals, bad
    UTF-8, deep nesting, huge integers) is parsed again by the standard library, whose errors and
    NaN handling name exactly what was wrong.
    """
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError:
        pass
    if not body.strip():
        raise InputError([Problem("the request body is empty", 'a JSON object like {"rows": [[...], ...]}')], status=400)
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            [Problem(f"the body is not UTF-8 text ({exc.reason})", "a UTF-8 encoded JSON document")], status=400
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            [Problem(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", "a valid JSON document")],
            status=400,
        ) from None
    except RecursionError:
        raise InputError([Problem("the JSON is nested too deeply", "rows nested at most two levels deep")], status=400) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits (Python's conversion limit)
        raise InputError(
            [Problem(f"the JSON holds an unreadable number ({exc})", "numbers within float range")], status=400
        ) from None


_DECODER = json.JSONDecoder(parse_constant=_NonFinite)


def _check_value(value: Any, numeric: bool, allow_missing: bool) -> tuple[str, str] | None:
    """Return (problem, expected) for a bad value, None for a good one."""
    if value is None:
        if allow_missing:
            return None
        return ("a missing value (null) is not allowed", "a number" if numeric else "a category")
    if isinstance(value, _NonFinite):
        return (f"{value.text} is not allowed", "a finite number, or null for a missing value")
    if numeric:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if -FLOAT_MAX <= value <= FLOAT_MAX:
                return None
            return (f"got {_describe(value)[:40]}, which is not a finite float", "a finite number within ±1.8e308")
        return (f"got {_describe(value)}", "a number")
    if isinstance(value, (str, int, float, bool)):
        return None
    return (f"got {_describe(value)}", "a category (a string, number or boolean)")


@dataclass(frozen=True, slots=True, eq=False)
class Table:
    """Validated rows in the reference's feature order, and, when every feature is numeric, the same
    rows as one float64 matrix (NaN for a missing value), built once for the model and the window."""

    rows: list[list[Any]]
    matrix: np.ndarray | None = None
    verbatim: bool = False  # the rows are the document's own lists, in the order sent


def rows_text(body: bytes) -> str | None:
    """The JSON text of the ``rows`` array of a body that parsed into a :class:`Table` with a matrix
    and ``verbatim`` rows, so that the store logs the client's own text instead of writing it again.

    Such a body is an object whose single key is ``rows`` holding lists of numbers: its first ``[``
    opens that array and its last ``]`` closes it. None if the text holds any string (a repeated
    key, say), which a body of numbers cannot.
    """
    start, end = body.find(b"["), body.rfind(b"]")
    if start < 0 or end < start:
        return None
    text = body[start : end + 1]
    return None if b'"' in text else text.decode()


def parse_rows(document: Any, schema: RowSchema) -> list[list[Any]]:
    """Turn a decoded ``{"rows": ...}`` document into rows in the reference's feature order.

    Rows may be lists (in feature order) or dicts (by feature name); a single row may be sent
    without the outer list. Missing values are ``None``.
    """
    return parse_table(document, schema).rows


def parse_table(document: Any, schema: RowSchema) -> Table:
    """:func:`parse_rows`, plus the float matrix of an all-numeric schema's rows."""
    if not isinstance(document, dict):
        raise InputError([Problem(f"the body is {_describe(document)}", 'a JSON object like {"rows": [[...], ...]}')], status=422)
    unknown = [k for k in document if k != "rows"]
    if "rows" not in document or unknown:
        problem = f"unknown field {unknown[0]!r}" if unknown else "the field 'rows' is missing"
        raise InputError([Problem(problem, 'a JSON object with the single field "rows"')], status=422)
    rows = document["rows"]
    verbatim = isinstance(rows, list) and bool(rows) and isinstance(rows[0], list)
    if isinstance(rows, dict) or (isinstance(rows, list) and rows and not isinstance(rows[0], (list, dict))):
        rows = [rows]
    if not isinstance(rows, list) or not rows:
        raise InputError([Problem(f"'rows' is {_describe(rows)}", "a non-empty list of rows (lists or objects)")], status=422)
    if len(rows) > schema.max_rows:
        raise InputError([Problem(f"{len(rows)} rows in one request", f"at most {schema.max_rows} rows per request")], status=413)
    names = schema.names
    width = len(names)
    fast = _fast_check(schema)
    numeric = schema.all_numeric
    in_range = _range_check(schema)
    out: list[list[Any]] = []
    for row in rows:  # the common case: well-formed rows, checked with C-level type tests
        if type(row) is dict and len(row) == width:
            verbatim = False
            try:
                row = [row[n] for n in names]
            except KeyError:
                break
        if type(row) is not list or len(row) != width or not fast(row) or (not numeric and not in_range(row)):
            break
        out.append(row)
    else:
        if not numeric:
            return Table(out)
        # Every value is a number or None: one conversion, and the range check on the whole matrix
        # (1e400 parses as inf; an integer beyond float range cannot be converted at all).
        try:
            matrix = np.array(out, dtype=np.float64)
        except OverflowError:
            pass
        else:
            if not np.isinf(matrix).any():
                return Table(out, matrix.reshape(len(out), width), verbatim)
    return Table(_parse_slowly(rows, schema))


@functools.lru_cache(maxsize=64)
def _fast_check(schema: RowSchema) -> Callable[[list[Any]], bool]:
    return schema.fast_check()


@functools.lru_cache(maxsize=64)
def _range_check(schema: RowSchema) -> Callable[[list[Any]], bool]:
    """True when every numeric value of a type-checked row is a finite float (1e400 parses as inf,
    and a huge integer cannot become a float at all)."""
    num = [j for j, n in enumerate(schema.numeric) if n]

    def check(row: list[Any]) -> bool:
        return all(row[j] is None or -FLOAT_MAX <= row[j] <= FLOAT_MAX for j in num)

    return check


def _parse_slowly(rows: list[Any], schema: RowSchema) -> list[list[Any]]:
    """Check every value and name every problem (up to MAX_PROBLEMS)."""
    names = schema.names
    width = len(names)
    numeric = schema.numeric
    allow_missing = schema.allow_missing
    problems: list[Problem] = []
    out: list[list[Any]] = []
    for i, row in enumerate(rows):
        if isinstance(row, list):
            if len(row) != width:
                problems.append(Problem(f"the row has {len(row)} values", f"{width} values in the order {list(names)}", row=i))
                values = None
            else:
                values = row
        elif isinstance(row, dict):
            extra = [k for k in row if k not in names]
            absent = [n for n in names if n not in row]
            for k in extra[:3]:
                problems.append(Problem("unknown feature", f"one of {list(names)}", row=i, feature=str(k)))
            for n in absent[:3]:
                problems.append(
                    Problem("the feature is missing", "every feature present (null for a missing value)", row=i, feature=n)
                )
            values = None if (extra or absent) else [row[n] for n in names]
        else:
            problems.append(Problem(f"the row is {_describe(row)}", "a list of values or an object of feature: value", row=i))
            values = None
        if values is not None:
            for j, value in enumerate(values):
                bad = _check_value(value, numeric[j], allow_missing)
                if bad is not None:
                    problems.append(Problem(bad[0], bad[1], row=i, feature=names[j]))
            out.append(values)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InputError(problems[:MAX_PROBLEMS], status=422)
    return out
