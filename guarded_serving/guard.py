"""guard(): turn a predict function into a guarded service.

The request goes top-down through these modules:

    guard.py     guard() and GuardedModel: keywords -> Options (once), the reference, one Monitor per worker
    handler.py   /predict: parse -> validate -> predict -> serialize -> log (predict_batch: model calls shared)
    batching.py  with batching=, the Batcher whose one thread runs concurrent requests' model calls together
    endpoints.py /feedback, /health/model (JSON or the dashboard), /health/model/history
    http.py      replies, problem+json, the bearer token, content negotiation, query parameters
    service.py   the BentoML adapter (with bentoml_monitor.py, the only bentoml imports), imported by guard()
    monitor/     the framework-free core every request is recorded in and health is judged by
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Unpack

from . import endpoints, handler, healthjson
from .calls import PredictCall
from .envelope import ROWS, Envelope
from .errors import ConfigurationError
from .http import Reply, UnreadBody, authorized
from .inputs import InputKind, kind_for, kind_of_reference, kind_reference
from .inputs.mixed import MixedKind
from .logs import get_logger
from .missing import fields_taking_missing, missing_taken
from .monitor import Monitor, as_reference
from .numericbody import NumericDecoder
from .options import GuardKeywords, Options, served_options
from .performance import model_classes
from .reference import Reference, probability_columns, with_training_outputs
from .stages import pipeline_steps
from .store import DEFAULT_CAPACITY, DEFAULT_CAPACITY_BYTES
from .tabular import columns_from_data, dense
from .validation import RowSchema

__all__ = ["GuardedModel", "PredictCall", "Reply", "UnreadBody", "guard", "guard_options"]


def guard_options(
    *, db: str | os.PathLike[str] | None = None, auth_token: str | None = None, **keywords: Unpack[GuardKeywords]
) -> Options:
    """guard()'s keywords as Options, checked once: ``db`` defaults to ``$GUARDED_SERVING_DB`` (else
    ``guarded_serving.db``; ``":memory:"`` keeps no store) and ``auth_token`` to ``$GUARDED_SERVING_TOKEN``."""
    return served_options(db=db, auth_token=auth_token, **keywords)


class GuardedModel:
    """A predict function bound to its reference and options: the framework-free service.

    Built once per process (at import time) from :class:`~guarded_serving.options.Options` (guard() makes
    them once; the keyword form here, ``GuardedModel(predict, reference=X, name="m", db=":memory:")``, makes
    them the same way); :meth:`start` starts the worker's :class:`Monitor`. A request is handled by
    :mod:`guarded_serving.handler` (``/predict``) and :mod:`guarded_serving.endpoints` (the others).
    """

    def __init__(
        self,
        predict: Callable[..., Any],
        *,
        reference: Any,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str | int] | None = None,
        holdout: Any = None,
        options: Options | None = None,
        envelope: Envelope = ROWS,
        db: str | os.PathLike[str] | None = None,
        auth_token: str | None = None,
        **keywords: Unpack[GuardKeywords],
    ) -> None:
        if not callable(predict):
            raise ConfigurationError("predict", predict, "a callable taking the rows and returning one prediction per row")
        if options is None:
            options = guard_options(db=db, auth_token=auth_token, **keywords)
        elif keywords or db is not None or auth_token is not None:
            raise ConfigurationError("options", sorted(keywords), "either options= or keywords, not both")
        self.options = options
        self.envelope = envelope  # where a /predict body holds its rows, and how the answer is written
        request = options.request
        # A text, rows with a free-text field...: parsed, described and logged by an input kind (inputs/)
        if isinstance(reference, (str, os.PathLike)):
            reference = Reference.load(reference)
        reference = dense(reference, "reference")  # a scipy.sparse matrix: profiled, and the model called, as dense rows
        self.kind: InputKind | None = _input_kind(reference, request.input_format, feature_names, categorical)
        if self.kind is not None and not isinstance(reference, Reference):
            reference = kind_reference(self.kind, reference, predict, holdout)
        self.reference: Reference = as_reference(reference, feature_names, categorical, request.input_format)
        self.input_format = self.kind.name if self.kind is not None else request.input_format or self.reference.input_format
        if self.input_format == "dataframe":
            try:
                import pandas  # noqa: F401
            except ImportError:
                raise ConfigurationError("input_format", "dataframe", "pandas to be installed for DataFrame input") from None
        self.predict = predict
        self.call = pipeline_steps(predict) or predict
        self.reference = self._with_outputs(predict, reference, holdout, feature_names, categorical)
        if self.reference.performance is None and not self.reference.classes:
            # Labels sent to /feedback must be classes the model can return, known without labelled data.
            classes = model_classes(predict) or probability_columns(self.reference.outputs)
            self.reference = dataclasses.replace(self.reference, classes=classes)
        options.check_reference(self.reference)  # the names redact= and methods= give, at guard() time
        self.name = options.monitor.name
        self.version = options.monitor.version
        self.db = options.db
        self.auth_token = request.auth_token
        self.max_body_bytes = request.max_body_bytes
        self.batching = request.batching
        # A null where the model cannot take one is refused before the model (guarded_serving/missing.py).
        asked = self.kind is None and request.allow_missing is None
        if isinstance(self.kind, MixedKind) and request.allow_missing is None:
            self.kind = self.kind.with_missing(fields_taking_missing(predict, self.reference, self.kind))
        self.schema = RowSchema.from_reference(
            self.reference,
            allow_missing=request.allow_missing is not False,
            max_rows=request.max_request_rows,
            takes_missing=missing_taken(predict, self.reference, self.input_format) if asked else (),
        )
        self.numeric = NumericDecoder(self.schema)  # the fast path of numeric bodies (see handler.py)
        self.monitor: Monitor | None = None
        self.log = get_logger().bind(model=self.name)

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
        if self.kind is not None:  # kind_reference() profiled the outputs (on holdout= when given)
            return reference
        if holdout is not None:
            fitted = None if given else data  # the training rows: the model is surer of them than of held-out rows
            reference = reference.with_holdout(holdout, predict=predict, input_format=self.input_format, fitted=fitted)  # type: ignore[arg-type]
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
            self.monitor = Monitor.of(self.reference, self.options, metrics=metrics).start()
            # the health answer's serializers, built beside the calibrations rather than in the first answer
            threading.Thread(target=healthjson.prepare, name="guarded-serving-health-json", daemon=True).start()
        return self.monitor

    def close(self, timeout: float = 10.0) -> None:
        if self.monitor is not None:
            self.monitor.close(timeout)

    # -- requests (see handler.py and endpoints.py) -----------------------------------------
    def handle_predict(
        self,
        body: bytes | UnreadBody,
        content_type: str | None = None,
        request_id: str | None = None,
        call: PredictCall | None = None,
    ) -> Reply:
        """Validate, predict, serialize and log one request. Never raises: every outcome is a Reply."""
        return handler.predict(self, body, content_type, request_id, call)

    def handle_predict_batch(self, requests: Sequence[tuple[Any, ...]]) -> list[Reply]:
        """Several ``handle_predict`` calls' arguments, their model calls batched (see
        :func:`guarded_serving.handler.predict_batch`). Never raises: one Reply per request, in order."""
        return handler.predict_batch(self, requests)

    def give_up(self, call: PredictCall) -> None:
        """Record a call that its caller gave up on (see :func:`guarded_serving.handler.give_up`)."""
        handler.give_up(self, call)

    def handle_feedback(
        self, body: bytes | UnreadBody, content_type: str | None = None, authorization: str | None = None
    ) -> Reply:
        """Labels for earlier predictions (see :func:`guarded_serving.endpoints.feedback`)."""
        return endpoints.feedback(self, body, content_type, authorization)

    def authorized(self, authorization: str | None) -> bool | None:
        """True for the right bearer token, False for a wrong one, None when none was sent (or none is set)."""
        return authorized(self.auth_token, authorization)

    def health_reply(
        self,
        fail_on: str | None = None,
        detail: bool = True,
        authorization: str | None = None,
        format: str | None = None,
        accept: str | None = None,
    ) -> Reply:
        """The ``/health/model`` answer (see :func:`guarded_serving.endpoints.health`)."""
        return endpoints.health(self, fail_on, detail, authorization, format, accept)

    def history_reply(self, since: str | None = None, limit: str | None = None, authorization: str | None = None) -> Reply:
        """The ``/health/model/history`` answer (see :func:`guarded_serving.endpoints.history`)."""
        return endpoints.history(self, since, limit, authorization)


def _input_kind(
    reference: Any, input_format: str | None, feature_names: Sequence[str] | None, categorical: Sequence[str | int] | None
) -> InputKind | None:
    """The input kind of the training data (or of a saved reference), None for rows of scalars."""
    if isinstance(reference, Reference):
        return kind_of_reference(reference)
    if feature_names is not None or categorical is not None:
        return None if input_format is None else kind_for(reference, input_format)
    return kind_for(reference, input_format)


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
    reference: Any = None,
    model: Any = None,
    name: str | None = None,
    version: str | None = None,
    db: str | os.PathLike[str] | None = None,
    window: int = 1000,
    max_request_rows: int = 1000,
    max_body_bytes: int = 10 * 1024 * 1024,
    allow_missing: bool | None = None,
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
    metrics_labels: str = "names",
    max_rows: int | None = None,
    max_age: float | None = None,
    overflow: str = "drop",
    report_values: bool = False,
    history_interval: float = 60.0,
    holdout: Any = None,
    batching: Any = None,
    **service_options: Any,
) -> Any:
    """Wrap a predict function into a BentoML service that logs, times and answers ``/health/model``.

    ``svc = guard(model.predict_proba, reference=X_train, name="churn")``, or as a decorator
    ``@guard(reference=X_train, name="churn")`` over a function taking the rows. Other keyword
    arguments (``workers=2``, ``traffic={"timeout": 10}`` ...) are BentoML service options.

    ``holdout=(X_val, y_val)`` (or ``X_val``): rows the model was not fitted on, on which its outputs
    and performance are profiled. Without it, the outputs are profiled on the training rows and the
    monitor judges prediction drift (and, with labels, concept drift) against early served traffic.

    ``metrics_labels``: what BentoML's ``/metrics`` (served without the token) names of the features:
    ``"names"`` (the default) features and categories, ``"indexed"`` categories by rank, ``"none"`` no
    per-feature series (no drift statistics, no bins).

    ``batching=True`` (or ``{"max_batch_size": 32, "max_latency_ms": 0}``): concurrent requests' rows go to the
    model in one call (see :mod:`guarded_serving.batching`); validation, rejection and logging stay per request.

    ``model="iris:latest"``: instead of ``reference``, a BentoML model tag (or ``BentoModel``) whose reference
    was saved with it (:func:`guarded_serving.bento.save_reference`).
    """
    module = _caller_module()
    if model is not None:
        if reference is not None:
            raise ConfigurationError("model", model, "either reference= or model= (a BentoML model tag), not both")
        from .bento.modelstore import load_reference  # BentoML's model store: only for model=

        reference = load_reference(model)

    def wrap(predict: Callable[..., Any]) -> Any:
        options = guard_options(
            name=_service_name(predict, name),
            version=version,
            db=db,
            window=window,
            max_request_rows=max_request_rows,
            max_body_bytes=max_body_bytes,
            allow_missing=allow_missing,
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
            metrics_labels=metrics_labels,
            max_rows=max_rows,
            max_age=max_age,
            overflow=overflow,
            report_values=report_values,
            history_interval=history_interval,
            batching=batching,
        )
        guarded = GuardedModel(
            predict,
            reference=reference,
            feature_names=feature_names,
            categorical=categorical,
            holdout=holdout,
            options=options,
        )
        from .service import build_service  # the only place BentoML enters; service.py does not import guard.py

        return build_service(guarded, service_options, module)

    if func is None:
        return wrap
    return wrap(func)
