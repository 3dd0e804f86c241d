"""The reference kept with a model in BentoML's model store, so that ``bentoml build`` ships both.

``save_reference(model, X_train)`` writes the reference (the data's profile, and the environment the model is
saved in, against which library drift is judged) into the model's own directory; ``load_reference("iris:latest")``
reads it back, from the local model store or, in a built Bento, from the Bento's models. ``guard(model=...)`` and
``guarded_api(model=...)`` call it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bentoml

from ..environment import current_fingerprint
from ..errors import ConfigurationError
from ..monitor import as_reference
from ..reference import Reference

__all__ = ["REFERENCE_FILE", "load_reference", "reference_path", "save_reference"]

REFERENCE_FILE = "guarded_serving_reference.json"


def _stored(model: Any) -> Any:
    """The stored model a tag, a ``bentoml.models.BentoModel`` or a stored model names."""
    tag = str(getattr(model, "tag", model))
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        # Inside ``with bentoml.models.create(...) as model``: not in the store until the block ends. (A model that
        # save_model returned is in the store, and its own path is the temporary one it was written in.)
        if hasattr(model, "path"):
            return model
        raise ConfigurationError("model", tag, "the tag of a model in BentoML's model store (bentoml models list)") from None


def reference_path(model: Any) -> Path:
    """Where the reference of ``model`` (a tag, a BentoModel or a stored model) is kept."""
    return Path(_stored(model).path) / REFERENCE_FILE


def save_reference(
    model: Any,
    reference: Any,
    *,
    feature_names: Sequence[str] | None = None,
    categorical: Sequence[str | int] | None = None,
) -> Reference:
    """Keep ``reference`` (training data, or a Reference) with ``model``: a tag (``"iris:latest"``), the model
    ``bentoml.<framework>.save_model`` returned, or the one ``with bentoml.models.create(...) as model`` holds.
    The environment recorded with it is this one, the model's saving environment."""
    profile = as_reference(reference, feature_names, categorical)
    profile = dataclasses.replace(profile, environment=current_fingerprint())
    profile.save(reference_path(model))
    return profile


def load_reference(model: Any) -> Reference:
    """The reference kept with ``model`` (a tag, a BentoModel or a stored model)."""
    path = reference_path(model)
    if not path.is_file():
        expected = "a model saved with its reference (guarded_serving.bento.save_reference)"
        raise ConfigurationError("model", str(getattr(model, "tag", model)), expected)
    return Reference.load(path)
