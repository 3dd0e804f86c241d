"""The exception tree: every error names the value, the argument and what was expected."""

from __future__ import annotations

import pytest

from guarded_serving import errors
from guarded_serving.errors import (
    ConfigurationError,
    GuardedServingError,
    InputError,
    InvalidReferenceError,
    ModelError,
    Problem,
    StoreError,
    UnknownRequestError,
)


def test_configuration_error_message_names_argument_expected_and_value() -> None:
    error = ConfigurationError("max_rows", -3, "a positive integer")

    assert str(error) == "max_rows: expected a positive integer, got -3"


def test_configuration_error_keeps_its_parts_as_attributes() -> None:
    error = ConfigurationError("max_rows", -3, "a positive integer")

    assert (error.argument, error.got, error.expected) == ("max_rows", -3, "a positive integer")


def test_configuration_error_shortens_a_long_value_to_80_characters() -> None:
    error = ConfigurationError("name", "x" * 200, "a short name")

    got = str(error).split(", got ", 1)[1]
    assert got == "'" + "x" * 76 + "..."
    assert len(got) == 80


def test_configuration_error_is_also_a_value_error() -> None:
    assert issubclass(ConfigurationError, ValueError)


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        pytest.param(
            Problem("got 'abc'", "a number", row=3, feature="age"),
            "row 3, feature 'age': got 'abc'; expected a number",
            id="row-and-feature",
        ),
        pytest.param(
            Problem("the row has 2 values", "3 values", row=0), "row 0: the row has 2 values; expected 3 values", id="row-only"
        ),
        pytest.param(
            Problem("the feature is missing", "every feature", feature="city"),
            "feature 'city': the feature is missing; expected every feature",
            id="feature-only",
        ),
        pytest.param(
            Problem("the request body is empty", "a JSON object"),
            "the request body is empty; expected a JSON object",
            id="nowhere",
        ),
    ],
)
def test_problem_str_says_where_what_and_what_was_expected(problem: Problem, text: str) -> None:
    assert str(problem) == text


def test_problem_to_json_has_row_feature_problem_and_expected() -> None:
    problem = Problem("got 'abc'", "a number", row=3, feature="age")

    assert problem.to_json() == {"row": 3, "feature": "age", "problem": "got 'abc'", "expected": "a number"}


def test_problem_to_json_keeps_absent_location_as_none() -> None:
    assert Problem("empty", "a body").to_json() == {"row": None, "feature": None, "problem": "empty", "expected": "a body"}


def test_input_error_with_one_problem_is_that_problem() -> None:
    error = InputError([Problem("got 'abc'", "a number", row=3, feature="age")])

    assert str(error) == "row 3, feature 'age': got 'abc'; expected a number"


def test_input_error_with_two_problems_mentions_one_more_problem() -> None:
    error = InputError([Problem("got 'abc'", "a number", row=0, feature="age"), Problem("got true", "a number", row=1)])

    assert str(error) == "row 0, feature 'age': got 'abc'; expected a number (and 1 more problem)"


def test_input_error_with_many_problems_counts_the_others() -> None:
    problems = [Problem(f"bad {i}", "good", row=i) for i in range(5)]

    assert str(InputError(problems)) == "row 0: bad 0; expected good (and 4 more problems)"


def test_input_error_without_problems_says_invalid_input() -> None:
    assert str(InputError([])) == "invalid input"


def test_input_error_keeps_problems_as_a_tuple_and_defaults_to_422() -> None:
    problem = Problem("bad", "good")
    error = InputError([problem])

    assert (error.problems, error.status) == ((problem,), 422)


def test_input_error_carries_the_given_status() -> None:
    assert InputError([Problem("too many rows", "fewer")], status=413).status == 413


def test_model_error_keeps_message_and_error_class() -> None:
    error = ModelError("the model raised ValueError: boom", "ValueError")

    assert (str(error), error.error_class) == ("the model raised ValueError: boom", "ValueError")


@pytest.mark.parametrize(
    "exception",
    [ConfigurationError, InvalidReferenceError, InputError, UnknownRequestError, ModelError, StoreError],
    ids=lambda cls: cls.__name__,
)
def test_every_exception_derives_from_guarded_serving_error(exception: type[Exception]) -> None:
    assert issubclass(exception, GuardedServingError)


def test_every_exception_class_in_the_module_is_in_the_tree() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    exceptions = [cls for cls in classes if isinstance(cls, type) and issubclass(cls, BaseException)]

    assert len(exceptions) == 7
    assert [cls.__name__ for cls in exceptions if not issubclass(cls, GuardedServingError)] == []


def test_the_module_docstring_draws_every_exception() -> None:
    tree = errors.__doc__ or ""
    names = (
        "GuardedServingError",
        "ConfigurationError",
        "InvalidReferenceError",
        "InputError",
        "UnknownRequestError",
        "ModelError",
        "StoreError",
    )

    assert [name for name in names if name not in tree] == []
