"""The BentoML adapter of guard(): with bentoml_monitor.py, the only modules that import bentoml.

It builds, at run time, a BentoML service class around a :class:`~guarded_serving.guard.GuardedModel`:

* ``POST /predict`` is a BentoML API whose body the guard parses itself, so that every bad request
  gets a 4xx naming the row and feature (BentoML's own parsing answers some of them with a 500); its
  requests are answered by :class:`_DirectPredict`, inside BentoML's own middleware (see there);
* ``GET /health/model`` (JSON, or the HTML dashboard) and ``GET /health/model/history`` are a small
  Starlette app mounted with BentoML's ASGI mounting;
* each worker opens the store in ``__init__`` and flushes it in its shutdown hook, with a bounded wait;
* the model never runs on the event loop, so a model that hangs (or a request waiting for room in a full
  store buffer) never delays ``/healthz``, ``/readyz`` or ``/health/model``, and BentoML's
  ``traffic={"timeout": ...}`` answers such a request, which is recorded as an error of the stage it was in;
* with ``batching=``, concurrent ``/predict`` requests are handed to one :class:`~guarded_serving.batching.Batcher`
  thread instead, which validates each, merges the valid ones' rows into one model call and answers each;
* a body larger than ``max_body_bytes`` is refused (413) from its ``Content-Length``, or once that many
  bytes were read, never read whole;
* each worker exports the guard's Prometheus metrics (:mod:`guarded_serving.metrics`) through
  prometheus_client, which BentoML runs in multiprocess mode, so BentoML's own ``/metrics`` serves
  them summed (counters, histograms) or merged (gauges) over every worker.

BentoML's ``/healthz``, ``/livez``, ``/readyz``, ``/metrics`` and ``/docs.json`` keep working.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
import typing as t
from typing import Any

import anyio
import anyio.to_thread
import bentoml
import pydantic
from pydantic_core import core_schema
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .batching import Batcher
from .calls import PredictCall
from .errors import ConfigurationError
from .http import Reply, UnreadBody
from .jobs import Job, awaited
from .logs import configure_logging

if t.TYPE_CHECKING:
    from .guard import GuardedModel

__all__ = ["build_service"]

SHUTDOWN_TIMEOUT = 10.0
# With threads=1, every request runs in one model thread, never on the event loop: a model that hangs
# there would freeze /healthz with it. Handing a request over through anyio's thread pool and back adds
# 60-65 µs of CPU (bench/handoff.py), about half the guard's own work on a single-row request, which is why
# quick requests used to run on the loop itself. So a request the guard has recently been answering faster
# than INLINE_BELOW_S (model included), when the model thread is idle, is handed to it and waited for on a
# plain lock, the loop blocked for at most INLINE_WAIT_S: 23-26 µs. A request still running then, like
# every other, is awaited without blocking the loop. Over HTTP (wrk, 16 connections) this kept the
# requests/s and CPU per request of running on the loop, within this machine's noise. Only with one worker:
# with two on two cores, a loop blocked on the lock waits for the model thread to be scheduled among the other
# worker's threads, and awaiting did better (logistic regression, 64-row requests, tuned BentoML = 1: waiting
# 1.04x and 1.00x, awaiting 1.22x and 1.10x; and 1.04x against 1.21x in a run of three variants side by side).
INLINE_BELOW_S = 0.002
INLINE_WAIT_S = 0.02
_BODY_KEY = "guarded_serving.body"


class _ModelThread:
    """The one thread that runs a worker's requests in turn (threads=1), started on first use.

    Jobs are submitted from the event loop's thread only; ``submitted`` is written there and ``completed``
    in the model thread only, so neither needs a lock."""

    def __init__(self, inline: bool = True) -> None:
        self.inline = inline  # fast requests waited for on a lock (see INLINE_BELOW_S); False: always awaited
        self._jobs: queue.SimpleQueue[Job[Reply]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.submitted = 0
        self.completed = 0
        self.recent = 1.0  # a moving average of recent request durations (s): the first ones are awaited

    def submit(self, func: t.Callable[..., Reply], *args: Any) -> Job[Reply]:
        job = Job(args, func)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="guarded-serving-model", daemon=True)
            self._thread.start()
        self.submitted += 1
        self._jobs.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            started = time.perf_counter()
            try:
                job.result = job.func(*job.args)  # type: ignore[misc]  # submit() gives every job its func
            except BaseException as exc:  # handed back to the awaiting request
                job.error = exc
            self.recent += 0.1 * (time.perf_counter() - started - self.recent)
            self.completed += 1  # before the job is seen finished: the next request finds the thread idle
            job.finish()

    async def call(self, func: t.Callable[..., Reply], *args: Any) -> Reply:
        fast = self.inline and self.submitted == self.completed and self.recent < INLINE_BELOW_S
        job = self.submit(func, *args)
        if fast and job.finished.acquire(timeout=INLINE_WAIT_S):
            return job.outcome()
        return await awaited(job)  # cancelled by BentoML's traffic timeout: the job runs on, its outcome unused


def _body_limit() -> int:
    return int(bentoml.get_current_service().guarded.max_body_bytes)


class _RawBody:
    """An input spec whose body BentoML reads but does not parse: the guard parses it (see
    GuardedModel.handle_predict), so that every bad body gets the guard's 4xx. The raw bytes go in
    the ASGI scope, which the API method's context request shares."""

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> Any:
        request.scope[_BODY_KEY] = await _read_body(request, _body_limit())
        # One placeholder instance per class: pydantic's model_construct() inspects the field
        # defaults' signatures on every call, a measurable share of a small request's CPU.
        placeholder = cls.__dict__.get("_placeholder")
        if placeholder is None:
            placeholder = cls.model_construct()  # type: ignore[attr-defined]
            type.__setattr__(cls, "_placeholder", placeholder)
        return placeholder


