"""A reference for a model with an input kind: its training inputs' descriptors, its outputs on them.

The descriptors are profiled as any training data is (:meth:`Reference.from_data` on their columns); the
model's outputs are profiled by calling it on (up to 5,000 of) the inputs as the kind shapes them for it,
marked as training outputs, or on held-out inputs (``holdout=``, with labels: performance too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..environment import capture_warnings
from ..errors import ConfigurationError
from ..jsontext import to_jsonable_output
from ..profiles import output_columns, profile_columns
from ..reference import PREDICT_ROWS, Origin, Provenance, Reference
from .kind import KIND_KEY, InputKind, state_json

__all__ = ["kind_reference"]


def kind_reference(kind: InputKind, data: Any, predict: Callable[..., Any] | None = None, holdout: Any = None) -> Reference:
    """The reference of training inputs ``data`` of ``kind``: descriptors profiled, the kind's state saved
    in ``extra``, the features marked as training rows; outputs as :mod:`this module <.>` says."""
    items = kind.items(data)
    reference = Reference.from_data(kind.describe(items, reference=True))
    extra = {**reference.extra, KIND_KEY: {"kind": kind.name, **state_json(kind.to_json())}}
    reference = dataclasses.replace(
        reference, extra=extra, provenance=dataclasses.replace(reference.provenance, features="training")
    )
    if holdout is not None:
        return _with_holdout(kind, reference, holdout, predict)
    if predict is None:
        return reference
    outputs = profile_columns(output_columns(_call(kind, predict, items[:PREDICT_ROWS])))
    provenance = dataclasses.replace(reference.provenance, outputs="training")
    return dataclasses.replace(reference, outputs=outputs, provenance=provenance)


def _with_holdout(kind: InputKind, reference: Reference, holdout: Any, predict: Callable[..., Any] | None) -> Reference:
    held, labels = holdout if isinstance(holdout, tuple) and len(holdout) == 2 else (holdout, None)
    if predict is None:
        raise ConfigurationError("holdout", "held-out inputs without a model", "predict= to profile the outputs on")
    items = kind.items(held, where="holdout")[:PREDICT_ROWS]
    labels = None if labels is None else list(labels)[:PREDICT_ROWS]
    described = Reference.from_data(kind.describe(items), y=labels, predictions=_call(kind, predict, items))
    origin: Origin = "training" if described.provenance.outputs == "training" else "holdout"
    provenance = Provenance(reference.provenance.features, origin, origin if described.performance else "given")
    return dataclasses.replace(
        reference,
        outputs=described.outputs,
        target=described.target,
        performance=described.performance,
        confidence=described.confidence if origin == "holdout" else None,
        provenance=provenance,
    )


def _call(kind: InputKind, predict: Callable[..., Any], items: list[Any]) -> Any:
    try:
        with capture_warnings():
            return to_jsonable_output(predict(kind.model_input(items)))
    except Exception as exc:
        raise ConfigurationError(
            "predict",
            f"{type(exc).__name__}: {exc}",
            f"a function that accepts {kind.name} inputs (it failed on the reference's)",
        ) from exc
