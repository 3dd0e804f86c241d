"""HTTP, framework-free: replies, problem+json bodies, the bearer token, content negotiation and query parameters.

Everything here is a pure function of a request's parts (body, headers, query) or builds a :class:`Reply`;
:mod:`guarded_serving.handler` uses it for ``/predict`` and ``/feedback``, :mod:`guarded_serving.endpoints`
for ``/health/model`` and its history, and :mod:`guarded_serving.service` turns a Reply into BentoML's answer.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, Problem, shortened
from .ids import new_request_id
from .jsontext import dump_bytes

__all__ = [
    "REQUEST_ID",
    "Reply",
    "UnreadBody",
    "authorized",
    "check_envelope",
    "parameter_problem",
    "parse_limit",
    "prefers_html",
    "problem_reply",
    "request_id_of",
    "unauthorized",
]

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_JSON_TYPES = ("application/json", "text/json")
# Content-Type headers as clients usually send them, accepted without being split and lowered first.
_JSON_AS_SENT = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, framework-free."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class UnreadBody:
    """A request body the adapter did not read whole because it is larger than ``max_body_bytes``: its size
    as the client declared it (``Content-Length``), or as much as was read before the limit was passed."""

    size: int
    declared: bool


def json_reply(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """A JSON answer; a NaN/Infinity in ``value`` is sent as null: JSON has no literal for it."""
    return Reply(status, dump_bytes(value), headers or {})


def problem_reply(status: int, title: str, detail: str, request_id: str, **extra: Any) -> Reply:
    """An ``application/problem+json`` answer (RFC 9457) carrying the request id."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "request_id": request_id, **extra}
    return Reply(status, json.dumps(body).encode(), {"X-Request-ID": request_id}, "application/problem+json")


def parameter_problem(name: str, value: Any, expected: str) -> Reply:
    """A 400 naming a query parameter, the value it had (cut at 60 characters) and what was expected."""
    detail = f"{name}={shortened(str(value), 60)!r}; expected {expected}"
    return problem_reply(400, "Invalid parameter", detail, new_request_id(), parameter=name, expected=expected)


def authorized(token: str | None, authorization: str | None) -> bool | None:
    """True for the right bearer token, False for a wrong one, None when none was sent (or none is set).

    Compared in constant time, so the answer's timing says nothing about how close a guess was.
    """
    if token is None:
        return True
    if not authorization:
        return None
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def unauthorized() -> Reply:
    reply = problem_reply(401, "Unauthorized", "a valid bearer token is required", new_request_id())
    return Reply(reply.status, reply.body, {**reply.headers, "WWW-Authenticate": "Bearer"}, reply.media_type)


def request_id_of(given: str | None) -> str:
    """The client's ``X-Request-ID`` when usable, a new id when none was sent; InputError (400) otherwise."""
    if given is None or given == "":
        return new_request_id()
    if not REQUEST_ID.match(given):
        raise InputError([Problem(f"X-Request-ID {given[:40]!r} is not usable", "1-128 letters, digits or . _ : -")], status=400)
    return given


def check_envelope(body: bytes | UnreadBody, content_type: str | None, max_body_bytes: int) -> bytes:
    """The body, once its media type (JSON, else 415) and size (at most ``max_body_bytes``, else 413) are acceptable."""
    if content_type and content_type not in _JSON_AS_SENT:
        media = content_type.split(";")[0].strip().lower()
        if media not in _JSON_TYPES and not media.endswith("+json"):
            raise InputError([Problem(f"Content-Type {media!r}", "Content-Type: application/json")], status=415)
    if isinstance(body, UnreadBody):
        size = f"{body.size} bytes (Content-Length)" if body.declared else f"more than {max_body_bytes} bytes"
    elif len(body) > max_body_bytes:
        size = f"{len(body)} bytes"
    else:
        return body
    raise InputError([Problem(f"the body has {size}", f"at most {max_body_bytes} bytes (max_body_bytes)")], status=413)


def prefers_html(accept: str | None) -> bool:
    """True when an ``Accept`` header ranks ``text/html`` above JSON (a browser's does; ``*/*`` does not)."""
    if not accept:
        return False
    quality: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        quality[media] = max(quality.get(media, 0.0), q if math.isfinite(q) else 0.0)
    html = quality.get("text/html", 0.0)
    wildcard = max(quality.get("application/*", 0.0), quality.get("*/*", 0.0))
    return html > 0 and html > quality.get("application/json", 0.0) and html >= wildcard


def parse_limit(text: str | None, default: int, most: int) -> int | None:
    """The ``limit`` query parameter: ``default`` when absent, None when it is not an integer from 1 to ``most``."""
    if text is None:
        return default
    count = int(text) if re.fullmatch(r"[0-9]{1,6}", text.strip()) else 0
    return count if 1 <= count <= most else None
