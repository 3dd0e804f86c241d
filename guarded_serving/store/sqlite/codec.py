"""How the SQLite backend writes values into columns and reads them back, tolerant of damaged rows.

Times are ISO text in UTC with milliseconds, so that they compare as text; window chunks are
little-endian float64 blobs with their shape and unseen categories in a JSON ``meta`` column. A value
read back that is not what was written (a hand-edited or half-written row) decodes to a neutral value
(a count of 0, no settings, no chunk) instead of failing the read.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic_core import to_json

from ...drift.window import Chunk
from ...jsontext import dump_text
from ..records import iso_time as iso

__all__ = ["count", "decode_chunk", "encode_chunk", "iso", "settings", "stages_text", "text"]

# Stage names as JSON keys, written once each (a service names a handful of stages; the bound keeps a caller
# that invents names from growing it).
_STAGE_KEYS: dict[str, str] = {}
_STAGE_KEYS_KEPT = 1024
# Below this, Python's repr of a float rounded to 3 decimals is the text pydantic-core writes for it (no exponent).
_PLAIN_FLOAT = 1e15


def count(value: Any) -> int:
    """A stored count as an int: 0 for anything that is not a whole number (a hand-edited or damaged row)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return 0


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def settings(stored: Any) -> dict[str, Any]:
    """Saved monitoring settings; {} (the defaults) when they do not decode to an object."""
    try:
        decoded = json.loads(stored)
    except (TypeError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def stages_text(stages: dict[str, float]) -> str:
    """A request's stage timings (milliseconds) as the ``stages`` column: JSON of each rounded to the microsecond.

    The text of ``dump_text({name: round(ms, 3) ...})``, written by hand for the usual stages (names seen
    before, durations below 10^15 ms): the writer spent 2.8 µs of its ~20 per request on that call, this
    takes about 1. Anything else (a NaN, a name pydantic-core refuses) is written by ``dump_text`` itself.

    The dict is copied first (one step under the GIL): the guard may add a stage while a writer reads it."""
    stages = stages.copy()
    parts = []
    for name, ms in stages.items():
        value = round(ms, 3)
        key = _STAGE_KEYS.get(name)
        if key is None:
            if not isinstance(name, str):  # a number, say (a caller's own timings): JSON keys are text
                return dump_text({k: round(v, 3) for k, v in stages.items()})
            try:
                key = to_json(name).decode()
            except (ValueError, TypeError):  # a lone surrogate: dump_text's own fallback writes it
                key = ""
            if not key or len(_STAGE_KEYS) >= _STAGE_KEYS_KEPT:
                return dump_text({k: round(v, 3) for k, v in stages.items()})
            _STAGE_KEYS[name] = key
        if not 0.0 <= value < _PLAIN_FLOAT:  # NaN, infinite, negative or huge: not worth a case of its own
            return dump_text({k: round(v, 3) for k, v in stages.items()})
        parts.append(f"{key}:{value!r}")
    return "{" + ",".join(parts) + "}"


def encode_chunk(chunk: Chunk) -> tuple[int, bytes, bytes | None, str]:
    """A window chunk as the ``window`` table's (rows, inputs, outputs, meta) columns."""
    meta = {
        "width": chunk.inputs.shape[1],
        "output_width": None if chunk.outputs is None else chunk.outputs.shape[1],
        "unseen": {str(j): names for j, names in chunk.unseen.items()},
        "type_errors": {str(j): n for j, n in chunk.type_errors.items()},
    }
    outputs = None if chunk.outputs is None else np.ascontiguousarray(chunk.outputs, dtype="<f8").tobytes()
    return chunk.rows, np.ascontiguousarray(chunk.inputs, dtype="<f8").tobytes(), outputs, json.dumps(meta)


def decode_chunk(rows: Any, inputs: Any, outputs: Any, meta_text: Any) -> Chunk | None:
    """A stored window chunk, or None when it does not decode to the shape its metadata names."""
    try:
        chunk = _decode(rows, inputs, outputs, meta_text)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    width = chunk.inputs.shape[1]
    if (
        chunk.rows < 1
        or width < 1
        or any(not 0 <= j < width or any(n < 0 for n in names.values()) for j, names in chunk.unseen.items())
        or any(not 0 <= j < width or n < 0 for j, n in chunk.type_errors.items())
    ):
        return None
    return chunk


def _decode(rows: int, inputs: bytes, outputs: bytes | None, meta_text: str) -> Chunk:
    meta = json.loads(meta_text)
    matrix = np.frombuffer(inputs, dtype="<f8").reshape(rows, meta["width"])
    out = None
    if outputs is not None and meta.get("output_width"):
        out = np.frombuffer(outputs, dtype="<f8").reshape(rows, meta["output_width"])
    unseen = {int(j): {str(k): int(v) for k, v in names.items()} for j, names in meta.get("unseen", {}).items()}
    errors = {int(j): int(n) for j, n in meta.get("type_errors", {}).items()}
    return Chunk(matrix, out, unseen, errors)
