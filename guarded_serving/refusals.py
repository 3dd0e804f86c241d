"""A model that refuses a category it was never trained on: the client's error, answered as one.

A scikit-learn pipeline's ``OneHotEncoder`` (``handle_unknown="error"``, its default) raises ``ValueError: Found
unknown categories ['enterprise'] in column 0 during transform``; a dict lookup raises ``KeyError: 'enterprise'``.
The service answered a 500 "Model error" naming the stage, as if the model were broken, and the client learned
nothing of which field to fix. When the model's exception is about an unknown value (a ``KeyError`` of the value
itself, or a message saying "unknown" or "unseen") and quotes a value of the request that is a category the
reference never had, the request is refused with a 422 naming the row, the feature, the value and the categories
the model knows (none of them shown for a redacted feature), and recorded as rejected. A message that merely
quotes the rows (``cannot score rows [[...]]``) is not enough: the model may have failed on another value.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from .drift import Baseline
from .errors import InputError, Problem
from .validation import describe

__all__ = ["unseen_refusal"]

SHOWN_CATEGORIES = 5
MAX_PROBLEMS = 20


def unseen_refusal(
    rows: Sequence[Sequence[Any]], baseline: Baseline, names: Sequence[str], exc: BaseException, redact: Collection[str]
) -> InputError | None:
    """The 422 for rows whose unseen text categories the model's exception quotes, or None (the model failed for
    some other reason: a 500 stays a 500)."""
    message = str(exc)
    lookup = isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str)
    if not rows or not (lookup or "unknown" in message.lower() or "unseen" in message.lower()):
        return None
    problems: list[Problem] = []
    for k, j in enumerate(baseline.cat_idx.tolist()):
        codes = baseline.codes[k]
        for i, row in enumerate(rows):
            value = row[j] if j < len(row) else None
            if not isinstance(value, str) or value in codes or repr(value) not in message:
                continue
            if lookup and exc.args[0] != value:
                continue
            name = names[j]
            if name in redact:
                problems.append(Problem("a category the model was not trained on", "one of its categories", i, name))
                continue
            known = [repr(c) for c in list(codes)[:SHOWN_CATEGORIES]]
            more = ", ..." if len(codes) > SHOWN_CATEGORIES else ""
            problems.append(
                Problem(
                    f"got {describe(value)}, a category the model was not trained on (it raised {type(exc).__name__})",
                    f"one of its categories: {', '.join(known)}{more}",
                    i,
                    name,
                )
            )
            if len(problems) >= MAX_PROBLEMS:
                return InputError(problems)
    return InputError(problems) if problems else None
