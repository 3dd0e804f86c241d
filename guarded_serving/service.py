"""The BentoML adapter: the only module that imports bentoml.

It builds, at run time, a BentoML service class around a :class:`~guarded_serving.guard.GuardedModel`:

* ``POST /predict`` is a BentoML API whose body the guard parses itself, so that every bad request
  gets a 4xx naming the row and feature (BentoML's own parsing answers some of them with a 500);
* ``GET /health/model`` (JSON, or the HTML dashboard) and ``GET /health/model/history`` are a small
  Starlette app mounted with BentoML's ASGI mounting;
* each worker opens the store in ``__init__`` and flushes it in its shutdown hook, with a bounded wait;
* each worker exports the guard's Prometheus metrics (:mod:`guarded_serving.metrics`) through
  prometheus_client, which BentoML runs in multiprocess mode, so BentoML's own ``/metrics`` serves
  them summed (counters, histograms) or merged (gauges) over every worker.

BentoML's ``/healthz``, ``/livez``, ``/readyz``, ``/metrics`` and ``/docs.json`` keep working.
"""

from __future__ import annotations

import gc
import time
import typing as t
from typing import Any

import anyio
import anyio.to_thread
import bentoml
import pydantic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import ConfigurationError
from .guard import GuardedModel, Reply
from .logs import configure_logging

__all__ = ["build_service"]

SHUTDOWN_TIMEOUT = 10.0
# A request the guard has recently been answering faster than this (model included) is handled on the
# event loop itself: handing it to a worker thread and back costs about as much CPU as the guard's own
# work (bench/overhead.py). Slower ones, and any request while another is in the thread, go to the
# thread, so the loop is never blocked for long and the model is never called from two threads at once.
INLINE_BELOW_S = 0.002
_BODY_KEY = "guarded_serving.body"


class _RawBody:
    """An input spec whose body BentoML reads but does not parse: the guard parses it (see
    GuardedModel.handle_predict), so that every bad body gets the guard's 4xx. The raw bytes go in
    the ASGI scope, which the API method's context request shares."""

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> Any:
        request.scope[_BODY_KEY] = await request.body()
        # One placeholder instance per class: pydantic's model_construct() inspects the field
        # defaults' signatures on every call, a measurable share of a small request's CPU.
        placeholder = cls.__dict__.get("_placeholder")
        if placeholder is None:
            placeholder = cls.model_construct()  # type: ignore[attr-defined]
            type.__setattr__(cls, "_placeholder", placeholder)
        return placeholder


Scalar = float | str | bool | None


class PredictInput(_RawBody, bentoml.IODescriptor):  # type: ignore[misc]
    """``{"rows": [...]}``: rows as lists in the reference's feature order, or objects by feature name."""

    rows: list[list[Scalar] | dict[str, Scalar]] = pydantic.Field(
        default_factory=list,
        description="Rows to predict: lists in feature order, or objects keyed by feature name. A single row may be sent bare.",
    )


class FeedbackItem(pydantic.BaseModel):
    request_id: str
    row: int
    label: Scalar


class FeedbackInput(_RawBody, bentoml.IODescriptor):  # type: ignore[misc]
    """Labels for earlier predictions: ``request_id`` + ``labels`` (one per row), or ``items``."""

    request_id: str | None = pydantic.Field(default=None, description="The id a /predict answer carried.")
    labels: list[Scalar] | None = pydantic.Field(default=None, description="One label per row of that request.")
    items: list[FeedbackItem] | None = pydantic.Field(default=None, description="Labels one row at a time.")


class FeedbackOutput(bentoml.IODescriptor):  # type: ignore[misc]
    accepted: int
    new: int
    replaced: int


class PredictOutput(bentoml.IODescriptor):  # type: ignore[misc]
    predictions: list[t.Any] = pydantic.Field(description="One prediction per row, in order.")
    request_id: str = pydantic.Field(description="The id under which the request and its rows were logged.")


def _response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type)


def _prometheus_client() -> Any:
    """prometheus_client, imported inside the worker: BentoML has set ``PROMETHEUS_MULTIPROC_DIR`` by
    then, so the guard's metrics land in the files its own ``/metrics`` merges across workers."""
    import prometheus_client

    return prometheus_client


def _service_config_keys() -> frozenset[str]:
    from _bentoml_sdk.service.config import ServiceConfig

    return frozenset(t.get_type_hints(ServiceConfig))


_SERVICE_ARGS = frozenset({"image", "description", "envs", "labels", "path_prefix"})
# The guard records every request (with its stage timings) in the store, so BentoML's access log and
# its OpenTelemetry spans on the guarded routes would only repeat it, at about half a small request's
# CPU (bench/overhead.py). Passing logging= or tracing= to guard() replaces these defaults.
_QUIET_DEFAULTS: dict[str, Any] = {
    "logging": {"access": {"enabled": False}},
    "tracing": {"excluded_urls": ["/predict", "/feedback", "/health/model"]},
}


