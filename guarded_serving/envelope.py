"""Where a ``/predict`` body holds its rows, and how its answer is written.

The guard's own shape (:data:`ROWS`) reads ``{"rows": [...]}`` and answers ``{"predictions": [...],
"request_id": ...}``. An API that keeps a signature of its own (a BentoML API guarded in place, see
:mod:`guarded_serving.bento`) brings another envelope: the rows in the field its parameter names, and the
answer the API always gave. The request path (:mod:`guarded_serving.handler`) is the same for both.
"""

from __future__ import annotations

from typing import Any, Protocol

from .jsontext import dump_bytes, to_jsonable_output

__all__ = ["ROWS", "Envelope", "RowsEnvelope"]


class Envelope(Protocol):
    def rows(self, document: Any) -> Any:
        """The decoded body as the ``{"rows": ...}`` document validation reads; an InputError naming what
        the body lacks when it has no rows where this envelope expects them."""
        ...

    def serialize(self, result: Any, request_id: str) -> tuple[Any, bytes]:
        """The model's result as JSON values (what is logged and monitored, one per row when valid) and the
        answer's body."""
        ...

    def outputs_text(self, payload: bytes) -> str:
        """The JSON text of the outputs inside an answer's body, which the store logs as sent."""
        ...


_PREDICTIONS_AT = len(b'{"predictions":')


class RowsEnvelope:
    """``{"rows": [...]}`` in, ``{"predictions": [...], "request_id": "..."}`` out."""

    def rows(self, document: Any) -> Any:
        return document

    def serialize(self, result: Any, request_id: str) -> tuple[Any, bytes]:
        outputs = to_jsonable_output(result)
        return outputs, dump_bytes({"predictions": outputs, "request_id": request_id})

    def outputs_text(self, payload: bytes) -> str:
        """A request id has no quote or comma in it, so the last ``,"request_id":`` is the key's own."""
        return payload[_PREDICTIONS_AT : payload.rindex(b',"request_id":')].decode()


ROWS = RowsEnvelope()
