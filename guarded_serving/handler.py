"""The request path of ``/predict``: parse -> validate -> predict -> serialize -> log.

:func:`predict` runs one request through the stages, timing each (``validate``, ``predict`` with the
user's own stages inside it, ``serialize``, ``log``), and always answers with a
:class:`~guarded_serving.http.Reply`: a bad request gets a 4xx naming the row and feature and is recorded
as ``rejected``; a model that fails gets a 500 and is recorded as an ``error`` of the stage it failed in.
:func:`give_up` records a call whose caller stopped waiting (BentoML's traffic timeout).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .drift.window import Chunk
from .environment import capture_warnings
from .errors import InputError, ModelError
from .http import REQUEST_ID, Reply, UnreadBody, check_envelope, problem_reply, request_id_of
from .ids import new_request_id
from .jsontext import dump_bytes, to_jsonable_output
from .redaction import WITHHELD, redacted_input_error
from .stages import StageClock, stage
from .store import RequestRecord
from .tabular import to_model_input
from .validation import parse_json, parse_table, rows_text

if TYPE_CHECKING:
    from .guard import GuardedModel
    from .monitor import Monitor

__all__ = ["PredictCall", "give_up", "predict"]

_GUARD_STAGES = ("validate", "predict", "serialize")


class PredictCall:
    """One ``/predict`` call that its caller may give up on before it returns (BentoML's traffic timeout).

    Whichever comes first records the request, the call itself or :func:`give_up`; the other
    records nothing. A request is logged once, and a call given up before it began never reaches the model.
    """

    __slots__ = ("_claimed", "_lock", "began", "clock", "created", "request_id", "rows")

    def __init__(self, request_id: str | None = None) -> None:
        self._lock = threading.Lock()
        self._claimed = False
        self.created = time.perf_counter()
        self.began: float | None = None  # when predict started on it
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


_PREDICTIONS_AT = len(b'{"predictions":')


def _predictions_text(payload: bytes) -> str:
    """The predictions' JSON inside an answer (``{"predictions": ..., "request_id": ...}``), which is the
    text the store logs: written once for both. A request id has no quote or comma in it, so the last
    ``,"request_id":`` is the key's own."""
    return payload[_PREDICTIONS_AT : payload.rindex(b',"request_id":')].decode()


def predict(
    guarded: GuardedModel,
    body: bytes | UnreadBody,
    content_type: str | None = None,
    request_id: str | None = None,
    call: PredictCall | None = None,
) -> Reply:
    """Validate, predict, serialize and log one request. Never raises: every outcome is a Reply.

    With a ``call``, the request is recorded only if the caller has not given up on it (see
    :func:`give_up`), and not run at all if it gave up before this began."""
    monitor = guarded.start()
    started = time.perf_counter()
    clock = StageClock()
    if call is not None:
        if call.claimed:
            return problem_reply(504, "Timeout", "the request was given up before it began", new_request_id())
        call.clock, call.began = clock, started
    clock.activate()
    rows: list[list[Any]] = []  # Python rows, when the general path parsed the body
    count = 0  # rows in the request
    window_inputs: Any = None
    inputs_json: str | None = None
    result: Any = None
    warnings: list[Any] = []
    try:
        try:
            with stage("validate"):
                request_id = request_id_of(request_id)
                if call is not None:
                    call.request_id = request_id
                body = check_envelope(body, content_type, guarded.max_body_bytes)
                # A model taking an array needs no Python rows: numeric bodies go straight to a matrix (with no
                # redaction to apply to the logged rows); any other body, valid or not, takes the general path.
                numeric = guarded.numeric(body) if guarded.input_format == "array" and not monitor.redact else None
                if numeric is not None:
                    count, inputs_json = numeric.rows, numeric.text
                    model_input = numeric.matrix.copy()  # the model may change its input in place
                    window_inputs = numeric.matrix
                else:
                    table = parse_table(parse_json(body), guarded.schema)
                    rows = table.rows
                    count = len(rows)
                    inputs_json = rows_text(body) if table.verbatim and table.matrix is not None else None
                    if table.matrix is not None and guarded.input_format == "array":
                        model_input = table.matrix
                        window_inputs = table.matrix.copy()  # the model may change its input in place
                    else:
                        model_input = to_model_input(rows, guarded.schema.names, guarded.schema.all_numeric, guarded.input_format)
                        window_inputs = table.matrix
                if call is not None:
                    call.rows = count
        except InputError as refused:
            exc = redacted_input_error(refused, monitor.redact)  # the client's answer is a sink too
            rid = request_id if isinstance(request_id, str) and REQUEST_ID.match(request_id) else new_request_id()
            wrong_types = tuple(dict.fromkeys(p.feature for p in exc.problems if p.feature and p.kind == "type"))
            _record(
                guarded,
                monitor,
                rid,
                "rejected",
                count,
                started,
                clock,
                error=str(exc),
                problem_features=wrong_types,
                call=call,
            )
            return problem_reply(exc.status, "Invalid input", str(exc), rid, problems=[p.to_json() for p in exc.problems])
        try:
            with stage("predict"), capture_warnings() as warnings:
                result = guarded.call(model_input)
            with stage("serialize"):
                outputs = to_jsonable_output(result)
                if not isinstance(outputs, list) or len(outputs) != count:
                    got = f"{len(outputs)} results" if isinstance(outputs, list) else f"a {type(result).__name__}"
                    raise ModelError(
                        f"the predict function returned {got} for {count} rows; expected one result per row",
                        "ModelError",
                    )
                payload = dump_bytes({"predictions": outputs, "request_id": request_id})
        except Exception as exc:  # the model's own failure: 5xx, recorded, never a crash
            error_class = exc.error_class if isinstance(exc, ModelError) else type(exc).__name__
            # The model's own message may quote its input: with a redacted feature, it is not kept.
            message = WITHHELD if monitor.redact and not isinstance(exc, ModelError) else str(exc)
            guarded.log.error("model_error", request_id=request_id, error=error_class, message=message[:500], stage=clock.failed)
            _record(
                guarded,
                monitor,
                request_id,
                "error",
                count,
                started,
                clock,
                error=f"{error_class}: {message}"[:2000],
                warnings=warnings,
                call=call,
            )
            where = f" in stage {clock.failed!r}" if clock.failed else ""
            return problem_reply(
                500,
                "Model error",
                f"the model failed{where} with {error_class}",
                request_id,
                error=error_class,
                stage=clock.failed,
            )
        _record(
            guarded,
            monitor,
            request_id,
            "ok",
            count,
            started,
            clock,
            # With the client's own text to log, the parsed rows need not wait in the store's buffer
            # (about 2x the memory of the text, as Python objects), unless redaction must edit them.
            inputs=rows if inputs_json is None or monitor.redact else None,
            outputs=outputs,
            warnings=warnings,
            window=monitor.encode(rows or window_inputs, outputs, input_matrix=window_inputs, output_array=result),
            inputs_json=inputs_json,
            call=call,
            outputs_json=_predictions_text(payload),
        )
        return Reply(200, payload, {"X-Request-ID": request_id})
    finally:
        clock.deactivate()


def _record(
    guarded: GuardedModel,
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
        model=guarded.name,
        version=guarded.version,
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


def give_up(guarded: GuardedModel, call: PredictCall) -> None:
    """Record a call that its caller gave up on (BentoML's traffic timeout answered it 504) as an error of
    the stage it was in, unless the call recorded itself first. Its late outcome is not recorded."""
    if not call.claim():
        return
    monitor = guarded.start()
    stage_name, in_stage = call.stage()
    waited = time.perf_counter() - call.created
    stages = {**(dict(call.clock.durations) if call.clock is not None else {}), stage_name: in_stage}
    request_id = call.request_id if call.request_id and REQUEST_ID.match(call.request_id) else new_request_id()
    error = f"TimeoutError: no answer after {waited:.1f} s (the traffic timeout), stuck in stage {stage_name!r}"
    guarded.log.error("request_timeout", request_id=request_id, stage=stage_name, after_s=round(waited, 3))
    monitor.record(
        RequestRecord(
            request_id=request_id,
            ts=time.time(),
            model=guarded.name,
            version=guarded.version,
            status="error",
            rows=call.rows,
            latency_ms=waited * 1000.0,
            stages={name: seconds * 1000.0 for name, seconds in stages.items()},
            failed_stage=stage_name,
            error=error,
        )
    )
