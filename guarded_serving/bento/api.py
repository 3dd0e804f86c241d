"""guarded_api(): guard an existing class-based BentoML service, one added line per API.

::

    @bentoml.service
    class Iris:
        def __init__(self) -> None:
            self.model = bentoml.sklearn.load_model("iris:latest")

        @guarded_api(model="iris:latest")  # the added line: the reference saved with the model
        @bentoml.api
        def classify(self, data: np.ndarray) -> np.ndarray:
            return self.model.predict(data)

The API keeps its route, its typed signature (BentoML's OpenAPI and clients see the same schema) and the
answers it gave to good requests. What changes: BentoML reads the body but does not parse it; the guard does,
validating the rows against the API's reference (a bad row gets the guard's 4xx problem+json naming the row
and the feature), then builds the API's typed argument from the validated rows with the API's own input model
and calls the method, timing each stage and logging the request under the API's own model name
(``<class>.<api>`` unless ``name=`` says otherwise). It goes through the same request path as ``guard()``
(:mod:`guarded_serving.handler`, in the same model thread); only the envelope differs (:class:`ApiEnvelope`).

The service gains ``/health/model`` and ``/health/model/history`` (``?api=<name>`` picks an API; with one guarded
API it is the default, with several ``/health/model`` answers each API's report and the worst status) and
``/feedback``, whose labels go to the API that answered the request id (the ``X-Request-ID`` header of its
answer).

What a guarded API must look like: one parameter holding the rows (the others keep their defaults; a body
naming them is refused), of a type built from a table: ``np.ndarray``, ``pd.DataFrame``, a list of pydantic
models or dicts (one per row, fields named as the reference's features) or a list of lists; a synchronous or
``async`` method returning one result per row, as JSON.
"""

from __future__ import annotations

import asyncio
import typing as t
from typing import Any

import bentoml
from _bentoml_sdk.method import APIMethod
from starlette.responses import Response

from ..calls import PredictCall
from ..errors import ConfigurationError
from ..guard import GuardedModel, guard_options
from ..monitor import as_reference
from ..service import _BODY_KEY
from .modelstore import load_reference
from .routes import equip
from .typed import GUARDS, RUNNER, SPECS, ApiEnvelope, RowsParameter, raw_spec, response

__all__ = ["guarded_api"]


class ApiSpec:
    """One guarded API, as declared on the class: its method, rows parameter and guard settings."""

    def __init__(self, method: APIMethod[..., Any], reference: Any, model: str | None, settings: dict[str, Any]) -> None:
        self.method = method
        self.parameter = RowsParameter(method)
        self.reference = reference
        self.model = model
        self.name = settings.pop("name", None)
        self.profile = {k: settings.pop(k) for k in ("feature_names", "categorical", "holdout") if k in settings}
        self.settings = settings
        self.envelope = ApiEnvelope(self.parameter.name, method.output_spec)

    def build(self, owner: type, instance: Any) -> GuardedModel:
        """The API's GuardedModel in a worker (after the service's own ``__init__``): its reference (from the model
        store when ``model=`` was given) and the method, bound to this instance, as the predict function."""
        reference = self.reference
        if reference is None:
            reference = load_reference(t.cast(str, self.model))
        name = self.name or f"{owner.__name__}.{self.method.name}".lower()
        options = guard_options(name=name, input_format=self.parameter.input_format, **self.settings)
        func, parameter = self.method.func, self.parameter

        def predict(model_input: Any) -> Any:
            return parameter.call(func, instance, model_input)

        predict.__name__ = self.method.name
        fields = parameter.record_fields
        if fields is not None:  # checked before GuardedModel calls the method on the reference's rows
            names = as_reference(reference, self.profile.get("feature_names"), self.profile.get("categorical")).feature_names
            if set(fields) != set(names):
                expected = f"the reference's features {list(names)}"
                raise ConfigurationError(f"{self.method.name}'s row fields", sorted(fields), expected)
        return GuardedModel(predict, reference=reference, options=options, envelope=self.envelope, **self.profile)


class _Pending:
    """What the decorator returns inside the class body: when the class is created, it puts the guarded
    APIMethod in its own place, and (once per class) the ``/feedback`` API, the ``/health`` mount, the
    shutdown hook and the ``__init__`` that starts each worker's guards."""

    def __init__(self, spec: ApiSpec, api: APIMethod[..., Any]) -> None:
        self.spec, self.api = spec, api

    def __set_name__(self, owner: type, name: str) -> None:
        setattr(owner, name, self.api)
        specs: dict[str, ApiSpec] | None = owner.__dict__.get(SPECS)
        if specs is None:
            specs = {}
            setattr(owner, SPECS, specs)
            equip(owner, specs)
        specs[name] = self.spec


def guarded_api(
    api: Any = None,
    /,
    *,
    reference: Any = None,
    model: str | None = None,
    **settings: Any,
) -> Any:
    """Guard one API of a class-based BentoML service; put it above (or in place of) ``@bentoml.api``.

    ``reference``: the API's training data, a Reference or a saved reference's path; or ``model="name:version"``,
    a BentoML model tag whose saved reference (:func:`guarded_serving.bento.save_reference`) is used.
    Other keywords are guard()'s (``name``, ``db``, ``window``, ``holdout``, ``auth_token``...).
    """
    if reference is not None and model is not None:
        raise ConfigurationError("model", model, "either reference= or model= (a BentoML model tag), not both")
    if reference is None and model is None:
        raise ConfigurationError("reference", None, "training data, a Reference, its file, or model= (a BentoML model tag)")

    def wrap(target: Any) -> _Pending:
        original = target if isinstance(target, APIMethod) else bentoml.api(target)
        if original.batchable or original.is_stream or original.is_task:
            raise ConfigurationError(original.name, "batchable/stream/task", "a plain @bentoml.api")
        spec = ApiSpec(original, reference, model, dict(settings))
        return _Pending(spec, _guarded_method(original))

    return wrap if api is None else wrap(api)


def _guarded_method(original: APIMethod[..., Any]) -> APIMethod[..., Any]:
    """The APIMethod BentoML serves instead: same route, name, output and (for OpenAPI) input schema; its body
    read, not parsed, and handled by the guard."""
    name = original.name

    async def endpoint(self: Any, *_: Any, ctx: bentoml.Context, **__: Any) -> Response:
        guarded: GuardedModel = getattr(self, GUARDS)[name]
        request = ctx.request
        body = request.scope.get(_BODY_KEY, b"")
        headers = request.headers
        call = PredictCall(headers.get("x-request-id"))
        try:
            reply = await getattr(self, RUNNER).call(
                guarded.handle_predict, body, headers.get("content-type"), call.request_id, call
            )
        except asyncio.CancelledError:  # BentoML's traffic timeout answered 504: record it (off the loop)
            asyncio.get_running_loop().run_in_executor(None, guarded.give_up, call)
            raise
        ctx.response.status_code = reply.status
        return response(reply)

    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = original.doc
    return APIMethod(  # type: ignore[call-arg]
        func=endpoint, route=original.route, input_spec=raw_spec(original.input_spec), output_spec=original.output_spec
    )
