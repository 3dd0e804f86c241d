"""The input kinds there are: chosen by name (``input_format=``) or by the shape of the training data.

The built-in kinds are asked in the order of :data:`BUILT_IN` (the first whose factory accepts the data is
chosen); :func:`register` adds one (asked before the built-in ones, so a more specific kind wins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .embedding import EmbeddingFactory
from .kind import KIND_KEY, InputKind, KindFactory, Redactable, state_json
from .mixed import MixedFactory
from .tensor import TensorFactory
from .text import TextFactory

if TYPE_CHECKING:
    from ..reference import Reference

__all__ = ["BUILT_IN", "factories", "kind_for", "kind_names", "kind_of_reference", "redacted_kind", "register"]

BUILT_IN: tuple[KindFactory, ...] = (TextFactory(), MixedFactory(), TensorFactory(), EmbeddingFactory())
_FACTORIES: dict[str, KindFactory] = {f.name: f for f in BUILT_IN}
_ASKED: list[KindFactory] = list(BUILT_IN)


def register(factory: KindFactory) -> KindFactory:
    """Make a kind choosable by name and by the shape of the training data (asked before those registered earlier)."""
    _FACTORIES[factory.name] = factory
    _ASKED[:] = [factory, *(f for f in _ASKED if f.name != factory.name)]
    return factory


def factories() -> dict[str, KindFactory]:
    return dict(_FACTORIES)


def kind_names() -> tuple[str, ...]:
    """The names ``input_format=`` accepts besides the tabular ones."""
    return tuple(_FACTORIES)


def kind_for(data: Any, input_format: str | None = None) -> InputKind | None:
    """The kind of the training data ``data``, or None for rows of scalars (the tabular path).

    ``input_format`` names a kind (``"text"``) to force it, or a tabular format to refuse every kind."""
    from ..tabular import INPUT_FORMATS

    if input_format in INPUT_FORMATS:
        return None
    if input_format is not None:
        if input_format not in _FACTORIES:
            raise ConfigurationError("input_format", input_format, f"one of {[*INPUT_FORMATS, *_FACTORIES]}")
        return _FACTORIES[input_format].fit(data)
    for factory in _ASKED:
        if factory.accepts(data):
            return factory.fit(data)
    return None


def kind_of_reference(reference: Reference) -> InputKind | None:
    """The kind a reference was profiled with (None for a tabular one)."""
    state = reference.extra.get(KIND_KEY)
    if state is None:
        return None
    name = state.get("kind") if isinstance(state, dict) else None
    if name not in _FACTORIES:
        raise ConfigurationError("reference", f"input kind {name!r}", f"one of {list(_FACTORIES)}")
    return _FACTORIES[name].from_json(dict(state))


def redacted_kind(reference: Reference, redact: Collection[str]) -> Reference:
    """The reference with its kind's state holding nothing of a redacted field's values (a redacted text's
    vocabulary), as it is written to the log store; unchanged when no field of its kind is redacted."""
    kind = kind_of_reference(reference)
    if kind is None or not set(redact) & set(kind.fields) or not isinstance(kind, Redactable):
        return reference
    state = {"kind": kind.name, **state_json(kind.redacted(redact).to_json())}
    return dataclasses.replace(reference, extra={**reference.extra, KIND_KEY: state})
