"""The window: rows encoded as numbers, newest chunks assembled up to capacity, memory that stays bounded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from guarded_serving import Reference
from guarded_serving.drift import Baseline, Chunk, Encoder, MemoryWindow, assemble
from guarded_serving.drift.encoder import MAX_UNSEEN_NAMES, output_rows
from guarded_serving.drift.encoder import _categories_one_by_one as categories_one_by_one
from guarded_serving.drift.window import BLOCK_ROWS, UNSEEN, merge_chunks, newest_rows

NAN = np.nan


@pytest.fixture
def ab_baseline() -> Baseline:
    """Two numeric features, a and b."""
    reference = Reference.from_data([[float(i), float(2 * i)] for i in range(20)], feature_names=["a", "b"])
    return Baseline.from_profiles(reference.features)


@pytest.fixture
def x_colour_baseline() -> Baseline:
    """A numeric feature x and a categorical feature colour with codes red 0, green 1, blue 2 (most common first)."""
    colours = ["red"] * 5 + ["green"] * 3 + ["blue"] * 2
    reference = Reference.from_data([[float(i), c] for i, c in enumerate(colours)], feature_names=["x", "colour"])
    return Baseline.from_profiles(reference.features)


def encode(baseline: Baseline, rows: list[list[Any]]) -> tuple[np.ndarray, dict[int, dict[str, int]], dict[int, int]]:
    unseen: dict[int, dict[str, int]] = {}
    errors: dict[int, int] = {}
    matrix = Encoder(baseline).encode(rows, unseen, errors)
    return matrix, unseen, errors


def chunk(values: list[float], unseen: dict[int, dict[str, int]] | None = None, errors: dict[int, int] | None = None) -> Chunk:
    """A one-feature chunk holding ``values``."""
    return Chunk(np.array(values, dtype=float).reshape(-1, 1), None, unseen or {}, errors or {})


# -- Encoder -------------------------------------------------------------------------------------------------------


def test_numeric_rows_become_a_float_matrix_with_nan_for_missing(ab_baseline: Baseline) -> None:
    matrix, unseen, errors = encode(ab_baseline, [[1.5, None], [None, 2], [3, 4.25]])

    np.testing.assert_array_equal(matrix, [[1.5, NAN], [NAN, 2.0], [3.0, 4.25]])
    assert matrix.dtype == np.float64
    assert (unseen, errors) == ({}, {})


def test_numeric_values_of_a_mixed_reference_are_kept_and_missing_ones_are_nan(x_colour_baseline: Baseline) -> None:
    matrix, _, errors = encode(x_colour_baseline, [[7.5, "red"], [None, "red"]])

    np.testing.assert_array_equal(matrix[:, 0], [7.5, NAN])
    assert errors == {}


def test_categories_become_their_reference_codes(x_colour_baseline: Baseline) -> None:
    matrix, unseen, errors = encode(x_colour_baseline, [[0.0, "red"], [0.0, "green"], [0.0, "blue"], [0.0, None]])

    np.testing.assert_array_equal(matrix[:, 1], [0.0, 1.0, 2.0, NAN])
    assert (unseen, errors) == ({}, {})


def test_unseen_categories_become_minus_one_and_their_names_are_counted(x_colour_baseline: Baseline) -> None:
    matrix, unseen, errors = encode(x_colour_baseline, [[0.0, "purple"], [0.0, "red"], [0.0, "purple"], [0.0, "teal"]])

    np.testing.assert_array_equal(matrix[:, 1], [UNSEEN, 0.0, UNSEEN, UNSEEN])
    assert unseen == {1: {"purple": 2, "teal": 1}}
    assert errors == {}


@pytest.mark.parametrize("value", [1, 2.0, np.int64(3), True], ids=["int", "float", "numpy-int", "bool"])
def test_a_number_in_a_column_of_text_categories_is_a_wrong_type_not_a_new_category(value: object) -> None:
    """Codes "1", "2", "3" in the reference (a CSV read as text) and 1 served: a type change, which the HTTP
    service refuses with a 422; counted as unseen categories it read as 100 % new values, their fingerprints
    hiding why."""
    reference = Reference.from_data([[float(i), str(i % 3 + 1)] for i in range(30)], feature_names=["x", "code"])
    baseline = Baseline.from_profiles(reference.features)

    matrix, unseen, errors = encode(baseline, [[0.0, "1"], [0.0, value], [0.0, "9"]])

    np.testing.assert_array_equal(matrix[:, 1], [baseline.codes[0]["1"], NAN, UNSEEN])
    assert errors == {1: 1}
    assert unseen == {1: {"9": 1}}


def test_numbers_stay_categories_where_the_reference_holds_numbers_as_categories() -> None:
    reference = Reference.from_data([[float(i), [1, "a"][i % 2]] for i in range(30)], feature_names=["x", "mixed"])
    baseline = Baseline.from_profiles(reference.features)

    matrix, unseen, errors = encode(baseline, [[0.0, 1], [0.0, 7]])

    assert matrix[0, 1] == baseline.codes[0][1]
    assert matrix[1, 1] == UNSEEN
    assert (errors, list(unseen)) == ({}, [1])


def test_unseen_names_are_bounded_per_feature_and_chunk(x_colour_baseline: Baseline) -> None:
    rows: list[list[Any]] = [[0.0, f"level-{i}"] for i in range(MAX_UNSEEN_NAMES + 30)]

    matrix, unseen, _ = encode(x_colour_baseline, rows)

    assert (matrix[:, 1] == UNSEEN).all()
    assert len(unseen[1]) == MAX_UNSEEN_NAMES


@pytest.mark.parametrize("baseline_name", ["ab_baseline", "x_colour_baseline"], ids=["all-numeric", "mixed"])
@pytest.mark.parametrize("value", ["abc", "3", True, [1.0]], ids=["word", "numeric-string", "bool", "list"])
def test_a_value_of_the_wrong_type_in_a_numeric_column_is_counted_and_missing(
    baseline_name: str, value: object, request: pytest.FixtureRequest
) -> None:
    baseline: Baseline = request.getfixturevalue(baseline_name)
    row: list[Any] = [value, 1.0] if baseline_name == "ab_baseline" else [value, "red"]

    matrix, _, errors = encode(baseline, [[2.0, row[1]], row])

    np.testing.assert_array_equal(matrix[:, 0], [2.0, NAN])
    assert errors == {0: 1}


def test_an_unhashable_value_for_a_category_counts_a_type_error(x_colour_baseline: Baseline) -> None:
    matrix, unseen, errors = encode(x_colour_baseline, [[0.0, ["red"]], [0.0, {"colour": "red"}], [0.0, "red"]])

    np.testing.assert_array_equal(matrix[:, 1], [np.nan, np.nan, 0.0])  # a wrong type, not an unseen category
    assert errors == {1: 2}
    assert unseen == {}


MIXED_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=False, width=64),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.sampled_from(["red", "green", "blue", "purple", "1", "a"]),
    st.sampled_from([1, 2, 7]),
    st.builds(np.float64, st.floats(-10, 10)),
    st.just([1.0]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(MIXED_VALUES, min_size=5, max_size=5), min_size=1, max_size=12), st.booleans())
@example([[0.5, "red", 1.0, 1, 2.0]], True)  # every value plain and known: the columns at once
def test_a_mixed_table_is_encoded_at_once_as_it_is_value_by_value(rows: list[list[Any]], plain_first: bool) -> None:
    """Numbers of a mixed table and known categories are converted a column at a time (a 64-row request of 18
    numbers and 2 categories: ~0.5 ms value by value); whatever the values, the matrix, the unseen names and the
    type errors are those of looking at each value alone."""
    codes = ["red", "green", "blue"] * 10
    mixed = [1, "a", 2] * 10
    data = [[float(i), codes[i], float(i % 7), mixed[i], float(-i)] for i in range(30)]
    baseline = Baseline.from_profiles(Reference.from_data(data, feature_names=["x", "colour", "y", "code", "z"]).features)
    if plain_first:
        rows = [[1.5, "green", 2.0, "a", -1.0], *rows]
    encoder = Encoder(baseline)

    matrix, unseen, errors = encode(baseline, rows)

    expected = np.empty_like(matrix)
    expected_unseen: dict[int, dict[str, int]] = {}
    expected_errors: dict[int, int] = {}
    encoder._numbers_one_by_one(rows, expected, expected_errors)
    for j, column_codes, text in encoder._columns:
        categories_one_by_one([row[j] for row in rows], j, column_codes, text, expected, expected_unseen, expected_errors)
    np.testing.assert_array_equal(matrix, expected)
    assert (unseen, errors) == (expected_unseen, expected_errors)


# -- output_rows ---------------------------------------------------------------------------------------------------


def test_scalar_outputs_become_one_value_rows() -> None:
    assert output_rows([0.25, 1, None], 1) == [[0.25], [1], [None]]


def test_output_rows_are_padded_with_none_or_cut_to_the_width() -> None:
    assert output_rows([[0.1, 0.9], [0.2], (0.3, 0.3, 0.4), 5.0], 2) == [[0.1, 0.9], [0.2, None], [0.3, 0.3], [5.0, None]]


# -- assemble ------------------------------------------------------------------------------------------------------


def test_assemble_takes_the_newest_rows_up_to_capacity_oldest_first() -> None:
    newest_first = [chunk([6, 7, 8]), chunk([3, 4, 5]), chunk([0, 1, 2])]

    window = assemble(newest_first, capacity=5, width=1, output_width=None)

    assert window.inputs[:, 0].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert window.rows == 5
    assert window.outputs is None


def test_assemble_holds_everything_when_under_capacity() -> None:
    window = assemble([chunk([2, 3]), chunk([1])], capacity=10, width=1, output_width=None)

    assert window.inputs[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_assemble_merges_unseen_names_and_type_errors_of_the_chunks_it_takes() -> None:
    newest_first = [
        chunk([3, 4], unseen={0: {"zulu": 2}}, errors={0: 1}),
        chunk([1, 2], unseen={0: {"zulu": 1, "yankee": 1}}, errors={0: 2}),
        chunk([0], unseen={0: {"xray": 5}}, errors={0: 7}),  # beyond capacity: not counted
    ]

    window = assemble(newest_first, capacity=4, width=1, output_width=None)

    assert window.unseen == {0: {"zulu": 3, "yankee": 1}}
    assert window.type_errors == {0: 3}


def test_assemble_keeps_outputs_aligned_with_inputs() -> None:
    newest_first = [
        Chunk(np.array([[2.0], [3.0]]), np.array([[0.2], [0.3]])),
        Chunk(np.array([[1.0]]), np.array([[0.1]])),
    ]

    window = assemble(newest_first, capacity=2, width=1, output_width=1)

    assert window.inputs[:, 0].tolist() == [2.0, 3.0]
    assert window.outputs is not None
    assert window.outputs[:, 0].tolist() == [0.2, 0.3]


def test_assemble_of_no_chunks_is_an_empty_window_of_the_right_width() -> None:
    window = assemble([], capacity=10, width=3, output_width=2)

    assert window.inputs.shape == (0, 3)
    assert window.outputs is not None
    assert window.outputs.shape == (0, 2)
    assert (window.unseen, window.type_errors) == ({}, {})


# -- MemoryWindow --------------------------------------------------------------------------------------------------


def test_memory_window_stays_bounded_over_many_one_row_chunks() -> None:
    window = MemoryWindow(capacity=100)

    for i in range(10_000):
        window.add(chunk([float(i)]))

    held = window.newest_first()
    assert sum(c.rows for c in held) <= 100 + 1
    assert window.rows == 100
    assert assemble(held, 100, 1, None).inputs[:, 0].tolist() == [float(i) for i in range(9_900, 10_000)]


def test_memory_window_of_uneven_chunks_holds_capacity_plus_at_most_one_chunk() -> None:
    rng = np.random.default_rng(11)
    window = MemoryWindow(capacity=250)
    sizes = rng.integers(1, 60, 2_000)

    for size in sizes:
        window.add(chunk([0.0] * int(size)))
        held = sum(c.rows for c in window.newest_first())
        assert held - window.newest_first()[-1].rows < 250

    assert window.rows == 250
    assert sum(c.rows for c in window.newest_first()) < 250 + int(sizes.max())


def test_memory_window_reports_the_rows_it_holds_before_it_fills() -> None:
    window = MemoryWindow(capacity=100)

    window.add(chunk([1.0, 2.0, 3.0]))

    assert window.rows == 3


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 90), min_size=1, max_size=60),
    flagged=st.sets(st.integers(0, 59)),
    without_outputs=st.sets(st.integers(0, 59)),
    reads=st.sets(st.integers(0, 59)),
    capacity=st.integers(1, 300),
)
@example(sizes=[1] * 30, flagged=set(range(0, 30, 3)), without_outputs=set(), reads=set(range(30)), capacity=10)
def test_a_window_of_merged_blocks_assembles_what_the_chunks_alone_would(
    sizes: list[int], flagged: set[int], without_outputs: set[int], reads: set[int], capacity: int
) -> None:
    """Small chunks are merged into blocks as the window is read; the window assembled from the blocks is the one
    assembled from every chunk kept apart: the same rows, outputs, unseen names and type errors."""
    rng = np.random.default_rng(sum(sizes) + capacity)
    window = MemoryWindow(capacity)
    every: list[Chunk] = []
    for i, n in enumerate(sizes):
        part = Chunk(
            rng.normal(size=(n, 2)),
            None if i in without_outputs else rng.normal(size=(n, 1)),
            {1: {f"city{i}": 1}} if i in flagged else {},
            {0: 1} if i in flagged and i % 2 else {},
        )
        every.append(part)
        window.add(part)
        if i in reads or i == len(sizes) - 1:
            got = assemble(window.newest_first(), capacity, 2, 1)
            expected = assemble(reversed(every), capacity, 2, 1)
            assert got.inputs.tolist() == expected.inputs.tolist()
            assert got.outputs is not None
            assert expected.outputs is not None
            assert got.outputs.tolist() == expected.outputs.tolist()
            assert (got.unseen, got.type_errors) == (expected.unseen, expected.type_errors)
    held = window.newest_first()
    assert sum(c.rows for c in held) - held[-1].rows < capacity  # whole entries beyond the capacity are let go


def test_one_row_chunks_read_between_requests_become_blocks() -> None:
    window = MemoryWindow(capacity=2_000)

    for i in range(5_000):
        window.add(chunk([float(i)]))
        if i % 7 == 0:
            window.newest_first()

    held = window.newest_first()
    assert len(held) <= 2_000 // BLOCK_ROWS + 2
    assert assemble(held, 2_000, 1, None).inputs[:, 0].tolist() == [float(i) for i in range(3_000, 5_000)]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    without_outputs=st.sets(st.integers(0, 7)),
    keep=st.integers(1, 120),
)
def test_newest_rows_is_the_tail_of_all_parts_merged(sizes: list[int], without_outputs: set[int], keep: int) -> None:
    rng = np.random.default_rng(len(sizes) * 1000 + keep)
    parts = [
        Chunk(
            rng.normal(size=(n, 3)),
            None if i in without_outputs else rng.normal(size=(n, 1)),
            {1: {f"city{i}": n}},
            {2: i},
        )
        for i, n in enumerate(sizes)
    ]
    whole = merge_chunks(parts)
    expected = whole.tail(keep) if whole.rows > keep else whole
    got = newest_rows(parts, keep)
    assert got.inputs.tolist() == expected.inputs.tolist()
    assert (got.outputs is None) == (expected.outputs is None)
    if got.outputs is not None and expected.outputs is not None:
        assert got.outputs.tolist() == expected.outputs.tolist()
    assert got.unseen == expected.unseen
    assert got.type_errors == expected.type_errors
