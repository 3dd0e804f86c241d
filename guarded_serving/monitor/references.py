"""A reference from whatever the user gave: a Reference, a saved one's path, or training data to profile."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError
from ..inputs import kind_for, kind_reference
from ..reference import Reference
from ..tabular import dense

__all__ = ["as_reference"]


def as_reference(
    reference: Any,
    feature_names: Sequence[str] | None = None,
    categorical: Sequence[str | int] | None = None,
    input_format: str | None = None,
) -> Reference:
    """Accept a Reference, a path to a saved one, or training data to profile (of an input kind unless
    ``input_format`` names a tabular one or ``feature_names``/``categorical`` are given)."""
    if isinstance(reference, Reference):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        return Reference.load(reference)
    if reference is None:
        raise ConfigurationError(
            "reference", None, "training data (array, list of rows, DataFrame), a Reference, or a saved reference path"
        )
    reference = dense(reference, "reference")
    if feature_names is None and categorical is None:
        kind = kind_for(reference, input_format)  # texts, rows with a free-text field... (guarded_serving/inputs/)
        if kind is not None:
            return kind_reference(kind, reference)
    return Reference.from_data(reference, feature_names=feature_names, categorical=categorical)