def build_service(guarded: GuardedModel, options: dict[str, Any], module: str) -> Any:
    """A BentoML service serving ``guarded`` (created in ``module``, for ``bentoml.serve(svc)``)."""
    known = _service_config_keys() | _SERVICE_ARGS
    for key in options:
        if key not in known:
            raise ConfigurationError(key, options[key], f"a guard() argument or a BentoML service option ({sorted(known)})")
    threads = options.get("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigurationError("threads", threads, "a positive integer")
    limiter: list[anyio.CapacityLimiter] = []
    recent = [1.0]  # a moving average of recent request durations (s); the first ones go to the thread

    def timed(func: t.Callable[..., Reply], *args: Any) -> Reply:
        started = time.perf_counter()
        try:
            return func(*args)
        finally:
            recent[0] += 0.1 * (time.perf_counter() - started - recent[0])

    async def run_limited(func: t.Callable[..., Reply], *args: Any) -> Reply:
        if not limiter:
            limiter.append(anyio.CapacityLimiter(threads))
        lim = limiter[0]
        if threads == 1 and recent[0] < INLINE_BELOW_S:
            try:
                lim.acquire_nowait()
            except anyio.WouldBlock:
                pass
            else:
                try:
                    return timed(func, *args)
                finally:
                    lim.release()
        return await anyio.to_thread.run_sync(timed, func, *args, limiter=lim)

    async def health(request: Request) -> Response:
        instance = bentoml.get_current_service()
        query, headers = request.query_params, request.headers
        reply = await anyio.to_thread.run_sync(
            instance.guarded.health_reply,
            query.get("fail_on"),
            True,
            headers.get("authorization"),
            query.get("format"),
            headers.get("accept"),
        )
        return _response(reply)

    async def history(request: Request) -> Response:
        instance = bentoml.get_current_service()
        query = request.query_params
        reply = await anyio.to_thread.run_sync(
            instance.guarded.history_reply, query.get("since"), query.get("limit"), request.headers.get("authorization")
        )
        return _response(reply)

    health_app = Starlette(routes=[Route("/model", health, methods=["GET"]), Route("/model/history", history, methods=["GET"])])

    class GuardedService:
        def __init__(self) -> None:
            configure_logging()
            self.guarded = guarded
            guarded.start(metrics=_prometheus_client())
            # Everything loaded so far (BentoML, the model, the reference) lives as long as the worker:
            # moving it out of the collector's sight keeps full collections (and p99) short.
            gc.collect()
            gc.freeze()

        @bentoml.api(route="/predict", input_spec=PredictInput, output_spec=PredictOutput)  # type: ignore[untyped-decorator]
        async def predict(self, ctx: bentoml.Context, **_: Any) -> Response:
            request = ctx.request
            body = request.scope.get(_BODY_KEY, b"")
            reply = await run_limited(
                self.guarded.handle_predict, body, request.headers.get("content-type"), request.headers.get("x-request-id")
            )
            ctx.response.status_code = reply.status  # BentoML copies the context's status onto the response
            return _response(reply)

        @bentoml.api(route="/feedback", input_spec=FeedbackInput, output_spec=FeedbackOutput)  # type: ignore[untyped-decorator]
        async def feedback(self, ctx: bentoml.Context, **_: Any) -> Response:
            request = ctx.request
            body = request.scope.get(_BODY_KEY, b"")
            headers = request.headers
            reply = await anyio.to_thread.run_sync(
                self.guarded.handle_feedback, body, headers.get("content-type"), headers.get("authorization")
            )
            ctx.response.status_code = reply.status
            return _response(reply)

        @bentoml.on_shutdown  # type: ignore[untyped-decorator]
        def flush_store(self) -> None:
            self.guarded.close(SHUTDOWN_TIMEOUT)

    GuardedService.__name__ = GuardedService.__qualname__ = f"Guarded_{guarded.name.replace('-', '_').replace('.', '_')}"
    GuardedService.__module__ = module
    service_kwargs = {k: v for k, v in options.items() if k in _SERVICE_ARGS}
    config = {**_QUIET_DEFAULTS, **{k: v for k, v in options.items() if k not in _SERVICE_ARGS and k != "threads"}}
    svc = bentoml.service(GuardedService, name=guarded.name, **service_kwargs, **config)
    svc.mount_asgi_app(health_app, path="/health", name="guarded_serving_health")
    svc._caller_module = module  # so that bentoml.serve(svc) finds the module-level name
    return svc
