"""A typed BentoML API as the guard sees it: where its rows are, how it is called, how its answer is written.

* :class:`ApiEnvelope`: the rows are the value of the API's rows parameter (the body itself for a
  positional-only one), and the answer is the API's return value as BentoML writes it;
* :class:`RowsParameter`: the API's one parameter without a default, which kind of table it takes
  (``np.ndarray``, ``pd.DataFrame``, a list of pydantic models, dicts or lists), and how validated rows become
  that argument (with the API's own input model, so BentoML's validators still apply);
* :func:`raw_spec`: the API's input model (same fields, same OpenAPI schema) whose body BentoML reads into the
  request's scope without parsing it: the guard parses it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import types
import typing as t
from collections.abc import Callable
from typing import Any

import bentoml
import numpy as np
import pydantic
from _bentoml_sdk.io_models import IODescriptor, IORootModel
from _bentoml_sdk.method import APIMethod
from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ConfigurationError, InputError, Problem
from ..http import Reply
from ..service import _BODY_KEY, _read_body
from ..validation import describe

__all__ = ["GUARDS", "RUNNER", "SPECS", "ApiEnvelope", "RowsParameter", "raw_spec", "response"]

SPECS = "__guarded_serving_apis__"  # on the class: the guarded APIs' specs, by API name
GUARDS = "__guarded_serving_guards__"  # on each instance: the APIs' GuardedModels, by API name
RUNNER = "__guarded_serving_runner__"  # on each instance: the model thread its requests run in


class ApiEnvelope:
    """A typed BentoML API's envelope: the rows are the value of the field ``field`` (the body itself for a
    positional-only parameter, ``field=None``), and the answer is the API's return value as BentoML writes it."""

    def __init__(self, field: str | None, output_spec: type[IODescriptor]) -> None:
        self.field = field
        self.output_spec = output_spec
        self.root_output = issubclass(output_spec, IORootModel)
        # BentoML's tensor validator hands an ndarray back as it is, whatever dtype or shape it declares.
        self.bare_output = self.root_output and output_spec.model_fields["root"].annotation is np.ndarray
        self.expected = f'a JSON object like {{"{field}": [[...], ...]}}' if field else "a JSON list of rows"

    def rows(self, document: Any) -> Any:
        field = self.field
        if field is None:
            return {"rows": document}
        if not isinstance(document, dict):
            raise InputError([Problem(f"the body is {describe(document)}", self.expected)], status=422)
        if field not in document or len(document) > 1:
            unknown = [k for k in document if k != field]
            problem = f"unknown field {unknown[0]!r}" if unknown else f"the field {field!r} is missing"
            raise InputError([Problem(problem, f'a JSON object with the single field "{field}"')], status=422)
        rows = document[field]
        if not isinstance(rows, list) or not rows:
            raise InputError(
                [Problem(f"{field!r} is {describe(rows)}", "a non-empty list of rows (lists or objects)")], status=422
            )
        return {"rows": rows}

    def serialize(self, result: Any, request_id: str) -> tuple[Any, bytes]:
        spec = self.output_spec
        if self.root_output and isinstance(result, np.ndarray) and result.dtype.kind in "iub" and self.bare_output:
            outputs = result.tolist()  # what BentoML's tensor encoder gives, without its model (~30 us); no NaN here
            return outputs, json.dumps(outputs).encode()
        if self.root_output:  # as IORootModel.model_dump_json writes it, its JSON values kept for the log
            outputs = (result if isinstance(result, spec) else spec(result)).model_dump(mode="json")
            return outputs, json.dumps(outputs).encode()
        payload = result.model_dump_json().encode()  # a pydantic model: one result per row only if it is a list
        return from_json(payload), payload

    def outputs_text(self, payload: bytes) -> str:
        return payload.decode()


