"""guard(): turn a predict function into a guarded service.

The framework-free part lives here: :class:`GuardedModel` validates the configuration once, then
handles a request (bytes in, bytes out) through the stages validate -> predict -> serialize -> log.
:mod:`guarded_serving.service` only adapts it to BentoML.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import inspect
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checks import PipelineThresholds
from .dashboard import render_dashboard
from .drift.window import Chunk
from .environment import capture_warnings
from .errors import ConfigurationError, InputError, ModelError, Problem, StoreError, UnknownRequestError
from .health import HealthReport, Status
from .jsontext import dump_bytes
from .logs import get_logger
from .monitor import DEFAULT_DB, Monitor, as_reference, new_request_id, to_jsonable_output
from .performance import model_classes
from .redaction import WITHHELD, redacted_input_error
from .reference import Reference, probability_columns, with_training_outputs
from .stages import StageClock, pipeline_steps, stage
from .store import DEFAULT_CAPACITY, DEFAULT_CAPACITY_BYTES, RequestRecord
from .tabular import INPUT_FORMATS, columns_from_data, to_model_input
from .validation import RowSchema, parse_json, parse_table, rows_text

__all__ = ["GuardedModel", "PredictCall", "Reply", "UnreadBody", "guard"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_JSON_TYPES = ("application/json", "text/json")
_FAIL_ON = {"warn": Status.WARN, "alert": Status.ALERT}
MEMORY = ":memory:"  # db=":memory:" keeps no log store
DASHBOARD_REFRESH = 30  # seconds between the dashboard's own reloads
DASHBOARD_HISTORY = 720  # snapshots the dashboard's timeline shows (12 hours at the default interval)
HISTORY_LIMIT = 10_000  # most snapshots one /health/model/history answer holds
_LATEST = 253402300799.0  # 9999-12-31T23:59:59Z, the latest time a `since` may name


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


_GUARD_STAGES = ("validate", "predict", "serialize")


class PredictCall:
    """One ``/predict`` call that its caller may give up on before it returns (BentoML's traffic timeout).

    Whichever comes first records the request, the call itself or :meth:`GuardedModel.give_up`; the other
    records nothing. A request is logged once, and a call given up before it began never reaches the model.
    """

    __slots__ = ("_claimed", "_lock", "began", "clock", "created", "request_id", "rows")

    def __init__(self, request_id: str | None = None) -> None:
        self._lock = threading.Lock()
        self._claimed = False
        self.created = time.perf_counter()
        self.began: float | None = None  # when handle_predict started on it
        self.clock: StageClock | None = None
        self.request_id = request_id
        self.rows = 0

    def claim(self) -> bool:
        """True for the first caller only: the one that records the request."""
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed

    @property
    def claimed(self) -> bool:
        with self._lock:
            return self._claimed

    def stage(self) -> tuple[str, float]:
        """The stage the call is in and for how long (s): ``queue`` until it began, then the first of the
        guard's own stages not finished (a user's stages run inside ``predict``)."""
        now = time.perf_counter()
        clock, began = self.clock, self.began
        if clock is None or began is None:
            return "queue", now - self.created
        done = dict(clock.durations)
        running = next((name for name in _GUARD_STAGES if name not in done), "log")
        return running, max(now - began - sum(done.get(name, 0.0) for name in _GUARD_STAGES), 0.0)


def _problem_reply(status: int, title: str, detail: str, request_id: str, **extra: Any) -> Reply:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "request_id": request_id, **extra}
    return Reply(status, json.dumps(body).encode(), {"X-Request-ID": request_id}, "application/problem+json")


def _dump(value: Any) -> bytes:
    return dump_bytes(value)  # a NaN/Infinity prediction is sent as null: JSON has no literal for it


_PREDICTIONS_AT = len(b'{"predictions":')


def _predictions_text(payload: bytes) -> str:
    """The predictions' JSON inside an answer (``_dump`` of ``{"predictions": ..., "request_id": ...}``),
    which is the text the store logs: written once for both. A request id has no quote or comma in it, so
    the last ``,"request_id":`` is the key's own."""
    return payload[_PREDICTIONS_AT : payload.rindex(b',"request_id":')].decode()


