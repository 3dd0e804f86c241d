"""Request parsing: every refused request is a 4xx whose first problem names the row, the feature and what was expected."""

from __future__ import annotations

import math
import sys
from typing import Any, NamedTuple

import numpy as np
import pytest

from guarded_serving.errors import InputError
from guarded_serving.reference import Reference
from guarded_serving.validation import MAX_PROBLEMS, RowSchema, parse_json, parse_rows, parse_table, rows_text


class Refusal(NamedTuple):
    """What a refused request is answered with: the status and the first problem's parts."""

    status: int
    row: int | None
    feature: str | None
    problem: str
    expected: str


@pytest.fixture
def schema() -> RowSchema:
    return RowSchema(names=("age", "city", "income"), numeric=(True, False, True))


def parse(body: bytes, schema: RowSchema) -> list[list[Any]]:
    return parse_rows(parse_json(body), schema)


def refusal(body: bytes, schema: RowSchema) -> Refusal:
    with pytest.raises(InputError) as info:
        parse(body, schema)
    first = info.value.problems[0]
    return Refusal(info.value.status, first.row, first.feature, first.problem, first.expected)


ROWS_OBJECT = 'a JSON object like {"rows": [[...], ...]}'
SINGLE_FIELD = 'a JSON object with the single field "rows"'
NON_EMPTY_ROWS = "a non-empty list of rows (lists or objects)"
IN_ORDER = "3 values in the order ['age', 'city', 'income']"
FINITE = "a finite number, or null for a missing value"
CATEGORY = "a category (a string, number or boolean)"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b'{"rows": [[30, "Paris", 1.0]]',
            Refusal(400, None, None, "malformed JSON at line 1 column 30: Expecting ',' delimiter", "a valid JSON document"),
            id="malformed-json",
        ),
        pytest.param(
            b'{"rows": [[30, "Paris"\n 1.0]]}',
            Refusal(400, None, None, "malformed JSON at line 2 column 2: Expecting ',' delimiter", "a valid JSON document"),
            id="malformed-json-on-line-2",
        ),
        pytest.param(b"", Refusal(400, None, None, "the request body is empty", ROWS_OBJECT), id="empty-body"),
        pytest.param(b" \n\t", Refusal(400, None, None, "the request body is empty", ROWS_OBJECT), id="whitespace-body"),
        pytest.param(
            b'{"rows": [[30, "Par\xe9s", 1.0]]}',
            Refusal(400, None, None, "the body is not UTF-8 text (invalid continuation byte)", "a UTF-8 encoded JSON document"),
            id="latin-1-body",
        ),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000,
            Refusal(400, None, None, "the JSON is nested too deeply", "rows nested at most two levels deep"),
            id="100000-nested-lists",
        ),
        pytest.param(
            b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            Refusal(400, None, None, "the JSON is nested too deeply", "rows nested at most two levels deep"),
            id="100000-nested-rows",
        ),
        pytest.param(
            b'{"rows": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
            Refusal(400, None, None, "the JSON is nested too deeply", "rows nested at most two levels deep"),
            id="100000-nested-objects",
        ),
    ],
)
def test_unreadable_body_is_a_400(body: bytes, expected: Refusal, schema: RowSchema) -> None:
    assert refusal(body, schema) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'[[30, "Paris", 1.0]]', Refusal(422, None, None, "the body is a list", ROWS_OBJECT), id="body-a-list"),
        pytest.param(b'"hello"', Refusal(422, None, None, 'the body is "hello"', ROWS_OBJECT), id="body-a-string"),
        pytest.param(b"null", Refusal(422, None, None, "the body is null", ROWS_OBJECT), id="body-null"),
        pytest.param(b"{}", Refusal(422, None, None, "the field 'rows' is missing", SINGLE_FIELD), id="missing-rows"),
        pytest.param(
            b'{"data": [[30, "Paris", 1.0]]}', Refusal(422, None, None, "unknown field 'data'", SINGLE_FIELD), id="rows-misnamed"
        ),
        pytest.param(
            b'{"rows": [[30, "Paris", 1.0]], "model": "v2"}',
            Refusal(422, None, None, "unknown field 'model'", SINGLE_FIELD),
            id="unknown-top-level-field",
        ),
        pytest.param(b'{"rows": []}', Refusal(422, None, None, "'rows' is an empty list", NON_EMPTY_ROWS), id="empty-rows"),
        pytest.param(b'{"rows": null}', Refusal(422, None, None, "'rows' is null", NON_EMPTY_ROWS), id="rows-null"),
        pytest.param(
            b'{"rows": "30,Paris"}', Refusal(422, None, None, "'rows' is \"30,Paris\"", NON_EMPTY_ROWS), id="rows-a-string"
        ),
    ],
)
def test_body_that_is_not_a_rows_object_is_a_422(body: bytes, expected: Refusal, schema: RowSchema) -> None:
    assert refusal(body, schema) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b'{"rows": [[30, "Paris", 1.0], [41, "Lyon"]]}',
            Refusal(422, 1, None, "the row has 2 values", IN_ORDER),
            id="row-too-short",
        ),
        pytest.param(
            b'{"rows": [[30, "Paris", 1.0, 7]]}',
            Refusal(422, 0, None, "the row has 4 values", IN_ORDER),
            id="row-too-long",
        ),
        pytest.param(
            b'{"rows": [[30, "Paris", 1.0], 5]}',
            Refusal(422, 1, None, "the row is 5", "a list of values or an object of feature: value"),
            id="row-a-number",
        ),
        pytest.param(
            b'{"rows": [{"age": 30, "city": "Paris", "income": 1.0, "zip": "75001"}]}',
            Refusal(422, 0, "zip", "unknown feature", "one of ['age', 'city', 'income']"),
            id="unknown-feature-name",
        ),
        pytest.param(
            b'{"rows": [{"age": 30, "city": "Paris", "income": 1.0}, {"age": 41, "city": "Lyon"}]}',
            Refusal(422, 1, "income", "the feature is missing", "every feature present (null for a missing value)"),
            id="missing-feature-name",
        ),
        pytest.param(
            b'{"rows": [["thirty", "Paris", 1.0]]}',
            Refusal(422, 0, "age", 'got "thirty"', "a number"),
            id="string-for-number",
        ),
        pytest.param(
            b'{"rows": [[30, "Paris", 1.0], [41, "Lyon", true]]}',
            Refusal(422, 1, "income", "got true", "a number"),
            id="bool-for-number",
        ),
        pytest.param(
            b'{"rows": [[[30], "Paris", 1.0]]}',
            Refusal(422, 0, "age", "got a list", "a number"),
            id="list-for-number",
        ),
        pytest.param(b'{"rows": [[NaN, "Paris", 1.0]]}', Refusal(422, 0, "age", "NaN is not allowed", FINITE), id="NaN"),
        pytest.param(
            b'{"rows": [[30, "Paris", 1.0], [41, "Lyon", Infinity]]}',
            Refusal(422, 1, "income", "Infinity is not allowed", FINITE),
            id="Infinity",
        ),
        pytest.param(
            b'{"rows": [{"age": -Infinity, "city": "Paris", "income": 1.0}]}',
            Refusal(422, 0, "age", "-Infinity is not allowed", FINITE),
            id="minus-Infinity",
        ),
        pytest.param(b'{"rows": [[30, NaN, 1.0]]}', Refusal(422, 0, "city", "NaN is not allowed", FINITE), id="NaN-as-category"),
        pytest.param(
            b'{"rows": [[30, {"name": "Paris"}, 1.0]]}',
            Refusal(422, 0, "city", "got an object", CATEGORY),
            id="object-as-category",
        ),
        pytest.param(b'{"rows": [[30, ["Paris"], 1.0]]}', Refusal(422, 0, "city", "got a list", CATEGORY), id="list-as-category"),
    ],
)
def test_row_that_does_not_fit_the_reference_is_a_422(body: bytes, expected: Refusal, schema: RowSchema) -> None:
    assert refusal(body, schema) == expected


