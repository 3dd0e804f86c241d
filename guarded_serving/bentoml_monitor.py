"""A ``bentoml.monitor`` backend: services that already log with ``bentoml.monitor`` get the guard's checks.

Chosen by configuration alone (the service's ``monitoring`` option, or ``bentoml_configuration.yaml``)::

    @bentoml.service(monitoring={
        "enabled": True,
        "type": "guarded_serving.bentoml_monitor.GuardedMonitor",
        "options": {"reference": "reference.json", "db": "guarded_serving.db"},
    })
    class Iris: ...

and one line to answer ``GET /health/model`` and ``/health/model/history``: ``mount_health(Iris, "iris")``,
naming the ``bentoml.monitor("iris")`` whose health it reports. Each ``bentoml.monitor`` name is one model
(named so in the store and reports), fed by :class:`~guarded_serving.feed.MonitorFeed`: the request path
only queues the record; labels come from a ``target`` column; the record is keyed by BentoML's request id
(the ``X-BentoML-Request-ID`` an answer carries).

``options``: ``reference`` (a saved :class:`~guarded_serving.Reference`'s path, required), ``db``, ``auth_token``
and guard()'s monitor keywords (``window``, ``history_interval``, ``redact``, ``metrics_labels`` ...).
BentoML's own default options for its file monitor (``log_path``, ``log_config_file``) are ignored.
"""

from __future__ import annotations

import atexit
import collections
import threading
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from bentoml._internal.monitoring.base import MonitorBase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import endpoints
from .errors import ConfigurationError, GuardedServingError
from .feed import MonitorFeed
from .http import Reply, problem_reply
from .ids import new_request_id
from .logs import configure_logging, get_logger

__all__ = ["GuardedMonitor", "feed_for", "mount_health"]

TYPE = "guarded_serving.bentoml_monitor.GuardedMonitor"
_BENTOML_DEFAULTS = frozenset({"log_path", "log_config_file"})  # BentoML's default monitor's options, merged into ours
_FEEDS: dict[str, MonitorFeed] = {}
_LOCK = threading.Lock()


class GuardedMonitor(MonitorBase[Any]):
    """The monitoring class BentoML loads from ``monitoring.type`` (see the module docstring).

    BentoML sends a backend the columns' roles once, from the first record; a column first logged later
    (a ``target`` only some requests carry) is learnt here from its :meth:`log`. Nothing here raises into
    the user's API: a record that does not fit is logged by the feed."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name)
        self._columns: dict[str, dict[str, str]] = {}
        self.feed: MonitorFeed | None = None
        try:
            self.feed = feed_for(name, options)
        except GuardedServingError as exc:  # the service answers on; /health/model names the problem
            get_logger().error("monitor_unavailable", monitor=name, error=str(exc)[:500])

    def log(self, data: Any, name: str, role: str, data_type: str) -> None:
        if name not in self._columns and self.feed is not None:
            self._columns = {**self._columns, name: {"name": name, "role": role, "type": data_type}}
            self.feed.schema(self._columns)
        super().log(data, name, role, data_type)

    def export_schema(self, columns_schema: dict[str, dict[str, str]]) -> None:
        pass  # learnt column by column in log()

    def export_data(self, datas: dict[str, collections.deque[Any]]) -> None:
        if self.feed is not None:
            self.feed.put(datas, _request_id())


def feed_for(name: str, options: dict[str, Any] | None = None) -> MonitorFeed:
    """The feed of ``bentoml.monitor(name)`` in this worker, made on first use from ``options`` (by default,
    the service's configured monitoring options) and started, with the guard's Prometheus metrics."""
    with _LOCK:
        feed = _FEEDS.get(name)
        if feed is None:
            configure_logging()
            given = dict(options if options is not None else _configured_options())
            reference = given.pop("reference", None)
            if reference is None:
                raise ConfigurationError("monitoring options reference", None, "the path of a saved guarded_serving Reference")
            keywords = {k: v for k, v in given.items() if k not in _BENTOML_DEFAULTS}
            keywords.setdefault("name", name)
            try:
                feed = MonitorFeed(reference, **keywords)
            except TypeError as exc:  # an option MonitorFeed does not take
                expected = f"reference, db and guard()'s monitor keywords ({exc})"
                raise ConfigurationError("monitoring options", sorted(keywords), expected) from None
            feed.start(metrics=_prometheus_client())
            atexit.register(feed.close)
            _FEEDS[name] = feed
        return feed


def mount_health(service: Any, name: str, path: str = "/health") -> Any:
    """Answer ``GET {path}/model`` and ``{path}/model/history`` on ``service`` (a ``@bentoml.service`` class)
    with the health of ``bentoml.monitor(name)``'s records; returns the service."""

    async def health(request: Request) -> Response:
        query, headers = request.query_params, request.headers

        def answer(feed: MonitorFeed) -> Reply:
            feed.drain()  # the records queued so far are judged
            return endpoints.health(
                feed, query.get("fail_on"), True, headers.get("authorization"), query.get("format"), headers.get("accept")
            )

        return _response(await anyio.to_thread.run_sync(_answer, name, answer))

    async def history(request: Request) -> Response:
        query, authorization = request.query_params, request.headers.get("authorization")

        def answer(feed: MonitorFeed) -> Reply:
            return endpoints.history(feed, query.get("since"), query.get("limit"), authorization)

        return _response(await anyio.to_thread.run_sync(_answer, name, answer))

    app = Starlette(routes=[Route("/model", health, methods=["GET"]), Route("/model/history", history, methods=["GET"])])
    service.mount_asgi_app(app, path=path, name=f"guarded_serving_monitor_{name}")
    return service


def _answer(name: str, answer: Callable[[MonitorFeed], Reply]) -> Reply:
    """``answer`` for the feed of ``name``, or a 500 naming why there is none (a missing reference ...)."""
    try:
        feed = feed_for(name)
    except GuardedServingError as exc:
        return problem_reply(500, "Monitor unavailable", f"bentoml.monitor({name!r}): {exc}", new_request_id())
    return answer(feed)


def _configured_options() -> dict[str, Any]:
    """The options of the service's ``monitoring`` configuration, when its type is this backend."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    monitoring = BentoMLContainer.config.monitoring.get()
    if not monitoring.get("enabled") or monitoring.get("type") != TYPE:
        raise ConfigurationError("monitoring", monitoring, f"enabled: true and type: {TYPE} in the service's configuration")
    return dict(monitoring.get("options") or {})


def _request_id() -> str | None:
    """BentoML's id of the current request, as its ``X-BentoML-Request-ID`` header shows it (None outside one)."""
    from bentoml._internal.context import trace_context

    request_id = trace_context.request_id
    return format(request_id, "016x") if request_id else None


def _response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type)


def _prometheus_client() -> Any:
    """prometheus_client, imported inside the worker, where BentoML has set up its multiprocess mode."""
    import prometheus_client

    return prometheus_client
