"""A test client for a guarded model, without a server: the answers HTTP would give, framework-free.

``TestClient(svc)`` takes what :func:`~guarded_serving.guard` returned (or a
:class:`~guarded_serving.GuardedModel`) and sends requests straight to the handlers the service runs
behind its routes, so a user's own tests check their model's answers (status, JSON body, problem+json)
in milliseconds, with no ``bentoml serve``, no port and no HTTP library::

    client = TestClient(svc)
    answer = client.predict([[0.5, 1.0, 2.0]])
    assert answer.status == 200 and len(answer.json()["predictions"]) == 1
    refused = client.predict([[0.5, "abc", 2.0]])
    assert refused.status == 422 and refused.media_type == "application/problem+json"

The requests are logged and judged as served ones are: use ``db=":memory:"`` in ``guard()`` (or a file in
a temporary directory) to keep a test's traffic out of the service's log, and :meth:`TestClient.close` (or
``with``) to flush it. The bodies are the bytes the service would send; ``tests/e2e/test_testing.py``
compares them with a real ``bentoml serve``'s.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from .errors import ConfigurationError
from .guard import GuardedModel
from .http import Reply

__all__ = ["Answer", "TestClient"]


@dataclass(frozen=True)
class Answer:
    """One answer: its status, headers (``content-type`` included), body bytes and media type."""

    status: int
    body: bytes
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, reply: Reply) -> Answer:
        return cls(reply.status, reply.body, reply.media_type, {**reply.headers, "content-type": reply.media_type})

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def is_problem(self) -> bool:
        """Whether this is an RFC 9457 problem (``application/problem+json``): every refused request is one."""
        return self.media_type == "application/problem+json"

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class TestClient:
    """Requests to a guarded model, answered as its service answers them (see the module docstring)."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, model: Any, *, auth_token: str | None = None) -> None:
        self.model = _guarded_model(model)
        self.authorization = f"Bearer {auth_token}" if auth_token is not None else None

    def predict(
        self,
        rows: Any = None,
        *,
        json: Any = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        request_id: str | None = None,
    ) -> Answer:
        """``POST /predict``: ``rows`` sent as ``{"rows": rows}``, or any ``json`` document, or raw ``body`` bytes."""
        payload = _body(body, json, None if rows is None else {"rows": rows})
        return Answer.of(self.model.handle_predict(payload, content_type, request_id))

    def feedback(
        self,
        request_id: str | None = None,
        labels: list[Any] | None = None,
        *,
        json: Any = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Answer:
        """``POST /feedback``: ``labels`` for the rows of ``request_id``, or any ``json`` document, or raw ``body``."""
        given = None if request_id is None else {"request_id": request_id, "labels": labels}
        return Answer.of(self.model.handle_feedback(_body(body, json, given), content_type, self.authorization))

    def health(self, *, fail_on: str | None = None, format: str | None = None, accept: str | None = None) -> Answer:
        """``GET /health/model`` with its query parameters (``?fail_on=``, ``?format=``) and ``Accept`` header."""
        return Answer.of(self.model.health_reply(fail_on, True, self.authorization, format, accept))

    def history(self, *, since: str | None = None, limit: str | None = None) -> Answer:
        """``GET /health/model/history`` with its query parameters, given as the text a URL would carry."""
        return Answer.of(self.model.history_reply(since, limit, self.authorization))

    def close(self) -> None:
        """Stop the model's monitor: what it logged is flushed to its store."""
        self.model.close()

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()


def _guarded_model(model: Any) -> GuardedModel:
    """The GuardedModel itself, or the one inside the service guard() built."""
    found = model if isinstance(model, GuardedModel) else getattr(getattr(model, "inner", None), "guarded", None)
    if not isinstance(found, GuardedModel):
        raise ConfigurationError("model", model, "what guard() returned, or a GuardedModel")
    return found


def _body(body: bytes | None, document: Any, rows: Any) -> bytes:
    """The request body: raw bytes as given, else one of the JSON documents, encoded as a client would."""
    given = [value is not None for value in (body, document, rows)]
    if sum(given) != 1:
        raise ConfigurationError(
            "body", [name for name, g in zip(("body", "json", "rows"), given, strict=True) if g], "one of them"
        )
    if body is not None:
        return body
    return jsonlib.dumps(document if document is not None else rows).encode()