def test_long_values_are_shortened_in_the_problem(schema: RowSchema) -> None:
    body = b'{"rows": [[30, "Paris", "' + b"y" * 100 + b'"]]}'

    assert refusal(body, schema).problem == 'got "' + "y" * 36 + "..."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b'{"rows": [[null, "Paris", 1.0]]}',
            Refusal(422, 0, "age", "a missing value (null) is not allowed", "a number"),
            id="null-number",
        ),
        pytest.param(
            b'{"rows": [[30, null, 1.0]]}',
            Refusal(422, 0, "city", "a missing value (null) is not allowed", "a category"),
            id="null-category",
        ),
    ],
)
def test_null_is_refused_when_missing_values_are_not_allowed(body: bytes, expected: Refusal) -> None:
    strict = RowSchema(names=("age", "city", "income"), numeric=(True, False, True), allow_missing=False)

    assert refusal(body, strict) == expected


def test_more_rows_than_max_rows_is_a_413() -> None:
    small = RowSchema(names=("age", "city", "income"), numeric=(True, False, True), max_rows=3)
    body = b'{"rows": [' + b", ".join([b'[30, "Paris", 1.0]'] * 4) + b"]}"

    assert refusal(body, small) == Refusal(413, None, None, "4 rows in one request", "at most 3 rows per request")