class GuardedModel:
    """A predict function bound to its reference and monitoring settings.

    Built once per process (at import time); :meth:`start` opens the store in each serving worker.
    The arguments here are the request path's; ``monitor_options`` (``version``, ``window``,
    ``redact``, ``max_rows``...) go to :class:`~guarded_serving.monitor.Monitor`, which checks them.
    """

    def __init__(
        self,
        predict: Callable[..., Any],
        *,
        reference: Any,
        name: str,
        db: str | os.PathLike[str] | None = None,
        max_request_rows: int = 1000,
        max_body_bytes: int = 10 * 1024 * 1024,
        allow_missing: bool = True,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str | int] | None = None,
        input_format: str | None = None,
        latency_budget_ms: float | None = None,
        auth_token: str | None = None,
        holdout: Any = None,
        **monitor_options: Any,
    ) -> None:
        if not callable(predict):
            raise ConfigurationError("predict", predict, "a callable taking the rows and returning one prediction per row")
        for arg, value in (("max_request_rows", max_request_rows), ("max_body_bytes", max_body_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(arg, value, "a positive integer")
        if not isinstance(allow_missing, bool):
            raise ConfigurationError("allow_missing", allow_missing, "True or False")
        if input_format is not None and input_format not in INPUT_FORMATS:
            raise ConfigurationError("input_format", input_format, f"one of {list(INPUT_FORMATS)}")
        if latency_budget_ms is not None and (
            isinstance(latency_budget_ms, bool) or not isinstance(latency_budget_ms, (int, float)) or latency_budget_ms <= 0
        ):
            raise ConfigurationError("latency_budget_ms", latency_budget_ms, "a positive number of milliseconds or None")
        token = auth_token if auth_token is not None else os.environ.get("GUARDED_SERVING_TOKEN") or None
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise ConfigurationError("auth_token", "<hidden>", "a string of at least 16 characters (or None)")
        self.auth_token = token
        self.reference: Reference = as_reference(reference, feature_names, categorical)
        self.input_format = input_format or self.reference.input_format
        if self.input_format == "dataframe":
            try:
                import pandas  # noqa: F401
            except ImportError:
                raise ConfigurationError("input_format", "dataframe", "pandas to be installed for DataFrame input") from None
        self.predict = predict
        self._call = pipeline_steps(predict) or predict
        self.reference = self._with_outputs(predict, reference, holdout, feature_names, categorical)
        if self.reference.performance is None and not self.reference.classes:
            # Labels sent to /feedback must be classes the model can return, known without labelled data.
            classes = model_classes(predict) or probability_columns(self.reference.outputs)
            self.reference = dataclasses.replace(self.reference, classes=classes)
        self.name = name
        self.version = monitor_options.get("version")
        # db=":memory:" keeps no log store: everything stays in this process's memory.
        self.db = db if db is not None else os.environ.get("GUARDED_SERVING_DB", DEFAULT_DB)
        self.max_body_bytes = max_body_bytes
        self.schema = RowSchema.from_reference(self.reference, allow_missing=allow_missing, max_rows=max_request_rows)
        # Everything else (version, window, store and privacy settings...) is the Monitor's to check.
        self._monitor_options: dict[str, Any] = {
            **monitor_options,
            "name": name,
            "db": None if str(self.db) == MEMORY else self.db,
            "thresholds": PipelineThresholds(latency_budget_ms=latency_budget_ms),
        }
        # Validate the monitor's settings now (guard() time), without opening anything.
        Monitor(self.reference, **self._monitor_options)
        self.monitor: Monitor | None = None
        self._log = get_logger().bind(model=name)

    def _with_outputs(
        self,
        predict: Callable[..., Any],
        data: Any,
        holdout: Any,
        feature_names: Sequence[str] | None,
        categorical: Sequence[str | int] | None,
    ) -> Reference:
        """The reference with the model's outputs (and, with labels, performance) profiled by calling it,
        shaped as at serving time: on ``holdout`` rows when given, else on (up to 5,000) training rows,
        marked as such so that the monitor adopts its output baseline from served traffic instead."""
        reference = self.reference
        given = isinstance(data, (Reference, str, os.PathLike))
        if holdout is not None:
            reference = reference.with_holdout(holdout, predict=predict, input_format=self.input_format)  # type: ignore[arg-type]
        elif not reference.outputs and not given:
            columns = columns_from_data(data, feature_names=feature_names, categorical=categorical)
            reference = with_training_outputs(reference, columns, predict, self.input_format)
        if not given:  # guard(reference=X_train): the inputs are the model's training rows
            reference = dataclasses.replace(reference, provenance=dataclasses.replace(reference.provenance, features="training"))
        return reference

    # -- lifecycle (once per serving worker) ------------------------------------------------
    def start(self, metrics: Any = None) -> Monitor:
        """The worker's monitor, started on first use; ``metrics`` is a Prometheus metrics factory
        (see :class:`~guarded_serving.monitor.Monitor`), used when this call starts it."""
        if self.monitor is None:
            self.monitor = Monitor(self.reference, **self._monitor_options, metrics=metrics).start()
        return self.monitor

    def close(self, timeout: float = 10.0) -> None:
        if self.monitor is not None:
            self.monitor.close(timeout)

    # -- requests ---------------------------------------------------------------------------
    def handle_predict(
        self,
        body: bytes | UnreadBody,
        content_type: str | None = None,
        request_id: str | None = None,
        call: PredictCall | None = None,
    ) -> Reply:
        """Validate, predict, serialize and log one request. Never raises: every outcome is a Reply.

        With a ``call``, the request is recorded only if the caller has not given up on it (see
        :meth:`give_up`), and not run at all if it gave up before this began."""
        monitor = self.start()
        started = time.perf_counter()
        clock = StageClock()
        if call is not None:
            if call.claimed:
                return _problem_reply(504, "Timeout", "the request was given up before it began", new_request_id())
            call.clock, call.began = clock, started
        clock.activate()
        rows: list[list[Any]] = []
        window_inputs: Any = None
        inputs_json: str | None = None
        result: Any = None
        warnings: list[Any] = []
        try:
            try:
                with stage("validate"):
                    request_id = self._request_id(request_id)
                    if call is not None:
                        call.request_id = request_id
                    body = self._check_envelope(body, content_type)
                    table = parse_table(parse_json(body), self.schema)
                    rows = table.rows
                    if call is not None:
                        call.rows = len(rows)
                    inputs_json = rows_text(body) if table.verbatim and table.matrix is not None else None
                    if table.matrix is not None and self.input_format == "array":
                        model_input = table.matrix
                        window_inputs = table.matrix.copy()  # the model may change its input in place
                    else:
                        model_input = to_model_input(rows, self.schema.names, self.schema.all_numeric, self.input_format)
                        window_inputs = table.matrix
            except InputError as refused:
                exc = redacted_input_error(refused, monitor.redact)  # the client's answer is a sink too
                rid = request_id if isinstance(request_id, str) and _REQUEST_ID.match(request_id) else new_request_id()
                wrong_types = tuple(dict.fromkeys(p.feature for p in exc.problems if p.feature and p.kind == "type"))
                self._record(
                    monitor, rid, "rejected", len(rows), started, clock, error=str(exc), problem_features=wrong_types, call=call
                )
                return _problem_reply(exc.status, "Invalid input", str(exc), rid, problems=[p.to_json() for p in exc.problems])
            try:
                with stage("predict"), capture_warnings() as warnings:
                    result = self._call(model_input)
                with stage("serialize"):
                    outputs = to_jsonable_output(result)
                    if not isinstance(outputs, list) or len(outputs) != len(rows):
                        got = f"{len(outputs)} results" if isinstance(outputs, list) else f"a {type(result).__name__}"
                        raise ModelError(
                            f"the predict function returned {got} for {len(rows)} rows; expected one result per row",
                            "ModelError",
                        )
                    payload = _dump({"predictions": outputs, "request_id": request_id})
            except Exception as exc:  # the model's own failure: 5xx, recorded, never a crash
                error_class = exc.error_class if isinstance(exc, ModelError) else type(exc).__name__
                # The model's own message may quote its input: with a redacted feature, it is not kept.
                message = WITHHELD if monitor.redact and not isinstance(exc, ModelError) else str(exc)
                self._log.error(
                    "model_error", request_id=request_id, error=error_class, message=message[:500], stage=clock.failed
                )
                self._record(
                    monitor,
                    request_id,
                    "error",
                    len(rows),
                    started,
                    clock,
                    error=f"{error_class}: {message}"[:2000],
                    warnings=warnings,
                    call=call,
                )
                where = f" in stage {clock.failed!r}" if clock.failed else ""
                return _problem_reply(
                    500,
                    "Model error",
                    f"the model failed{where} with {error_class}",
                    request_id,
                    error=error_class,
                    stage=clock.failed,
                )
            self._record(
                monitor,
                request_id,
                "ok",
                len(rows),
                started,
                clock,
                # With the client's own text to log, the parsed rows need not wait in the store's buffer
                # (about 2x the memory of the text, as Python objects), unless redaction must edit them.
                inputs=rows if inputs_json is None or monitor.redact else None,
                outputs=outputs,
                warnings=warnings,
                window=monitor.encode(rows, outputs, input_matrix=window_inputs, output_array=result),
                inputs_json=inputs_json,
                call=call,
                outputs_json=_predictions_text(payload),
            )
            return Reply(200, payload, {"X-Request-ID": request_id})
        finally:
            clock.deactivate()

    def _request_id(self, given: str | None) -> str:
        if given is None or given == "":
            return new_request_id()
        if not _REQUEST_ID.match(given):
            raise InputError(
                [Problem(f"X-Request-ID {given[:40]!r} is not usable", "1-128 letters, digits or . _ : -")], status=400
            )
        return given

    def _check_envelope(self, body: bytes | UnreadBody, content_type: str | None) -> bytes:
        """The body, once its media type and size are acceptable."""
        if content_type:
            media = content_type.split(";")[0].strip().lower()
            if media not in _JSON_TYPES and not media.endswith("+json"):
                raise InputError([Problem(f"Content-Type {media!r}", "Content-Type: application/json")], status=415)
        if isinstance(body, UnreadBody):
            size = f"{body.size} bytes (Content-Length)" if body.declared else f"more than {self.max_body_bytes} bytes"
        elif len(body) > self.max_body_bytes:
            size = f"{len(body)} bytes"
        else:
            return body
        raise InputError([Problem(f"the body has {size}", f"at most {self.max_body_bytes} bytes (max_body_bytes)")], status=413)

    def _record(
        self,
        monitor: Monitor,
        request_id: str,
        status: Any,
        rows: int,
        started: float,
        clock: StageClock,
        *,
        error: str | None = None,
        inputs: list[list[Any]] | None = None,
        outputs: list[Any] | None = None,
        warnings: list[Any] | None = None,
        problem_features: tuple[str, ...] = (),
        window: Chunk | None = None,
        inputs_json: str | None = None,
        call: PredictCall | None = None,
        outputs_json: str | None = None,
    ) -> None:
        if call is not None and not call.claim():
            return  # the caller gave up on the request and recorded it (give_up)
        log_started = time.perf_counter()
        stages = {name: seconds * 1000.0 for name, seconds in clock.durations.items()}
        record = RequestRecord(
            request_id=request_id,
            ts=time.time(),
            model=self.name,
            version=self.version,
            status=status,
            rows=rows,
            latency_ms=(log_started - started) * 1000.0,
            stages=stages,
            failed_stage=clock.failed,
            error=error,
            inputs=inputs,
            outputs=outputs,
            warnings=tuple(warnings or ()),
            problem_features=problem_features,
            window=window,
            inputs_json=inputs_json,
            outputs_json=outputs_json,
        )
        monitor.record(record)
        # The writer serialises `stages` a flush interval later, so the enqueue time lands in the row too.
        stages["log"] = (time.perf_counter() - log_started) * 1000.0

    def give_up(self, call: PredictCall) -> None:
        """Record a call that its caller gave up on (BentoML's traffic timeout answered it 504) as an error of
        the stage it was in, unless the call recorded itself first. Its late outcome is not recorded."""
        if not call.claim():
            return
        monitor = self.start()
        stage_name, in_stage = call.stage()
        waited = time.perf_counter() - call.created
        stages = {**(dict(call.clock.durations) if call.clock is not None else {}), stage_name: in_stage}
        request_id = call.request_id if call.request_id and _REQUEST_ID.match(call.request_id) else new_request_id()
        error = f"TimeoutError: no answer after {waited:.1f} s (the traffic timeout), stuck in stage {stage_name!r}"
        self._log.error("request_timeout", request_id=request_id, stage=stage_name, after_s=round(waited, 3))
        monitor.record(
            RequestRecord(
                request_id=request_id,
                ts=time.time(),
                model=self.name,
                version=self.version,
                status="error",
                rows=call.rows,
                latency_ms=waited * 1000.0,
                stages={name: seconds * 1000.0 for name, seconds in stages.items()},
                failed_stage=stage_name,
                error=error,
            )
        )

    def handle_feedback(
        self, body: bytes | UnreadBody, content_type: str | None = None, authorization: str | None = None
    ) -> Reply:
        """Take labels for earlier predictions: ``{"request_id": ..., "labels": [...]}`` (one label per
        row) or ``{"items": [{"request_id": ..., "row": ..., "label": ...}, ...]}``. Never raises."""
        if self.authorized(authorization) is not True:
            return self._unauthorized()
        monitor = self.start()
        rid = new_request_id()
        try:
            document = parse_json(self._check_envelope(body, content_type))
            if isinstance(document, dict) and set(document) == {"request_id", "labels"}:
                request_id, labels = document["request_id"], document["labels"]
                if not isinstance(request_id, str) or not isinstance(labels, list):
                    raise InputError([Problem("request_id or labels has the wrong type", "a string and a list of labels")])
                result = monitor.feedback(_usable_id(request_id), labels)
            elif isinstance(document, dict) and set(document) == {"items"} and isinstance(document["items"], list):
                items = [(_usable_id(rid), row, label) for rid, row, label in _feedback_items(document["items"])]
                result = monitor.feedback_items(items)
            else:
                raise InputError(
                    [Problem("the body has neither form", '{"request_id": "...", "labels": [...]} or {"items": [...]}')]
                )
        except StoreError as exc:  # labels are acknowledged only once on disk: ask the client to retry
            self._log.error("feedback_store_error", error=str(exc)[:300])
            return _problem_reply(503, "Store unavailable", f"the labels were not stored: {exc}", rid)
        except UnknownRequestError as exc:
            self._log.info("feedback_rejected", unknown=list(exc.unknown[:20]))
            return _problem_reply(404, "Unknown request", str(exc), rid, unknown_request_ids=list(exc.unknown))
        except InputError as exc:
            self._log.info("feedback_rejected", problem=str(exc)[:300])
            return _problem_reply(exc.status, "Invalid feedback", str(exc), rid, problems=[p.to_json() for p in exc.problems])
        body_out = {"accepted": result.accepted, "new": result.new, "replaced": result.replaced}
        return Reply(200, _dump(body_out), {"X-Request-ID": rid})

    def authorized(self, authorization: str | None) -> bool | None:
        """True for the right bearer token, False for a wrong one, None when none was sent (or none is set).

        Compared in constant time, so the answer's timing says nothing about how close a guess was.
        """
        if self.auth_token is None:
            return True
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self.auth_token.encode())

    def _unauthorized(self) -> Reply:
        reply = _problem_reply(401, "Unauthorized", "a valid bearer token is required", new_request_id())
        return Reply(reply.status, reply.body, {**reply.headers, "WWW-Authenticate": "Bearer"}, reply.media_type)

    def health_reply(
        self,
        fail_on: str | None = None,
        detail: bool = True,
        authorization: str | None = None,
        format: str | None = None,
        accept: str | None = None,
    ) -> Reply:
        """The ``/health/model`` answer: 200 always, or 503 at or above ``fail_on`` (warn | alert).

        JSON, or the HTML dashboard for ``format="html"`` or an ``Accept`` header that prefers
        ``text/html`` to JSON (a browser's); ``format="json"`` forces JSON. With an auth token set, a
        request without it gets only the overall status; a wrong token a 401.
        """
        allowed = self.authorized(authorization)
        if allowed is False:
            return self._unauthorized()
        detail = detail and allowed is True
        if fail_on is not None and fail_on not in _FAIL_ON:
            return _parameter_problem("fail_on", fail_on, "'warn' or 'alert'")
        if format is not None and format not in ("json", "html"):
            return _parameter_problem("format", format, "'json' or 'html'")
        html = format == "html" or (format is None and prefers_html(accept))
        monitor = self.start()
        report: HealthReport = monitor.health()
        status = 200
        if fail_on is not None and report.status.rank >= _FAIL_ON[fail_on].rank:
            status = 503
        if not html:
            return Reply(status, _dump(report.to_json(detail=detail)))
        page = render_dashboard(
            report,
            monitor.histograms() if detail else (),
            monitor.history(limit=DASHBOARD_HISTORY) if detail else (),
            refresh_seconds=DASHBOARD_REFRESH,
            detail=detail,
        )
        headers = {"Cache-Control": "no-store", "Vary": "Accept, Authorization"}
        return Reply(status, page.encode(), headers, "text/html; charset=utf-8")

    def history_reply(self, since: str | None = None, limit: str | None = None, authorization: str | None = None) -> Reply:
        """The ``/health/model/history`` answer: the newest ``limit`` health snapshots at or after ``since``
        (ISO 8601 time or epoch seconds), oldest first. Without the token (when one is set) each snapshot
        holds only its time and status; a wrong token gets a 401. A bad parameter gets a 400 naming it."""
        allowed = self.authorized(authorization)
        if allowed is False:
            return self._unauthorized()
        try:
            since_ts = parse_since(since)
        except ValueError:
            return _parameter_problem("since", since, "an ISO 8601 time (2026-01-31T12:00:00Z) or epoch seconds (1769860800)")
        count = DASHBOARD_HISTORY
        if limit is not None:
            count = int(limit) if re.fullmatch(r"[0-9]{1,6}", limit.strip()) else 0
            if not 1 <= count <= HISTORY_LIMIT:
                return _parameter_problem("limit", limit, f"an integer from 1 to {HISTORY_LIMIT}")
        monitor = self.start()
        snapshots = monitor.history(since=since_ts, limit=count)
        body = {
            "model": {"name": self.name, "version": self.version},
            "interval_s": monitor.history_interval,
            "count": len(snapshots),
            "snapshots": [s.to_json(detail=allowed is True) for s in snapshots],
        }
        return Reply(200, _dump(body))


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


def parse_since(text: str | None) -> float | None:
    """``since`` as epoch seconds: ISO 8601 (a time without a zone is UTC) or a number; ValueError otherwise."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if re.search(r"\d:\d\d(:\d\d(\.\d+)?)? \d\d(:?\d\d)?$", text):  # an unencoded "+01:00" arrives as " 01:00"
        text = text[: text.rindex(" ")] + "+" + text[text.rindex(" ") + 1 :]
    try:
        value = float(text)
    except ValueError:
        moment = dt.datetime.fromisoformat(text)  # raises ValueError on anything else
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        value = moment.timestamp()
    if not math.isfinite(value) or not 0 <= value <= _LATEST:
        raise ValueError(text)
    return value


def _parameter_problem(name: str, value: Any, expected: str) -> Reply:
    shown = value if len(str(value)) <= 60 else str(value)[:57] + "..."
    detail = f"{name}={shown!r}; expected {expected}"
    return _problem_reply(400, "Invalid parameter", detail, new_request_id(), parameter=name, expected=expected)


def _usable_id(request_id: str) -> str:
    """A request id that can be looked up: lone surrogates (valid JSON escapes, not valid text) are not."""
    try:
        request_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError([Problem(f"request_id {request_id!r} is not valid text", "the id a /predict answer carried")]) from None
    return request_id


def _feedback_items(items: list[Any]) -> list[tuple[str, int, Any]]:
    out = []
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"request_id", "row", "label"}:
            problems.append(
                Problem(f"item {i} is {json.dumps(item)[:60]}", 'an object {"request_id": ..., "row": ..., "label": ...}')
            )
        elif not isinstance(item["request_id"], str):
            problems.append(Problem(f"item {i}: request_id {item['request_id']!r}", "a string"))
        else:
            out.append((item["request_id"], item["row"], item["label"]))
    if problems:
        raise InputError(problems[:20])
    return out


def _service_name(func: Callable[..., Any], name: str | None) -> str:
    if name is None:
        name = getattr(func, "__name__", None) or "model"
        if name in ("predict", "predict_proba", "decision_function", "<lambda>"):
            owner = getattr(func, "__self__", None)
            name = type(owner).__name__ if owner is not None else "model"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9_.\-]{0,61}[A-Za-z0-9])?", name):
        raise ConfigurationError(
            "name", name, "1-63 letters, digits, '_', '-' or '.', starting and ending with a letter or digit"
        )
    return name.lower()


def _caller_module() -> str:
    frame = inspect.currentframe()
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("guarded_serving"):
            return str(module)
        frame = frame.f_back
    return "__main__"


def guard(
    func: Callable[..., Any] | None = None,
    /,
    *,
    reference: Any,
    name: str | None = None,
    version: str | None = None,
    db: str | os.PathLike[str] | None = None,
    window: int = 1000,
    max_request_rows: int = 1000,
    max_body_bytes: int = 10 * 1024 * 1024,
    allow_missing: bool = True,
    feature_names: Sequence[str] | None = None,
    categorical: Sequence[str | int] | None = None,
    input_format: str | None = None,
    flush_interval: float = 0.2,
    store_capacity: int = DEFAULT_CAPACITY,
    store_capacity_bytes: int = DEFAULT_CAPACITY_BYTES,
    latency_budget_ms: float | None = None,
    methods: dict[str, str] | None = None,
    auth_token: str | None = None,
    redact: Sequence[str] = (),
    log_inputs: bool = True,
    sample_rate: float = 1.0,
    max_rows: int | None = None,
    max_age: float | None = None,
    overflow: str = "drop",
    report_values: bool = False,
    history_interval: float = 60.0,
    holdout: Any = None,
    **service_options: Any,
) -> Any:
    """Wrap a predict function into a BentoML service that logs, times and answers ``/health/model``.

    ``svc = guard(model.predict_proba, reference=X_train, name="churn")``, or as a decorator
    ``@guard(reference=X_train, name="churn")`` over a function taking the rows. Other keyword
    arguments (``workers=2``, ``traffic={"timeout": 10}`` ...) are BentoML service options.

    ``holdout=(X_val, y_val)`` (or ``X_val``): rows the model was not fitted on, on which its outputs
    and performance are profiled. Without it, the outputs are profiled on the training rows and the
    monitor judges prediction drift (and, with labels, concept drift) against early served traffic.
    """
    module = _caller_module()

    def wrap(predict: Callable[..., Any]) -> Any:
        from .service import build_service  # the only place BentoML enters

        guarded = GuardedModel(
            predict,
            reference=reference,
            name=_service_name(predict, name),
            version=version,
            db=db,
            window=window,
            max_request_rows=max_request_rows,
            max_body_bytes=max_body_bytes,
            allow_missing=allow_missing,
            feature_names=feature_names,
            categorical=categorical,
            input_format=input_format,
            flush_interval=flush_interval,
            store_capacity=store_capacity,
            store_capacity_bytes=store_capacity_bytes,
            latency_budget_ms=latency_budget_ms,
            methods=methods,
            auth_token=auth_token,
            redact=redact,
            log_inputs=log_inputs,
            sample_rate=sample_rate,
            max_rows=max_rows,
            max_age=max_age,
            overflow=overflow,
            report_values=report_values,
            history_interval=history_interval,
            holdout=holdout,
        )
        return build_service(guarded, service_options, module)

    if func is None:
        return wrap
    return wrap(func)
