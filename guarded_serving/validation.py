"""Parse and validate a prediction request against the reference's features.

The guard owns input parsing so that every bad request gets the same kind of answer: a 4xx whose
problems each name the row, the feature, what was wrong and what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic_core import from_json

from .errors import InputError, Problem, shortened
from .reference import Reference

__all__ = ["ParsedRows", "RowSchema", "parse_json", "parse_rows", "parse_table"]

MAX_PROBLEMS = 20
FLOAT_MAX = sys.float_info.max


class _NonFinite:
    """Stands for a NaN/Infinity literal, which Python's json accepts but JSON does not allow."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def describe(value: object) -> str:
    """A value as an error message quotes it: ``null``, ``an object``, ``"abc"``, ``3`` (cut to 40 characters)."""
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
    return shortened(text, 40)


NUMBER: frozenset[type] = frozenset({int, float})
ANY_CATEGORY: frozenset[type] = frozenset({str, int, float, bool})
_KIND_NAMES = ((str, "a string"), (float, "a number"), (bool, "a boolean"))
# How far beyond the reference a number may be: 10^9 times the reference's largest magnitude (or 10^9 when that
# is below 1). A unit changed by 1,000 (or 10^6) still passes, to be flagged by the quality and drift checks; a
# value like 1e308 does not: scaled or cast to float32 by the model's own pipeline, it becomes infinity, and
# scikit-learn raises on it (float32 holds magnitudes up to 3.4e38).
MAGNITUDE_FACTOR = 1e9


def category_types(categories: tuple[tuple[Any, float], ...]) -> frozenset[type]:
    """The JSON types a categorical feature accepts: those of its reference categories (any, if it has none).

    A model trained on string categories fails on a number (a OneHotEncoder compares them and raises), so a
    number for such a feature is a wrong type, refused before the model sees it. A flag (boolean categories)
    takes numbers too: clients send it as 0/1 as often as true/false, and 1 is the category True.
    """
    found: set[type] = set()
    for value, _ in categories:
        found |= {bool, *NUMBER} if isinstance(value, bool) else NUMBER if isinstance(value, (int, float)) else {str}
    return frozenset(found) or ANY_CATEGORY


def describe_types(types: frozenset[type]) -> str:
    """``a string``, ``a number``, ``a string or a number``..."""
    return " or ".join(name for kind, name in _KIND_NAMES if kind in types)


def magnitude_limit(minimum: float | None, maximum: float | None) -> float:
    """The largest magnitude a numeric feature accepts (see MAGNITUDE_FACTOR)."""
    largest = max(abs(minimum or 0.0), abs(maximum or 0.0), 1.0)
    return min(MAGNITUDE_FACTOR * largest, FLOAT_MAX)


@dataclass(frozen=True, slots=True)
class RowSchema:
    """What a valid row looks like, precomputed from the reference once.

    ``types``: per feature, the JSON value types it accepts besides null (numbers for a numeric feature; for
    a categorical one those of its reference categories). ``limits``: per feature, the largest magnitude of
    a number (infinite for a categorical feature). Left empty, every numeric feature takes any finite number
    and every categorical one any string, number or boolean. ``takes_missing``: per feature, whether the model
    takes a missing value there (asked of it by :func:`guarded_serving.missing.missing_taken`); left empty,
    every feature takes null when ``allow_missing`` is true.
    """

    names: tuple[str, ...]
    numeric: tuple[bool, ...]
    allow_missing: bool = True
    max_rows: int = 1000
    types: tuple[frozenset[type], ...] = ()
    limits: tuple[float, ...] = ()
    takes_missing: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if not self.types:
            object.__setattr__(self, "types", tuple(NUMBER if n else ANY_CATEGORY for n in self.numeric))
        if not self.limits:
            object.__setattr__(self, "limits", tuple(FLOAT_MAX if n else math.inf for n in self.numeric))

    @classmethod
    def from_reference(
        cls, reference: Reference, allow_missing: bool = True, max_rows: int = 1000, takes_missing: tuple[bool, ...] = ()
    ) -> RowSchema:
        return cls(
            names=reference.feature_names,
            numeric=tuple(f.kind == "numeric" for f in reference.features),
            allow_missing=allow_missing,
            max_rows=max_rows,
            types=tuple(NUMBER if f.kind == "numeric" else category_types(f.categories) for f in reference.features),
            limits=tuple(magnitude_limit(f.minimum, f.maximum) if f.kind == "numeric" else math.inf for f in reference.features),
            takes_missing=takes_missing,
        )

    @property
    def all_numeric(self) -> bool:
        return all(self.numeric)

    def nulls(self) -> tuple[bool, ...]:
        """Per feature, whether a null (a missing value) is accepted there."""
        if not self.allow_missing:
            return (False,) * len(self.names)
        return self.takes_missing or (True,) * len(self.names)

    def fast_check(self) -> Callable[[list[list[Any]]], bool]:
        """A check of rows (lists of the schema's width) that is True only when every value is surely valid: the
        types of every row's values at once, a group of features accepting the same types at a time, in C (row by
        row, two set tests a row of a mixed table cost ~0.5 µs).

        A False sends the rows through the detailed checks that name each problem.
        """
        # A null where the model takes none fails the fast check: the detailed checks name it.
        none = {type(None)} if all(self.nulls()) else set()
        if self.all_numeric:
            numbers = frozenset(NUMBER | none)
            return lambda rows: numbers.issuperset(map(type, itertools.chain.from_iterable(rows)))
        groups: dict[frozenset[type], list[int]] = {}  # features grouped by the types they accept
        for j, types in enumerate(self.types):
            groups.setdefault(frozenset(types | none), []).append(j)
        checks = [(allowed, _taker(indices)) for allowed, indices in groups.items()]
        return lambda rows: all(
            allowed.issuperset(map(type, itertools.chain.from_iterable(map(take, rows)))) for allowed, take in checks
        )