async def _read_body(request: Request, limit: int) -> bytes | UnreadBody:
    """The body, or its size when over ``limit``: judged from ``Content-Length`` before reading anything, and
    read in the chunks the server receives, stopping once past the limit (a chunked upload names no size)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return UnreadBody(int(declared), declared=True)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return UnreadBody(size, declared=False)
        chunks.append(chunk)
    return b"".join(chunks)


Scalar = float | str | bool | None


class _AsGiven:
    """A field BentoML's clients send as given. Their JSON encoder follows the service's ``/schema.json``: under a
    list-of-lists schema it turned a row object into the list of its keys (and an int64 label made it fail). Declared
    as a numpy tensor of Python objects, a value is sent as ``np.array(value, dtype=object).tolist()``: lists, row
    objects, numpy arrays and DataFrames alike become plain JSON in the order given. OpenAPI shows ``openapi``."""

    def __init__(self, openapi: dict[str, Any]) -> None:
        self.openapi = openapi

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.any_schema()  # the guard parses the body itself (see _RawBody)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        if handler.mode == "validation":  # /schema.json, which the clients read
            return {"type": "tensor", "format": "numpy-array", "dtype": "object_"}
        return dict(self.openapi)


_ROW = {"anyOf": [{"type": "array", "items": {}}, {"type": "object", "additionalProperties": True}]}


class PredictInput(_RawBody, bentoml.IODescriptor):  # type: ignore[misc]
    """``{"rows": [...]}``: rows as lists in the reference's feature order, or objects by feature name."""

    rows: t.Annotated[list[list[Scalar] | dict[str, Scalar]], _AsGiven({"type": "array", "items": _ROW})] = pydantic.Field(
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
    labels: t.Annotated[list[Scalar] | None, _AsGiven({"type": "array", "items": {}})] = pydantic.Field(
        default=None, description="One label per row of that request."
    )
    items: list[FeedbackItem] | None = pydantic.Field(default=None, description="Labels one row at a time.")


class FeedbackOutput(bentoml.IODescriptor):  # type: ignore[misc]
    accepted: int
    new: int
    replaced: int


class PredictOutput(bentoml.IODescriptor):  # type: ignore[misc]
    predictions: list[t.Any] = pydantic.Field(description="One prediction per row, in order.")
    request_id: str = pydantic.Field(description="The id under which the request and its rows were logged.")


_Answer = t.Callable[[bytes | UnreadBody, Any], t.Awaitable[Reply]]  # a /predict body and headers -> its answer


class _DirectPredict:
    """The ASGI middleware that answers ``POST /predict`` itself, inside BentoML's own middleware.

    BentoML's API dispatch behind it costs a small request more than the guard's whole work: per request it
    rebinds the API method (``inspect.signature``), builds the request context, resolves the
    ``Server`` header through its dependency injector and copies the context onto the answer (py-spy, one-row
    requests: about a third of the worker's event-loop time). The guard reads and parses the body itself
    anyway, so this middleware hands it straight to the same ``predict`` the API method calls. Everything
    BentoML wraps around an app still runs (it is added with ``add_asgi_middleware``, so inside the request
    metrics, tracing, ``traffic`` timeout and concurrency middleware), and the API stays declared: OpenAPI,
    ``/schema.json`` and BentoML's clients see no difference. It steps aside (BentoML answers, as before) when
    something else would run between it and BentoML's API: CORS (``http={"cors": ...}``) or a middleware
    added after ``guard()``; and it is not added when ``tracing=`` is given, so that BentoML's trace headers
    come back on every answer."""

    def __init__(self, app: Any, path: str, limit: int, answer: _Answer, name: str) -> None:
        self.app = app
        self.path = path
        self.limit = limit  # max_body_bytes
        self.answer = answer
        self.server = f"BentoML Service/{name}"  # the header BentoML's dispatch adds
        self.direct = type(app).__name__ == "ContextMiddleware" and type(app).__module__.startswith("_bentoml_impl")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.direct or scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            body = await _read_body(request, self.limit)
        except ClientDisconnect:
            # Nobody is left to read it, but BentoML's timeout middleware waits for an answer to be sent:
            # 499 (nginx's "client closed request") is what BentoML's request metrics then count.
            response = Response(status_code=499)
        else:
            response = _response(await self.answer(body, request.headers))
        response.headers["server"] = self.server
        await response(scope, receive, send)


def _predict_path(prefix: str) -> str:
    """The path BentoML serves the predict API on: ``/predict`` under the service's ``path_prefix``."""
    return f"/{prefix.strip('/')}/predict" if prefix.strip("/") else "/predict"


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
    if guarded.batching is not None and threads != 1:
        raise ConfigurationError("threads", threads, "1 with batching= (a batch runs in the one model thread)")
    limiter: list[anyio.CapacityLimiter] = []
    model_thread = _ModelThread(inline=options.get("workers", 1) == 1)
    batcher = Batcher(guarded.handle_predict_batch, guarded.batching) if guarded.batching is not None else None

    async def predict_reply(*args: Any) -> Reply:
        """A /predict request's answer: batched with others' (see guarded_serving.batching), or run alone."""
        if batcher is None:
            return await run_model(guarded.handle_predict, *args)
        return await batcher.call(*args)  # cancelled by BentoML's traffic timeout: PredictCall records it

    async def run_model(func: t.Callable[..., Reply], *args: Any) -> Reply:
        """Run a request off the event loop: in the model thread, or with threads>1 in anyio's pool."""
        if threads == 1:
            return await model_thread.call(func, *args)
        if not limiter:
            limiter.append(anyio.CapacityLimiter(threads))
        return await anyio.to_thread.run_sync(func, *args, limiter=limiter[0], abandon_on_cancel=True)

    async def predict_answer(body: bytes | UnreadBody, headers: Any) -> Reply:
        """A /predict request's answer, from its body and headers (both routes to it: see _DirectPredict)."""
        call = PredictCall(headers.get("x-request-id"))
        try:
            return await predict_reply(body, headers.get("content-type"), call.request_id, call)
        except asyncio.CancelledError:  # BentoML's traffic timeout answered 504: record it (off the loop)
            asyncio.get_running_loop().run_in_executor(None, guarded.give_up, call)
            raise

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
            reply = await predict_answer(request.scope.get(_BODY_KEY, b""), request.headers)
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

    GuardedService.guarded = guarded  # the service's model before any worker starts: guarded_serving.testing uses it
    GuardedService.__name__ = GuardedService.__qualname__ = f"Guarded_{guarded.name.replace('-', '_').replace('.', '_')}"
    GuardedService.__module__ = module
    service_kwargs = {k: v for k, v in options.items() if k in _SERVICE_ARGS}
    config = {**_QUIET_DEFAULTS, **{k: v for k, v in options.items() if k not in _SERVICE_ARGS and k != "threads"}}
    svc = bentoml.service(GuardedService, name=guarded.name, **service_kwargs, **config)
    if "tracing" not in options:
        path = _predict_path(options.get("path_prefix", ""))
        svc.add_asgi_middleware(_DirectPredict, path=path, limit=guarded.max_body_bytes, answer=predict_answer, name=guarded.name)
    svc.mount_asgi_app(health_app, path="/health", name="guarded_serving_health")
    svc._caller_module = module  # so that bentoml.serve(svc) finds the module-level name
    return svc
