"""The request path of ``/predict``: parse -> validate -> predict -> serialize -> log.

:func:`predict` runs one request through the stages, timing each (``validate``, ``predict`` with the
user's own stages inside it, ``serialize``, ``log``), and always answers with a
:class:`~guarded_serving.http.Reply`: a bad request gets a 4xx naming the row and feature and is recorded
as ``rejected``; a model that fails gets a 500 and is recorded as an ``error`` of the stage it failed in.
:func:`predict_batch` runs several requests the same way with their model calls merged (adaptive batching,
see :mod:`guarded_serving.batching`): validation, rejection and logging stay per request.
:func:`give_up` records a call whose caller stopped waiting (BentoML's traffic timeout).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .batching import merge_inputs, row_groups, split_rows
from .calls import PredictCall
from .drift.window import Chunk
from .envelope import ROWS
from .environment import capture_warnings
from .errors import InputError, ModelError
from .http import REQUEST_ID, Reply, UnreadBody, check_envelope, problem_reply, request_id_of
from .ids import new_request_id
from .inputs import parse_batch
from .numericbody import owned_copy
from .redaction import WITHHELD, redacted_input_error
from .refusals import unseen_refusal
from .stages import BATCH_SIZE, StageClock, stage
from .store import RequestRecord
from .tabular import to_model_input
from .validation import parse_json, parse_table, rows_text

if TYPE_CHECKING:
    from .guard import GuardedModel
    from .monitor import Monitor

__all__ = ["give_up", "predict", "predict_batch"]


@dataclass(slots=True)
class _Accepted:
    """A request that passed validation, waiting for its model call."""

    request_id: str
    rows: list[list[Any]]  # Python rows, when the general path parsed the body (none from numericbody.py)
    count: int  # rows in the request
    model_input: Any
    window_inputs: Any
    inputs_json: str | None
    started: float
    clock: StageClock
    call: PredictCall | None


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
    clock = StageClock()
    clock.activate()
    try:
        accepted = _accept(guarded, monitor, body, content_type, request_id, call, clock)
        if isinstance(accepted, Reply):
            return accepted
        warnings: list[Any] = []
        try:
            with stage("predict"), capture_warnings() as warnings:
                result = guarded.call(accepted.model_input)
            answered = _serialize(guarded, accepted, result)
        except Exception as exc:  # the model's own failure: 5xx, recorded, never a crash
            return _failed(guarded, monitor, accepted, exc, warnings)
        return _answered(guarded, monitor, accepted, result, answered, warnings)
    finally:
        clock.deactivate()


def predict_batch(guarded: GuardedModel, requests: Sequence[tuple[Any, ...]]) -> list[Reply]:
    """Several requests (each :func:`predict`'s arguments after ``guarded``) with their model calls batched:
    each is validated on its own (a bad one is answered 4xx and never joins a call), the others' rows go
    to the model in calls of at most ``max_batch_size`` rows, and each is answered and logged on its own.
    A model that fails fails the requests of that call only. Stage ``predict`` is the call's duration, and
    ``batch_size`` the number of requests that shared it. Never raises: one Reply per request, in order."""
    monitor = guarded.start()
    replies: list[Reply | None] = [None] * len(requests)
    waiting: list[tuple[int, _Accepted]] = []
    for i, request in enumerate(requests):
        clock = StageClock()
        clock.activate()
        try:
            body, content_type, request_id, call = request
            accepted = _accept(guarded, monitor, body, content_type, request_id, call, clock)
        finally:
            clock.deactivate()
        if isinstance(accepted, Reply):
            replies[i] = accepted
        else:
            waiting.append((i, accepted))
    batching = guarded.batching
    max_rows = batching.max_batch_size if batching is not None else max(1, sum(a.count for _, a in waiting))
    for group in row_groups([a.count for _, a in waiting], max_rows):
        members = [waiting[k] for k in group]
        for (i, _), reply in zip(members, _run_batch(guarded, monitor, [a for _, a in members]), strict=True):
            replies[i] = reply
    return [r if r is not None else problem_reply(500, "Model error", "no answer", new_request_id()) for r in replies]


def _run_batch(guarded: GuardedModel, monitor: Monitor, members: list[_Accepted]) -> list[Reply]:
    """One model call for ``members``' merged rows, then each one answered (or failed) and logged."""
    batch_clock = StageClock()
    batch_clock.activate()
    warnings: list[Any] = []
    parts: list[Any] = []
    failure: Exception | None = None
    try:
        with stage("predict"), capture_warnings() as warnings:
            merged = merge_inputs([a.model_input for a in members], guarded.input_format)
            result = guarded.call(merged)
        parts = split_rows(result, [a.count for a in members])
    except Exception as exc:  # the model's own failure: every request of this call answered 500
        failure = exc
        if batch_clock.failed is None:
            batch_clock.failed = "predict"
    finally:
        batch_clock.deactivate()
    replies = []
    for accepted, part in zip(members, parts or [None] * len(members), strict=True):
        clock = accepted.clock
        for name, seconds in batch_clock.durations.items():
            clock.add(name, seconds)
        clock.failed = clock.failed or batch_clock.failed
        clock.batch_size = len(members)
        clock.activate()
        try:
            if failure is not None:
                replies.append(_failed(guarded, monitor, accepted, failure, warnings))
                continue
            try:
                answered = _serialize(guarded, accepted, part)
            except Exception as exc:
                replies.append(_failed(guarded, monitor, accepted, exc, warnings))
                continue
            replies.append(_answered(guarded, monitor, accepted, part, answered, warnings))
        finally:
            clock.deactivate()
    return replies


def _accept(
    guarded: GuardedModel,
    monitor: Monitor,
    body: bytes | UnreadBody,
    content_type: str | None,
    request_id: str | None,
    call: PredictCall | None,
    clock: StageClock,
) -> _Accepted | Reply:
    """Validate a request (``clock`` active): what its model call needs, or its 4xx (recorded as rejected)."""
    started = time.perf_counter()
    if call is not None:
        if call.claimed:
            return problem_reply(504, "Timeout", "the request was given up before it began", new_request_id())
        call.clock, call.began = clock, started
    rows: list[list[Any]] = []
    window_inputs: Any = None
    inputs_json: str | None = None
    try:
        with stage("validate"):
            request_id = request_id_of(request_id)
            if call is not None:
                call.request_id = request_id
            body = check_envelope(body, content_type, guarded.max_body_bytes)
            if guarded.kind is not None:  # a text, a tensor...: the kind parses it (guarded_serving/inputs/)
                batch = parse_batch(
                    guarded.kind,
                    guarded.envelope.rows(parse_json(body)),
                    guarded.schema.max_rows,
                    guarded.schema.allow_missing,
                    monitor.redact,
                )
                rows, model_input, window_inputs, inputs_json = batch.rows, batch.model_input, batch.matrix, batch.logged
                count = len(rows)
            else:
                rows, count, model_input, window_inputs, inputs_json = _tabular(guarded, body)
            if call is not None:
                call.rows = count
    except InputError as refused:
        exc = redacted_input_error(refused, monitor.redact)  # the client's answer is a sink too
        rid = request_id if isinstance(request_id, str) and REQUEST_ID.match(request_id) else new_request_id()
        wrong_types = tuple(dict.fromkeys(p.feature for p in exc.problems if p.feature and p.kind == "type"))
        refused_missing = tuple(dict.fromkeys(p.feature for p in exc.problems if p.feature and p.kind == "missing"))
        refused_range = tuple(dict.fromkeys(p.feature for p in exc.problems if p.feature and p.kind == "range"))
        _record(
            guarded,
            monitor,
            rid,
            "rejected",
            len(rows),
            started,
            clock,
            error=str(exc),
            problem_features=wrong_types,
            missing_features=refused_missing,
            range_features=refused_range,
            call=call,
        )
        return problem_reply(exc.status, "Invalid input", str(exc), rid, problems=[p.to_json() for p in exc.problems])
    except Exception as exc:  # a bug in reading the request: answered and recorded as the guard's error, never lost
        rid = request_id if isinstance(request_id, str) and REQUEST_ID.match(request_id) else new_request_id()
        message = WITHHELD if monitor.redact else str(exc)  # it may quote the input
        guarded.log.error("validation_error", request_id=rid, error=type(exc).__name__, message=message[:500])
        error = f"{type(exc).__name__}: {message}"[:2000]
        _record(guarded, monitor, rid, "error", len(rows), started, clock, error=error, call=call)
        detail = f"the guard failed in stage 'validate' with {type(exc).__name__} (a bug: please report it)"
        return problem_reply(500, "Internal error", detail, rid, error=type(exc).__name__, stage="validate")
    return _Accepted(request_id, rows, count, model_input, window_inputs, inputs_json, started, clock, call)


def _serialize(guarded: GuardedModel, accepted: _Accepted, result: Any) -> tuple[list[Any], bytes]:
    """The model's result for one request as JSON outputs and the answer's bytes (stage ``serialize``), in the
    shape of the guarded API's envelope."""
    with stage("serialize"):
        outputs, payload = guarded.envelope.serialize(result, accepted.request_id)
        rows = accepted.count
        if not isinstance(outputs, list) or len(outputs) != rows:
            got = f"{len(outputs)} results" if isinstance(outputs, list) else f"a {type(result).__name__}"
            raise ModelError(f"the predict function returned {got} for {rows} rows; expected one result per row", "ModelError")
        return outputs, payload


def _failed(guarded: GuardedModel, monitor: Monitor, accepted: _Accepted, exc: Exception, warnings: list[Any]) -> Reply:
    """A model that failed (or returned something unusable): a 500 naming the stage, recorded as an error."""
    clock, request_id = accepted.clock, accepted.request_id
    if guarded.kind is None and not isinstance(exc, ModelError):  # a category it never saw: the client's error
        names = monitor.reference.feature_names
        refused = unseen_refusal(accepted.rows, monitor.baseline, names, exc, monitor.redact)
        if refused is not None:
            guarded.log.info("model_refused_input", request_id=request_id, error=type(exc).__name__, stage=clock.failed)
            _record(
                guarded,
                monitor,
                request_id,
                "rejected",
                accepted.count,
                accepted.started,
                clock,
                error=str(refused),
                call=accepted.call,
            )
            problems = [p.to_json() for p in refused.problems]
            return problem_reply(422, "Invalid input", str(refused), request_id, problems=problems)
    error_class = exc.error_class if isinstance(exc, ModelError) else type(exc).__name__
    # The model's own message may quote its input: with a redacted feature, it is not kept.
    message = WITHHELD if monitor.redact and not isinstance(exc, ModelError) else str(exc)
    batch = clock.batch_size
    guarded.log.error(
        "model_error", request_id=request_id, error=error_class, message=message[:500], stage=clock.failed, batch_size=batch
    )
    _record(
        guarded,
        monitor,
        request_id,
        "error",
        accepted.count,
        accepted.started,
        clock,
        error=f"{error_class}: {message}"[:2000],
        warnings=warnings,
        call=accepted.call,
    )
    where = f" in stage {clock.failed!r}" if clock.failed else ""
    shared = f" (a call shared by a batch of {batch} requests)" if batch is not None else ""
    return problem_reply(
        500,
        "Model error",
        f"the model failed{where} with {error_class}{shared}",
        request_id,
        error=error_class,
        stage=clock.failed,
    )


def _answered(
    guarded: GuardedModel,
    monitor: Monitor,
    accepted: _Accepted,
    result: Any,
    answered: tuple[list[Any], bytes],
    warnings: list[Any],
) -> Reply:
    """A 200 with the predictions, the request logged."""
    outputs, payload = answered
    rows, inputs_json = accepted.rows, accepted.inputs_json
    _record(
        guarded,
        monitor,
        accepted.request_id,
        "ok",
        accepted.count,
        accepted.started,
        accepted.clock,
        # With the client's own text to log, the parsed rows need not wait in the store's buffer
        # (about 2x the memory of the text, as Python objects), unless redaction must edit them
        # (an input kind's text is its own, redacted already); on the numeric path there are none, and
        # redaction decodes the text it blanks.
        inputs=(rows or None) if inputs_json is None or (monitor.redact and guarded.kind is None) else None,
        outputs=outputs,
        warnings=warnings,
        window=monitor.encode(rows or accepted.window_inputs, outputs, input_matrix=accepted.window_inputs, output_array=result),
        inputs_json=inputs_json,
        call=accepted.call,
        outputs_json=guarded.envelope.outputs_text(payload),
    )
    headers = {"X-Request-ID": accepted.request_id}
    if accepted.clock.batch_size is not None:
        headers["X-Batch-Size"] = str(accepted.clock.batch_size)
    return Reply(200, payload, headers)


def _tabular(guarded: GuardedModel, body: bytes) -> tuple[list[list[Any]], int, Any, Any, str | None]:
    """A body of rows of scalars: the Python rows (none on the numeric path), their count, the model's input,
    the window's matrix and the logged text."""
    # A model taking an array needs no Python rows: numeric {"rows": ...} bodies go straight to a matrix (a
    # redacted feature is blanked in the logged text when it is readied for disk, see monitor/recording.py);
    # any other body, valid or not, takes the general path.
    if guarded.input_format == "array" and guarded.envelope is ROWS:
        numeric = guarded.numeric(body)
        if numeric is not None:
            return [], numeric.rows, owned_copy(numeric.matrix), numeric.matrix, numeric.text  # the model's own
    table = parse_table(guarded.envelope.rows(parse_json(body)), guarded.schema)
    rows = table.rows
    inputs_json = rows_text(body) if table.verbatim and table.matrix is not None else None
    if table.matrix is not None and guarded.input_format == "array":
        return rows, len(rows), table.matrix, table.matrix.copy(), inputs_json  # a copy: the model may change it
    model_input = to_model_input(rows, guarded.schema.names, guarded.schema.all_numeric, guarded.input_format)
    return rows, len(rows), model_input, table.matrix, inputs_json


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
    missing_features: tuple[str, ...] = (),
    range_features: tuple[str, ...] = (),
    window: Chunk | None = None,
    inputs_json: str | None = None,
    call: PredictCall | None = None,
    outputs_json: str | None = None,
) -> None:
    if call is not None and not call.claim():
        return  # the caller gave up on the request and recorded it (give_up)
    log_started = time.perf_counter()
    stages = {name: seconds * 1000.0 for name, seconds in clock.durations.items()}
    if clock.batch_size is not None:
        stages[BATCH_SIZE] = float(clock.batch_size)  # a count, not milliseconds (see stages.BATCH_SIZE)
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
        missing_features=missing_features,
        range_features=range_features,
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