def _taker(keys: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A row's values at ``keys`` (positions of a list, names of an object) as a tuple, one key too, in C."""
    if not keys:
        return lambda row: ()
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    return operator.itemgetter(*keys)


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


def _check_value(
    value: Any, numeric: bool, types: frozenset[type], limit: float, allow_missing: bool, taken: bool = True
) -> Problem | None:
    """What is wrong with a value of a feature accepting ``types`` up to magnitude ``limit``, or None; a null is
    refused unless ``allow_missing`` and ``taken`` (the model takes a missing value there)."""
    if value is None:
        if allow_missing and taken:
            return None
        expected = "a number" if numeric else "a category"
        if allow_missing:
            return Problem(
                "got null, a missing value, which this model cannot take (it raised on one at start)", expected, kind="missing"
            )
        return Problem("a missing value (null) is not allowed", expected, kind="missing")
    if isinstance(value, _NonFinite):  # null is offered only where the model takes it
        return Problem(
            f"{value.text} is not allowed",
            "a finite number" + (", or null for a missing value" if allow_missing and taken else ""),
        )
    if type(value) not in types:
        if numeric:
            return Problem(f"got {describe(value)}", "a number", kind="type")
        if types == ANY_CATEGORY:
            return Problem(f"got {describe(value)}", "a category (a string, number or boolean)", kind="type")
        kinds = describe_types(types)
        return Problem(f"got {describe(value)}", f"a category given as {kinds}, as the reference's are", kind="type")
    if type(value) in NUMBER and not -limit <= value <= limit:
        shown = describe(value)[:40]
        if limit >= FLOAT_MAX:
            return Problem(f"got {shown}, which is not a finite float", "a finite number within ±1.8e308", kind="range")
        return Problem(
            f"got {shown}, far beyond the reference's values",
            f"a number within ±{limit:.3g} (10^9 times the reference's largest magnitude, at least 1)",
            kind="range",
        )
    return None


@dataclass(frozen=True, slots=True, eq=False)
class ParsedRows:
    """Validated rows in the reference's feature order, and, when every feature is numeric, the same
    rows as one float64 matrix (NaN for a missing value), built once for the model and the window."""

    rows: list[list[Any]]
    matrix: np.ndarray | None = None
    verbatim: bool = False  # the rows are the document's own lists, in the order sent


def rows_text(body: bytes) -> str | None:
    """The JSON text of the ``rows`` array of a body that parsed into a :class:`ParsedRows` with a matrix
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


def parse_table(document: Any, schema: RowSchema) -> ParsedRows:
    """:func:`parse_rows`, plus the float matrix of an all-numeric schema's rows."""
    if not isinstance(document, dict):
        raise InputError([Problem(f"the body is {describe(document)}", 'a JSON object like {"rows": [[...], ...]}')], status=422)
    unknown = [k for k in document if k != "rows"]
    if "rows" not in document or unknown:
        problem = f"unknown field {unknown[0]!r}" if unknown else "the field 'rows' is missing"
        raise InputError([Problem(problem, 'a JSON object with the single field "rows"')], status=422)
    rows = document["rows"]
    verbatim = isinstance(rows, list) and bool(rows) and isinstance(rows[0], list)
    if isinstance(rows, dict) or (isinstance(rows, list) and rows and not isinstance(rows[0], (list, dict))):
        rows = [rows]
    if not isinstance(rows, list) or not rows:
        raise InputError([Problem(f"'rows' is {describe(rows)}", "a non-empty list of rows (lists or objects)")], status=422)
    if len(rows) > schema.max_rows:
        raise InputError([Problem(f"{len(rows)} rows in one request", f"at most {schema.max_rows} rows per request")], status=413)
    names = schema.names
    width = len(names)
    fast, in_range, limits, by_name = _checks(schema)
    numeric = schema.all_numeric
    out: list[list[Any]] = []
    for row in rows:  # the common case: well-formed rows, their types then checked in C, all at once
        if type(row) is dict and len(row) == width:
            verbatim = False
            try:
                row = list(by_name(row))  # in C: a list comprehension of the names cost ~1.5 µs a row of 20
            except KeyError:
                break
        if type(row) is not list or len(row) != width:
            break
        out.append(row)
    else:
        if not fast(out):
            return ParsedRows(_parse_slowly(rows, schema))
        if not numeric:
            if in_range(out):
                return ParsedRows(out)
            return ParsedRows(_parse_slowly(rows, schema))
        # Every value is a number or None: one conversion, and the magnitude check on the whole matrix
        # (1e400 parses as inf; an integer beyond float range cannot be converted at all).
        try:
            matrix = np.array(out, dtype=np.float64).reshape(len(out), width)
        except OverflowError:
            pass
        else:
            if not (np.abs(matrix) > limits).any():  # NaN (missing) compares False
                return ParsedRows(out, matrix, verbatim)
    return ParsedRows(_parse_slowly(rows, schema))


@functools.lru_cache(maxsize=64)
def _checks(
    schema: RowSchema,
) -> tuple[
    Callable[[list[list[Any]]], bool], Callable[[list[list[Any]]], bool], np.ndarray, Callable[[dict[str, Any]], tuple[Any, ...]]
]:
    """The schema's type check of rows, the rows' magnitude check, the limits as an array and a row object's
    values in feature order, built once (one cache lookup per request)."""
    return schema.fast_check(), _range_check(schema), np.array(schema.limits, dtype=np.float64), _taker(schema.names)


def _range_check(schema: RowSchema) -> Callable[[list[list[Any]]], bool]:
    """True when every numeric value of type-checked rows (numbers or None there) is within its feature's magnitude
    limit (1e400 parses as inf, and a huge integer cannot become a float at all), and none is NaN.

    The rows' numbers checked at once as one matrix: row by row, a 64-row request of 18 numbers and 2 categories
    took ~0.2 ms of comparisons in Python. A None becomes NaN there: NaN beyond the rows' Nones is a NaN sent."""
    numeric = [j for j, n in enumerate(schema.numeric) if n]
    if not numeric:
        return lambda rows: True
    take = _taker(numeric)
    limits = np.array([schema.limits[j] for j in numeric], dtype=np.float64)

    def check(rows: list[list[Any]]) -> bool:
        values = [take(row) for row in rows]
        try:
            matrix = np.array(values, dtype=np.float64)
        except OverflowError:
            return False
        if not (np.abs(matrix) <= limits).all():  # NaN too: compared False
            nan = np.isnan(matrix)
            if (np.abs(matrix[~nan]) > np.broadcast_to(limits, matrix.shape)[~nan]).any():
                return False
            return int(nan.sum()) == sum(row.count(None) for row in values)
        return True

    return check


def _parse_slowly(rows: list[Any], schema: RowSchema) -> list[list[Any]]:
    """Check every value and name every problem (up to MAX_PROBLEMS)."""
    names = schema.names
    width = len(names)
    numeric, types, limits = schema.numeric, schema.types, schema.limits
    allow_missing, taken = schema.allow_missing, schema.nulls() if schema.allow_missing else (True,) * width
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
            problems.append(Problem(f"the row is {describe(row)}", "a list of values or an object of feature: value", row=i))
            values = None
        if values is not None:
            for j, value in enumerate(values):
                bad = _check_value(value, numeric[j], types[j], limits[j], allow_missing, taken[j])
                if bad is not None:
                    problems.append(dataclasses.replace(bad, row=i, feature=names[j]))
            out.append(values)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InputError(problems[:MAX_PROBLEMS], status=422)
    return out
