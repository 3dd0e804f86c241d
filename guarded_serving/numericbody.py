"""The common wide request, ``{"rows": [[numbers], ...]}``, decoded straight into a float64 matrix.

For a model whose features are all numeric and which takes an array, the guard needs the rows only as a
matrix (for the model and the drift window) and as the client's own JSON text (for the store). simdjson
(pysimdjson) parses such a body and copies its numbers into one buffer of doubles, with no Python object
per value: at 64 rows of 20 features about 3x faster than decoding them into Python floats (msgspec, 50 µs)
and building the matrix from those (35 µs), and 5x faster than the general path (pydantic-core's parse, the
per-row checks and the matrix), measured with bench/overhead.py's microbenchmark.

It answers only for a body it accepts whole. Anything else (null for a missing value, a row of the wrong
width, a string, a number beyond the reference's magnitude, malformed JSON, more rows than allowed...)
gets None, and the caller parses the body with :func:`guarded_serving.validation.parse_table`, whose
errors name each problem: every message stays that parser's. A body this module accepts is one that
parser accepts, into the same matrix (tests/test_numericbody.py compares the two on generated bodies).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import simdjson
from scipy.linalg.blas import idamax

from .validation import RowSchema, rows_text

__all__ = ["NumericDecoder", "NumericRows", "owned_copy"]

# A parser keeps buffers sized for the largest document it parsed: each thread keeps one for bodies up to this
# size, and a larger body gets a parser of its own, freed with it (the guard's memory does not grow with one).
KEPT_PARSER_BYTES = 1024 * 1024
SMALL_BODY_VALUES = 40  # up to this many values, the limits are checked in Python (numpy's fixed cost is larger)
_BOM = b"\xef\xbb\xbf"  # simdjson skips it; the general parser refuses it (JSON text has none)
_NUMBER_BYTES = b"0123456789.+-eE \t\n\r"  # what JSON numbers and white space are written with
_NUMPY_KEEPS_GIL = 500  # numpy holds the GIL through a loop of up to this many values (NPY_BEGIN_THREADS_THRESHOLDED)
_FRAME = len(b'{"rows":[]}') - 1  # a skeleton's length beyond its rows' (each row and a comma: width + 2)


def owned_copy(matrix: np.ndarray) -> np.ndarray:
    """A writable copy of a C-contiguous float64 matrix that holds the GIL while it copies.

    numpy lets go of the GIL to copy more than 500 values; a thread waiting for it (the store's writer, most of
    the time) is woken each time, and mostly finds it taken again: each request paid for those wake-ups on both
    threads (bench/overhead.py's microbenchmark: 179 against 191 µs of guard work per 64-row request, and 50
    against 1,050 wake-ups of the writer per 1,200 requests). A ``bytearray`` copies the bytes without letting
    go; below numpy's threshold numpy's own copy is the faster (0.5 against 1.2 µs)."""
    if matrix.size <= _NUMPY_KEEPS_GIL:
        return matrix.copy()
    return np.frombuffer(bytearray(matrix), dtype=np.float64).reshape(matrix.shape)


def _skeleton(row: bytes, rows: int) -> bytes:
    """``{"rows":[...]}`` holding ``rows`` copies of ``row``, comma-separated."""
    return b'{"rows":[' + (row + b",") * (rows - 1) + row + b"]}"


@dataclass(frozen=True, slots=True, eq=False)
class NumericRows:
    """A valid all-numeric body: its rows as one float64 matrix, and the ``rows`` array's JSON text as sent.

    The matrix owns its values (a copy of the decoded buffer, ~1 µs for 64 rows of 20): a view would keep the
    buffer's ``memoryview`` and its managed buffer alive as long as the drift window keeps the matrix, two objects
    per request that Python's garbage collector tracks and, the window being long-lived, moves into its oldest
    generation, whose full collections walk them."""

    matrix: np.ndarray
    text: str

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])


class NumericDecoder:
    """Decodes the bodies of numeric rows that are valid for one schema; None for any other body."""

    def __init__(self, schema: RowSchema) -> None:
        self.enabled = schema.all_numeric
        self.width = len(schema.names)
        self.max_rows = schema.max_rows
        self.limits = np.array(schema.limits, dtype=np.float64)
        self.smallest_limit = float(self.limits.min()) if self.width else 0.0
        self._row = b"[" + b"," * (self.width - 1) + b"]"  # a row's skeleton
        self._local = threading.local()

    def __call__(self, body: bytes) -> NumericRows | None:
        if not self.enabled or body.startswith(_BOM):
            return None
        try:
            text = rows_text(body)  # None for a body holding a string (a repeated or unknown key, say)
        except UnicodeDecodeError:
            return None
        if text is None:
            return None
        parser = self._parser() if len(body) <= KEPT_PARSER_BYTES else simdjson.Parser()
        try:
            values = self._values(parser, body)
        except (ValueError, TypeError, RuntimeError, KeyError):  # malformed, a value not a number, a huge integer
            return None
        if values is None:
            return None
        # The largest magnitude against the smallest limit clears the usual body; only a body beyond it is tested
        # feature by feature. BLAS's idamax finds it (0.5 µs at 64 rows of 20, where numpy's abs and max took 2.7,
        # and each let go of the GIL, see owned_copy); for a row or two, in Python. The values are finite:
        # simdjson refuses NaN, infinities and numbers beyond a double.
        if values.size <= SMALL_BODY_VALUES:
            largest = max(map(abs, values.tolist()), default=0.0)
        else:
            largest = abs(float(values[idamax(values)]))
        matrix = values.reshape(-1, self.width)
        if largest > self.smallest_limit and (np.abs(matrix) > self.limits).any():
            return None
        return NumericRows(owned_copy(matrix), text)

    def _values(self, parser: simdjson.Parser, body: bytes) -> np.ndarray | None:
        """The numbers of a ``{"rows": [[...], ...]}`` body whose rows all hold ``width`` numbers, in order.

        The body's shape is checked on its skeleton, what is left once the characters of numbers and white space
        are deleted: ``{"rows":[[,,],[,,]]}`` for two rows of three. Anything else in it (a null, a string, a
        nested array, an object, a second key) leaves other characters or another skeleton. That one pass over
        the bytes (~5 µs at 64 rows of 20) replaced counting the ``[`` and listing every row as a simdjson object
        to test its length (~10 µs). simdjson then refuses what is not JSON (``1..2``, ``[1,,2]``) and copies the
        numbers out as doubles. The parser's objects are let go before returning: it cannot parse again while
        they live."""
        skeleton = body.translate(None, _NUMBER_BYTES)
        rows, extra = divmod(len(skeleton) - _FRAME, self.width + 2)
        if extra or not 0 < rows <= self.max_rows or skeleton != _skeleton(self._row, rows):
            return None
        doc: Any = parser.parse(body)  # an object holding an array of arrays, as its skeleton says
        found: Any = None
        try:
            found = doc["rows"]  # a KeyError for a key whose skeleton reads "rows" (``"r0ws"``)
            values = np.frombuffer(found.as_buffer(of_type="d"), dtype=np.float64)
        finally:
            del found, doc
        return values if values.size == rows * self.width else None  # an empty row, for a width of 1

    def _parser(self) -> simdjson.Parser:
        parser: simdjson.Parser | None = getattr(self._local, "parser", None)
        if parser is None:
            parser = self._local.parser = simdjson.Parser()
        return parser