class RowsParameter:
    """The API's rows parameter, how the guard hands it validated rows, and how the method is called."""

    def __init__(self, method: APIMethod[..., Any]) -> None:
        spec = method.input_spec
        self.spec = spec
        self.root = bool(getattr(spec, "__root_input__", False))
        fields = spec.model_fields
        if self.root:
            self.name: str | None = None
            annotation = fields["root"].annotation
        else:
            required = [name for name, info in fields.items() if info.is_required()]
            if len(required) != 1:
                raise ConfigurationError(
                    f"{method.name}'s parameters", sorted(fields), "exactly one parameter without a default: the rows"
                )
            self.name = required[0]
            annotation = fields[self.name].annotation
        if isinstance(annotation, (str, t.ForwardRef)):  # BentoML could not resolve it: the function's globals can
            parameters = list(inspect.signature(method.func).parameters)
            hints = t.get_type_hints(method.func, include_extras=True)
            annotation = hints.get(self.name or parameters[1], annotation)
        self.input_format, self.as_lists, self.record_fields = _input_format(annotation)
        # A bare np.ndarray or DataFrame parameter takes the guard's validated matrix or frame as it is: BentoML's
        # model_validate would only hand it back, at ~30 us a request (bench/native.py). Annotated ones (a dtype,
        # a shape) and row models go through the API's input model, BentoML's validators included.
        self.direct = not self.root and self.input_format != "records" and not self.as_lists and _bare(method.func, self.name)
        self.defaults = {k: info for k, info in fields.items() if k != self.name}
        if getattr(spec, "multipart_fields", None):
            raise ConfigurationError(method.name, sorted(spec.multipart_fields), "an API taking JSON (no file parameters)")
        if method.ctx_param is not None:  # the model thread has no request context to give it
            raise ConfigurationError(
                f"{method.name}'s {method.ctx_param} parameter", method.ctx_param, "an API without a context parameter"
            )
        self.is_async = inspect.iscoroutinefunction(method.func)

    def call(self, func: Callable[..., Any], instance: Any, model_input: Any) -> Any:
        """Build the typed argument with the API's own input model (BentoML's validators included) and call."""
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any]
        if self.direct:
            kwargs = {k: info.get_default(call_default_factory=True) for k, info in self.defaults.items()}
            kwargs[t.cast(str, self.name)] = model_input
        else:
            value = model_input.tolist() if self.as_lists and isinstance(model_input, np.ndarray) else model_input
            data = self.spec.model_validate(value if self.root else {self.name: value})
            if self.root:
                args, kwargs = (data.root if isinstance(data, IORootModel) else data,), {}
            else:
                kwargs = {k: getattr(data, k) for k in type(data).model_fields}
        result = func(instance, *args, **kwargs)
        return asyncio.run(result) if self.is_async else result


def _bare(func: Callable[..., Any], name: str | None) -> bool:
    """Whether ``func``'s parameter ``name`` is annotated with the bare np.ndarray or DataFrame class."""
    try:
        annotation = t.get_type_hints(func, include_extras=True).get(name or "")
    except Exception:  # an annotation that does not resolve: BentoML's input model decides
        return False
    return annotation is np.ndarray or (inspect.isclass(annotation) and annotation.__name__ == "DataFrame")


def _input_format(annotation: Any) -> tuple[str, bool, tuple[str, ...] | None]:
    """(the guard's input_format, whether the rows go as lists, the fields of a row model)."""
    while t.get_origin(annotation) is t.Annotated:
        annotation = t.get_args(annotation)[0]
    origin = t.get_origin(annotation) or annotation
    if origin is np.ndarray:
        return "array", False, None
    if getattr(origin, "__name__", "") == "DataFrame" and getattr(origin, "__module__", "").startswith("pandas"):
        return "dataframe", False, None
    if origin in (list, t.List, tuple):  # noqa: UP006 -- typing.List annotations too
        (item,) = t.get_args(annotation)[:1] or (Any,)
        while t.get_origin(item) is t.Annotated:
            item = t.get_args(item)[0]
        item_origin = t.get_origin(item) or item
        if inspect.isclass(item_origin) and issubclass(item_origin, pydantic.BaseModel):
            return "records", False, tuple(item_origin.model_fields)
        if item_origin is dict:
            return "records", False, None
        return "array", True, None
    raise ConfigurationError(
        "the rows parameter's type", annotation, "np.ndarray, pd.DataFrame, or a list of rows (pydantic models, dicts or lists)"
    )


def raw_spec(spec: type[IODescriptor]) -> type[IODescriptor]:
    """``spec`` (same fields, same schema) whose body BentoML reads into the request's scope, unparsed."""
    namespace = {"__module__": spec.__module__, "from_http_request": classmethod(_read_into_scope)}
    return t.cast(type[IODescriptor], types.new_class(spec.__name__, (spec,), exec_body=lambda ns: ns.update(namespace)))


class _Unparsed:
    """Stands for the input BentoML would have parsed: no fields, so the endpoint is called with ctx only."""

    model_fields: dict[str, Any] = {}


_UNPARSED = _Unparsed()


async def _read_into_scope(cls: Any, request: Request, serde: Any) -> Any:
    instance = bentoml.get_current_service()
    request.scope[_BODY_KEY] = await _read_body(request, _max_body_bytes(instance))
    return _UNPARSED


def _max_body_bytes(instance: Any) -> int:
    return max(int(g.max_body_bytes) for g in getattr(instance, GUARDS).values())


def response(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type)
