"""What every guarded class-based service gains, once: ``/feedback``, ``/health/model`` and
``/health/model/history`` (mounted with BentoML's ASGI mounting), the ``__init__`` that starts each worker's
guards after the service's own, and the shutdown hook that flushes their stores.

With several guarded APIs, ``?api=<name>`` picks one; ``/health/model`` without it answers each API's report and
the worst status, and ``/feedback`` gives the labels to the API whose store knows the request ids.
"""

from __future__ import annotations

import asyncio
import typing as t
from typing import Any

import bentoml
from pydantic_core import from_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..guard import GuardedModel
from ..health import Status, worst
from ..http import Reply, parameter_problem
from ..jsontext import dump_bytes
from ..logs import configure_logging
from ..service import _BODY_KEY, SHUTDOWN_TIMEOUT, FeedbackInput, FeedbackOutput, _ModelThread, _prometheus_client
from .typed import GUARDS, RUNNER, raw_spec, response

if t.TYPE_CHECKING:
    from .api import ApiSpec

__all__ = ["equip"]


def equip(owner: type, specs: dict[str, ApiSpec]) -> None:
    """Add to the class what every guarded service has, once."""
    user_init = owner.__dict__.get("__init__")

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        if user_init is not None:
            user_init(self, *args, **kwargs)
        else:
            super(owner, self).__init__(*args, **kwargs)  # type: ignore[arg-type]
        configure_logging()
        guards = {api: spec.build(owner, self) for api, spec in specs.items()}
        setattr(self, GUARDS, guards)
        setattr(self, RUNNER, _ModelThread())
        metrics = _prometheus_client()
        for guarded in guards.values():
            guarded.start(metrics=metrics)

    init.__name__, init.__qualname__ = "__init__", f"{owner.__qualname__}.__init__"
    owner.__init__ = init  # type: ignore[misc]

    async def feedback(self: Any, ctx: bentoml.Context, **_: Any) -> Response:
        request = ctx.request
        body = request.scope.get(_BODY_KEY, b"")
        headers = request.headers
        reply = await asyncio.to_thread(
            _feedback, getattr(self, GUARDS), body, headers.get("content-type"), headers.get("authorization")
        )
        ctx.response.status_code = reply.status
        return response(reply)

    # client.feedback(...) as with guard(), unless the service has a feedback of its own
    name = "guarded_feedback" if hasattr(owner, "feedback") else "feedback"
    feedback.__name__ = feedback.__qualname__ = name
    feedback.__doc__ = "Labels for earlier predictions: request_id (an answer's X-Request-ID header) + labels, or items."
    api = bentoml.api(route="/feedback", input_spec=raw_spec(FeedbackInput), output_spec=FeedbackOutput)(feedback)
    setattr(owner, name, api)

    def guarded_flush(self: Any) -> None:
        for guarded in getattr(self, GUARDS, {}).values():
            guarded.close(SHUTDOWN_TIMEOUT)

    owner.guarded_flush = bentoml.on_shutdown(guarded_flush)  # type: ignore[attr-defined]
    mounted = list(owner.__dict__.get("__bentoml_mounted_apps__", []))
    mounted.append((_health_app(), "/health", "guarded_serving_health"))
    owner.__bentoml_mounted_apps__ = mounted  # type: ignore[attr-defined]


def _feedback(guards: dict[str, GuardedModel], body: Any, content_type: str | None, authorization: str | None) -> Reply:
    """The labels go to the API whose store knows the request ids (a 404 from each: the last one's answer)."""
    reply: Reply | None = None
    for guarded in guards.values():
        reply = guarded.handle_feedback(body, content_type, authorization)
        if reply.status != 404:
            return reply
    return t.cast(Reply, reply)


def _chosen(guards: dict[str, GuardedModel], api: str | None) -> GuardedModel | Reply | None:
    """The API ``?api=`` names (the only one when there is one), None for all of them, or a 400 naming it."""
    if api is None:
        return next(iter(guards.values())) if len(guards) == 1 else None
    if api not in guards:
        return parameter_problem("api", api, f"one of {sorted(guards)}")
    return guards[api]


def _health_app() -> Starlette:
    async def health(request: Request) -> Response:
        guards = getattr(bentoml.get_current_service(), GUARDS)
        query, headers = request.query_params, request.headers
        args = (query.get("fail_on"), True, headers.get("authorization"), query.get("format"), headers.get("accept"))
        chosen = _chosen(guards, query.get("api"))
        if isinstance(chosen, Reply):
            return response(chosen)
        if chosen is not None:
            return response(await asyncio.to_thread(chosen.health_reply, *args))
        return response(await asyncio.to_thread(_every_health, guards, args))

    async def history(request: Request) -> Response:
        guards = getattr(bentoml.get_current_service(), GUARDS)
        query = request.query_params
        chosen = _chosen(guards, query.get("api"))
        if chosen is None:
            chosen = parameter_problem("api", None, f"one of {sorted(guards)}")
        if isinstance(chosen, Reply):
            return response(chosen)
        reply = await asyncio.to_thread(
            chosen.history_reply, query.get("since"), query.get("limit"), request.headers.get("authorization")
        )
        return response(reply)

    return Starlette(routes=[Route("/model", health, methods=["GET"]), Route("/model/history", history, methods=["GET"])])


def _every_health(guards: dict[str, GuardedModel], args: tuple[Any, ...]) -> Reply:
    """Each API's JSON report, and the worst status of them; 503 when any is (``fail_on``); a 4xx as is."""
    fail_on, detail, authorization, _, _ = args
    reports: dict[str, Any] = {}
    status = 200
    for api, guarded in guards.items():
        reply = guarded.health_reply(fail_on, detail, authorization, "json", None)
        if reply.status not in (200, 503):
            return reply
        status = max(status, reply.status)
        reports[api] = from_json(reply.body)
    overall = worst(Status.parse(r["status"]) for r in reports.values())
    return Reply(status, dump_bytes({"status": overall.value, "apis": reports}))
