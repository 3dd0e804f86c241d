"""JSON text for answers and logged rows: written by pydantic-core's Rust serializer, read back by simdjson.

The standard library's ``json.dumps`` is the largest single cost of logging a wide request (about
15 µs per 20-float row); pydantic-core (already installed with BentoML) writes the same JSON 5-10x
faster. NaN and infinities become ``null``, as JSON has no literal for them. A value Rust refuses
(a string holding a lone surrogate, an object it does not know) is written by the standard library
instead, so every value that was writable before still is.

Reading a logged array of numbers back is the same story the other way: ``json.loads`` turns each
17-digit float into a Python float through a slow correctly-rounded conversion (~0.45 µs a number:
95 µs for a 100-row request's two class probabilities), simdjson (already installed for the numeric
request bodies) in ~0.1 µs, to the same doubles. :func:`loads` uses it for the RFC 8259 JSON it accepts and
hands anything else (``NaN``, integers past 64 bits, a lone surrogate, a byte-order mark, malformed text) to
``json.loads``, so that it returns and raises exactly what ``json.loads`` does.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import simdjson
from pydantic_core import to_json

from .health import to_jsonable

__all__ = ["dump_bytes", "dump_text", "loads", "to_jsonable_output"]


def loads(text: str) -> Any:
    """``json.loads(text)``, faster for the JSON simdjson accepts (see the module's docstring)."""
    if isinstance(text, str) and not text.startswith("\ufeff"):
        try:
            return simdjson.loads(text)
        except (ValueError, RuntimeError):  # refused (a UnicodeEncodeError is a ValueError): json.loads decides
            pass
    return json.loads(text)


def dump_bytes(value: Any) -> bytes:
    """Compact JSON of plain values (lists, dicts, str, numbers, bools, None) as UTF-8 bytes."""
    try:
        return to_json(value, inf_nan_mode="null")
    except (ValueError, TypeError):  # PydanticSerializationError is a ValueError
        return json.dumps(to_jsonable(value), separators=(",", ":")).encode("utf-8", "surrogatepass")


def dump_text(value: Any) -> str:
    """Compact JSON text of plain values (what the store writes)."""
    try:
        return to_json(value, inf_nan_mode="null").decode()
    except (ValueError, TypeError):
        return json.dumps(to_jsonable(value), separators=(",", ":"))


def to_jsonable_output(value: Any) -> Any:
    """A model's result (numpy arrays and scalars, pandas objects, nested lists) as plain JSON values: how
    predictions are answered and logged, and how the reference profiles them. Lossless: NaN stays NaN here."""
    if isinstance(value, np.ndarray):
        return value.tolist() if value.dtype != object else [to_jsonable_output(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [to_jsonable_output(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable_output(v) for k, v in value.items()}
    to_numpy = getattr(value, "to_numpy", None)  # a pandas DataFrame or Series
    if callable(to_numpy):
        return to_jsonable_output(to_numpy())
    tolist = getattr(value, "tolist", None)  # a pandas Index, an array-like
    if callable(tolist):
        return tolist()
    return value