def test_exactly_max_rows_is_accepted() -> None:
    small = RowSchema(names=("age", "city", "income"), numeric=(True, False, True), max_rows=3)

    assert len(parse(b'{"rows": [' + b", ".join([b'[30, "Paris", 1.0]'] * 3) + b"]}", small)) == 3


def test_problems_are_collected_across_rows(schema: RowSchema) -> None:
    with pytest.raises(InputError) as info:
        parse(b'{"rows": [["x", "Paris", 1.0], [30, "Lyon", 2.0], [31, "Nice", "y"]]}', schema)

    assert [(p.row, p.feature) for p in info.value.problems] == [(0, "age"), (2, "income")]


def test_at_most_20_problems_are_reported(schema: RowSchema) -> None:
    body = b'{"rows": [' + b", ".join([b'["x", "Paris", "y"]'] * 30) + b"]}"

    with pytest.raises(InputError) as info:
        parse(body, schema)

    assert MAX_PROBLEMS == 20
    assert len(info.value.problems) == 20
    assert [(p.row, p.feature) for p in info.value.problems[:3]] == [(0, "age"), (0, "income"), (1, "age")]
    assert str(info.value).endswith("(and 19 more problems)")


def test_a_dict_row_reports_at_most_three_unknown_features(schema: RowSchema) -> None:
    body = b'{"rows": [{"age": 1, "city": "a", "income": 2, "u": 0, "v": 0, "w": 0, "x": 0}]}'

    with pytest.raises(InputError) as info:
        parse(body, schema)

    assert [p.problem for p in info.value.problems] == ["unknown feature"] * 3


def test_the_message_of_a_refusal_reads_as_a_sentence(schema: RowSchema) -> None:
    with pytest.raises(InputError, match=r"^row 0, feature 'age': got \"abc\"; expected a number$"):
        parse(b'{"rows": [["abc", "Paris", 1.0]]}', schema)


# --- good inputs ---------------------------------------------------------------------------------------------------


def test_list_rows_are_returned_in_feature_order(schema: RowSchema) -> None:
    assert parse(b'{"rows": [[30, "Paris", 1200.5], [41, "Lyon", 0.0]]}', schema) == [[30, "Paris", 1200.5], [41, "Lyon", 0.0]]


