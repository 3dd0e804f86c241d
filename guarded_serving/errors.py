"""The exception tree of guarded_serving.

Every exception the library raises on purpose derives from one root::

    GuardedServingError
     ├── ConfigurationError        a bad argument to guard(), Monitor(), Reference.from_data() ...
     ├── InvalidReferenceError     a reference document that cannot be read or does not fit
     ├── InputError                a request the service refuses (answered 4xx, recorded as ``rejected``)
     │    │   carries a tuple of Problem (row, feature, what was wrong, what was expected)
     │    └── UnknownRequestError  feedback naming request ids that were never answered (404)
     ├── ModelError                the wrapped predict function raised or returned something unusable
     └── StoreError                the SQLite log store could not be opened or written

Messages always name the offending value and what was expected, so that a person can act on them
without reading the source.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConfigurationError",
    "GuardedServingError",
    "InputError",
    "InvalidReferenceError",
    "ModelError",
    "Problem",
    "StoreError",
    "UnknownRequestError",
]


class GuardedServingError(Exception):
    """Root of every error raised by guarded_serving."""


class ConfigurationError(GuardedServingError, ValueError):
    """An argument has a value the library cannot work with.

    The message names the argument, the value received and what was expected.
    """

    def __init__(self, argument: str, got: object, expected: str) -> None:
        self.argument = argument
        self.got = got
        self.expected = expected
        super().__init__(f"{argument}: expected {expected}, got {short_repr(got)}")


class InvalidReferenceError(GuardedServingError, ValueError):
    """A reference document is unreadable, of an unknown version, or does not fit the data."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: where it is, what was wrong and what was expected.

    ``kind`` is ``"type"`` for a value of the wrong type for its feature, ``"missing"`` for a missing value
    (null) refused there, ``"range"`` for a number refused as far beyond the reference's (the data quality check
    counts all three per feature), else None.
    """

    problem: str
    expected: str
    row: int | None = None
    feature: str | None = None
    kind: str | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.feature is not None:
            where.append(f"feature {self.feature!r}")
        prefix = ", ".join(where)
        text = f"{self.problem}; expected {self.expected}"
        return f"{prefix}: {text}" if prefix else text

    def to_json(self) -> dict[str, object]:
        return {
            "row": self.row,
            "feature": self.feature,
            "problem": self.problem,
            "expected": self.expected,
        }


class InputError(GuardedServingError, ValueError):
    """A request was refused before reaching the model.

    ``status`` is the HTTP status the service answers with (400 malformed, 413 too large,
    415 wrong content type, 422 rows that do not fit the reference).
    """

    def __init__(self, problems: tuple[Problem, ...] | list[Problem], status: int = 422) -> None:
        self.problems = tuple(problems)
        self.status = status
        first = str(self.problems[0]) if self.problems else "invalid input"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""))


class UnknownRequestError(InputError):
    """Feedback names request ids this model never answered; ``unknown`` lists them all."""

    def __init__(self, unknown: tuple[str, ...]) -> None:
        self.unknown = unknown
        shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        problem = Problem(f"unknown request id{'s' if len(unknown) > 1 else ''} {shown}", "ids of answered predictions")
        super().__init__([problem], status=404)


class ModelError(GuardedServingError, RuntimeError):
    """The wrapped predict function raised, or returned a result that does not fit the rows sent."""

    def __init__(self, message: str, error_class: str) -> None:
        self.error_class = error_class
        super().__init__(message)


class StoreError(GuardedServingError, OSError):
    """The log store could not be opened or written."""


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut with an ellipsis at ``limit`` characters: how a message shows a value it was given."""
    return shortened(repr(value), limit)


def shortened(text: str, limit: int = 80) -> str:
    """``text``, cut with an ellipsis when longer than ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
