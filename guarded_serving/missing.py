"""Which features a model takes a missing value in: asked of the model once, when guard() builds the service.

A ``null`` in a request is a missing value: the model gets NaN (or None in an object array, a record or a
DataFrame). Some models take it (a HistGradientBoosting model, a Pipeline that imputes first, a plain numpy
function); many raise (scikit-learn's LogisticRegression: ``Input X contains NaN``; a OneHotEncoder: ``Found
unknown categories [None]``). Sent to the README's one-liner, such a null was answered ``500 the model failed
in stage 'predict'`` and counted as a model error, and with batching it failed every request sharing the call.
Asked here first, it is refused before the model and before any batch: a ``422`` naming the row and the feature.

The question is put to the model as a request would put it, one row in the form the model takes its rows: a
typical row (each numeric feature at its reference median, each categorical one at its most common category)
with missing values in it. When the model refuses the typical row itself, nothing can be learnt and every
feature keeps taking nulls, as before. When it takes a row with every feature missing, every feature does.
Otherwise each feature is asked alone, for up to :data:`ASKED_ONE_BY_ONE` features (one model call each);
a wider model refusing the all-missing row takes nulls in none of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .profiles import FeatureProfile
from .reference import Reference
from .tabular import to_model_input

if TYPE_CHECKING:
    from .inputs.mixed import MixedKind

__all__ = ["ASKED_ONE_BY_ONE", "fields_taking_missing", "missing_taken", "typical_row"]

ASKED_ONE_BY_ONE = 64  # one model call per feature at start-up, on top of the reference's profiling calls


def missing_taken(predict: Callable[..., Any], reference: Reference, input_format: str) -> tuple[bool, ...]:
    """Per feature of ``reference``, whether ``predict`` answers a row holding a missing value there."""
    names = reference.feature_names
    all_numeric = all(f.kind == "numeric" for f in reference.features)
    return _asked(predict, typical_row(reference), lambda rows: to_model_input(rows, names, all_numeric, input_format))


def fields_taking_missing(predict: Callable[..., Any], reference: Reference, kind: MixedKind) -> tuple[bool, ...]:
    """Per field of a row with free text (``kind``), whether ``predict`` takes a null there. A text field always
    does: its null is an empty text."""
    profiles = {f.name: f for f in reference.features}
    typical = ["" if n in kind.texts else _typical(profiles[n]) if n in profiles else None for n in kind.names]

    def model_input(rows: list[list[Any]]) -> Any:
        texts = [n in kind.texts for n in kind.names]
        return kind.model_input([["" if v is None and t else v for t, v in zip(texts, row, strict=True)] for row in rows])

    taken = _asked(predict, typical, model_input)
    return tuple(t or n in kind.texts for t, n in zip(taken, kind.names, strict=True))


def typical_row(reference: Reference) -> list[Any]:
    """A row of ordinary values: each numeric feature's median (of its sorted sample, else its mean), each
    categorical feature's most common category."""
    return [_typical(feature) for feature in reference.features]


def _asked(predict: Callable[..., Any], typical: list[Any], model_input: Callable[[list[list[Any]]], Any]) -> tuple[bool, ...]:
    def answers(row: list[Any]) -> bool:
        try:
            with warnings.catch_warnings():  # the model's own complaints about NaN are the answer, not news
                warnings.simplefilter("ignore")
                predict(model_input([row]))
        except Exception:
            return False
        return True

    width = len(typical)
    if not width or not answers(typical) or answers([None] * width):
        return (True,) * width
    if width > ASKED_ONE_BY_ONE:
        return (False,) * width
    return tuple(answers([*typical[:j], None, *typical[j + 1 :]]) for j in range(width))


def _typical(feature: FeatureProfile) -> Any:
    if feature.kind != "numeric":
        return feature.categories[0][0] if feature.categories else None
    if feature.sample:
        return feature.sample[len(feature.sample) // 2]
    return feature.mean