def test_dict_rows_are_reordered_to_feature_order(schema: RowSchema) -> None:
    assert parse(b'{"rows": [{"income": 1200.5, "city": "Paris", "age": 30}]}', schema) == [[30, "Paris", 1200.5]]


def test_list_and_dict_rows_can_be_mixed(schema: RowSchema) -> None:
    body = b'{"rows": [[30, "Paris", 1.0], {"city": "Lyon", "income": 2.0, "age": 41}]}'

    assert parse(body, schema) == [[30, "Paris", 1.0], [41, "Lyon", 2.0]]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"rows": [30, "Paris", 1200.5]}', id="bare-list-row"),
        pytest.param(b'{"rows": {"city": "Paris", "age": 30, "income": 1200.5}}', id="bare-dict-row"),
    ],
)
def test_a_single_bare_row_is_one_row(body: bytes, schema: RowSchema) -> None:
    assert parse(body, schema) == [[30, "Paris", 1200.5]]


def test_a_bare_row_starting_with_null_is_one_row(schema: RowSchema) -> None:
    assert parse(b'{"rows": [null, "Paris", 1200.5]}', schema) == [[None, "Paris", 1200.5]]


def test_null_is_allowed_by_default_for_every_kind_of_feature(schema: RowSchema) -> None:
    assert parse(b'{"rows": [[null, null, null]]}', schema) == [[None, None, None]]


def test_integers_are_accepted_as_numbers_and_kept_as_given(schema: RowSchema) -> None:
    rows = parse(b'{"rows": [[30, "Paris", 1200]]}', schema)

    assert rows == [[30, "Paris", 1200]]
    assert [type(v) for v in rows[0]] == [int, str, int]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        pytest.param(b"75001", 75001, id="integer"),
        pytest.param(b"2.5", 2.5, id="float"),
        pytest.param(b"true", True, id="boolean"),
        pytest.param(b'""', "", id="empty-string"),
    ],
)
def test_numbers_and_booleans_are_accepted_as_categories(literal: bytes, value: object, schema: RowSchema) -> None:
    assert parse(b'{"rows": [[30, ' + literal + b", 1.0]]}", schema) == [[30, value, 1.0]]


def test_a_utf8_body_with_non_ascii_categories_is_accepted(schema: RowSchema) -> None:
    assert parse('{"rows": [[30, "Orléans", 1.0]]}'.encode(), schema) == [[30, "Orléans", 1.0]]


# --- RowSchema -------------------------------------------------------------------------------------------------------


def test_schema_from_reference_takes_names_kinds_and_limits() -> None:
    reference = Reference.from_data([{"age": 30, "city": "Paris", "income": 1200.5}, {"age": 41, "city": "Lyon", "income": 0.0}])

    schema = RowSchema.from_reference(reference, allow_missing=False, max_rows=10)

    assert schema == RowSchema(
        names=("age", "city", "income"),
        numeric=(True, False, True),
        allow_missing=False,
        max_rows=10,
        types=(frozenset({int, float}), frozenset({str}), frozenset({int, float})),
        limits=(41e9, math.inf, 1200.5e9),
    )


def test_a_schema_without_types_or_limits_takes_any_finite_number_and_any_category() -> None:
    schema = RowSchema(names=("age", "city"), numeric=(True, False))

    assert schema.types == (frozenset({int, float}), frozenset({str, int, float, bool}))
    assert schema.limits == (sys.float_info.max, math.inf)


# --- types and magnitudes from the reference -------------------------------------------------------------------------


