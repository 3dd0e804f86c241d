"""Which features a model takes a missing value in: asked of the model once, when guard() builds the service.

A ``null`` in a request is a missing value: the model gets NaN (or None in an object array, a record or a
DataFrame). Some models take it (a HistGradientBoosting model, a Pipeline that imputes first, a plain numpy
function); many raise (scikit-learn's LogisticRegression: ``Input X contains NaN``). Sent to the README's
one-liner, such a null was answered ``500 the model failed in stage 'predict'`` and counted as a model error,
and with batching it failed every request sharing the call. Asked here first, it is refused before the model
and before any batch: a ``422`` naming the row and the feature.

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
from typing import Any

from .profiles import FeatureProfile
from .reference import Reference
from .tabular import to_model_input

__all__ = ["ASKED_ONE_BY_ONE", "missing_taken", "typical_row"]

ASKED_ONE_BY_ONE = 64  # one model call per feature at start-up, on top of the reference's profiling calls


def missing_taken(predict: Callable[..., Any], reference: Reference, input_format: str) -> tuple[bool, ...]:
    """Per feature of ``reference``, whether ``predict`` answers a row holding a missing value there."""
    names = reference.feature_names
    if not names:
        return ()
    all_numeric = all(f.kind == "numeric" for f in reference.features)

    def answers(row: list[Any]) -> bool:
        try:
            with warnings.catch_warnings():  # the model's own complaints about NaN are the answer, not news
                warnings.simplefilter("ignore")
                predict(to_model_input([row], names, all_numeric, input_format))
        except Exception:
            return False
        return True

    typical = typical_row(reference)
    everywhere = (True,) * len(names)
    if not answers(typical) or answers([None] * len(names)):
        return everywhere
    if len(names) > ASKED_ONE_BY_ONE:
        return (False,) * len(names)
    return tuple(answers([*typical[:j], None, *typical[j + 1 :]]) for j in range(len(names)))


def typical_row(reference: Reference) -> list[Any]:
    """A row of ordinary values: each numeric feature's median (of its sorted sample, else its mean), each
    categorical feature's most common category."""
    return [_typical(feature) for feature in reference.features]


def _typical(feature: FeatureProfile) -> Any:
    if feature.kind != "numeric":
        return feature.categories[0][0] if feature.categories else None
    if feature.sample:
        return feature.sample[len(feature.sample) // 2]
    return feature.mean