@pytest.fixture
def from_reference() -> RowSchema:
    """age and income numeric (largest magnitudes 41 and 0.5), city a string category, rooms an integer category."""
    rows = [
        {"age": 30, "city": "Paris", "rooms": 2, "income": 0.5},
        {"age": -41, "city": "Lyon", "rooms": 3, "income": 0.25},
    ]
    return RowSchema.from_reference(Reference.from_data(rows, categorical=["rooms"]))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param(
            b"[30, 75001, 2, 0.5]",
            Refusal(422, 0, "city", "got 75001", "a category given as a string, as the reference's are"),
            id="a-number-for-string-categories",
        ),
        pytest.param(
            b"[30, true, 2, 0.5]",
            Refusal(422, 0, "city", "got true", "a category given as a string, as the reference's are"),
            id="a-boolean-for-string-categories",
        ),
        pytest.param(
            b'[30, "Paris", "two", 0.5]',
            Refusal(422, 0, "rooms", 'got "two"', "a category given as a number, as the reference's are"),
            id="a-string-for-number-categories",
        ),
        pytest.param(
            b'[1e308, "Paris", 2, 0.5]',
            Refusal(
                422,
                0,
                "age",
                "got 1e+308, far beyond the reference's values",
                "a number within ±4.1e+10 (10^9 times the reference's largest magnitude, at least 1)",
            ),
            id="1e308-for-a-feature-up-to-41",
        ),
        pytest.param(
            b'[30, "Paris", 2, -1000000001]',
            Refusal(
                422,
                0,
                "income",
                "got -1000000001, far beyond the reference's values",
                "a number within ±1e+09 (10^9 times the reference's largest magnitude, at least 1)",
            ),
            id="an-integer-beyond-1e9-for-a-feature-below-1",
        ),
    ],
)
def test_values_a_model_trained_on_the_reference_would_fail_on_are_refused(
    row: bytes, expected: Refusal, from_reference: RowSchema
) -> None:
    assert refusal(b'{"rows": [' + row + b"]}", from_reference) == expected


def test_a_wrong_type_is_a_problem_of_kind_type_and_a_number_far_beyond_of_kind_range(from_reference: RowSchema) -> None:
    with pytest.raises(InputError) as info:
        parse(b'{"rows": [[30, 75001, 2, 1e300]]}', from_reference)

    # data quality counts both per feature (drift.quality), so each must say which it is
    assert [(p.feature, p.kind) for p in info.value.problems] == [("city", "type"), ("income", "range")]


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(b'[30000, "Paris", 2, 500]', id="a-unit-changed-x1000"),
        pytest.param(b'[-41e9, "Marseille", 7, 1e9]', id="at-the-limits-and-unseen-categories"),
        pytest.param(b"[null, null, null, null]", id="all-missing"),
        pytest.param(b'[30, "Paris", 2.5, 0.5]', id="a-float-for-integer-categories"),
    ],
)
def test_plausible_values_outside_the_reference_still_pass(row: bytes, from_reference: RowSchema) -> None:
    assert len(parse(b'{"rows": [' + row + b"]}", from_reference)) == 1


def test_an_all_numeric_matrix_is_held_to_each_features_limit() -> None:
    schema = RowSchema.from_reference(Reference.from_data(np.array([[1.0, 100.0], [2.0, 300.0]])))

    assert parse_table(parse_json(b'{"rows": [[2e9, 3e11]]}'), schema).matrix is not None
    with pytest.raises(InputError, match="row 1, feature 'f0'"):
        parse_table(parse_json(b'{"rows": [[1, 1], [2.1e9, 1]]}'), schema)


@pytest.mark.parametrize(
    ("numeric", "all_numeric"),
    [pytest.param((True, True), True, id="all-numeric"), pytest.param((True, False), False, id="one-categorical")],
)
def test_schema_all_numeric(numeric: tuple[bool, ...], all_numeric: bool) -> None:
    assert RowSchema(names=("a", "b"), numeric=numeric).all_numeric is all_numeric


NUMERIC = RowSchema(names=("a", "b"), numeric=(True, True))


def test_numeric_rows_become_one_float_matrix_with_nan_for_missing() -> None:
    table = parse_table(parse_json(b'{"rows": [[1, 2.5], [null, -3]]}'), NUMERIC)
    assert table.verbatim
    assert table.matrix is not None
    np.testing.assert_array_equal(table.matrix, np.array([[1.0, 2.5], [np.nan, -3.0]]))
    assert table.rows == [[1, 2.5], [None, -3]]


@pytest.mark.parametrize(
    ("body", "verbatim"),
    [
        pytest.param(b'{"rows": [[1, 2]]}', True, id="lists"),
        pytest.param(b'{"rows": [1, 2]}', False, id="a-bare-row"),
        pytest.param(b'{"rows": [{"b": 2, "a": 1}]}', False, id="objects"),
        pytest.param(b'{"rows": [[1, 2], {"a": 1, "b": 2}]}', False, id="mixed"),
    ],
)
def test_only_rows_sent_as_lists_in_order_are_verbatim(body: bytes, verbatim: bool) -> None:
    table = parse_table(parse_json(body), NUMERIC)
    assert table.verbatim is verbatim
    assert table.rows[0] == [1, 2]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param(b' { "rows" : [ [1, 2.50], [null, 3e2] ] } ', "[ [1, 2.50], [null, 3e2] ]", id="spaces-kept"),
        pytest.param(b'{"rows": [[1, 2]], "rows": [[3, 4]]}', None, id="repeated-key"),
        pytest.param(b'{"rows": [["x", 2]]}', None, id="a-string"),
    ],
)
def test_the_rows_text_is_the_clients_own_array_or_nothing(body: bytes, text: str | None) -> None:
    assert rows_text(body) == text


def test_an_out_of_range_number_in_a_numeric_row_is_still_named() -> None:
    with pytest.raises(InputError, match="feature 'b'"):
        parse_table(parse_json(b'{"rows": [[1, 1e400]]}'), NUMERIC)
    with pytest.raises(InputError, match="feature 'a'"):
        parse_table(parse_json(b'{"rows": [[' + b"9" * 400 + b", 1]]}"), NUMERIC)


def test_a_nan_among_missing_values_of_a_mixed_table_is_still_named(schema: RowSchema) -> None:
    """The numbers of a mixed table are checked at once, Nones becoming NaN there: a NaN given beside them (a
    document decoded by a parser that takes NaN) is told apart by counting the Nones, and named; Nones alone pass."""
    rows: list[list[Any]] = [[30, "Paris", None], [None, "Lyon", 2.0], [None, None, None]]

    assert parse_table({"rows": rows}, schema).rows[1] == [None, "Lyon", 2.0]
    with pytest.raises(InputError) as info:
        parse_table({"rows": [*rows, [41, "Nice", float("nan")]]}, schema)
    assert [(p.row, p.feature, p.problem) for p in info.value.problems] == [(3, "income", "got NaN, which is not a finite float")]
    huge = Refusal(422, 3, "age", "got Infinity, which is not a finite float", "a finite number within ±1.8e308")
    body = b'{"rows": [[30, "Paris", null], [null, "Lyon", 2.0], [null, null, null], [1e400, "Nice", 1]]}'
    assert refusal(body, schema) == huge


@pytest.mark.parametrize(
    ("names", "numeric", "rows", "expected"),
    [
        pytest.param(("a",), (True,), [{"a": 1.5}, {"a": None}], [[1.5], [None]], id="one-feature"),
        pytest.param(("a", "b"), (True, False), [{"b": "x", "a": 2}, {"a": None, "b": None}], [[2, "x"], [None, None]], id="two"),
    ],
)
def test_row_objects_are_taken_in_feature_order_whatever_their_width(
    names: tuple[str, ...], numeric: tuple[bool, ...], rows: list[dict[str, Any]], expected: list[list[Any]]
) -> None:
    assert parse_table({"rows": rows}, RowSchema(names=names, numeric=numeric)).rows == expected
