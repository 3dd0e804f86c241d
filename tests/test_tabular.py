"""Training data in any common shape becomes named, typed columns, and validated rows become model input again."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.errors import ConfigurationError
from guarded_serving.tabular import Columns, columns_from_data, is_missing, to_model_input


def as_lists(columns: Columns) -> list[list[Any]]:
    """Column values as plain lists, with NaN spelled as the string 'nan' so that lists compare equal."""
    return [["nan" if isinstance(v, float) and math.isnan(v) else v for v in column.tolist()] for column in columns.values]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31, 45, 27],
            "income": [1200.5, None, 3100.0],
            "city": ["Paris", "Lyon", None],
            "plan": pd.Categorical(["basic", "pro", "basic"]),
        }
    )


# --- numpy arrays ----------------------------------------------------------------------------------------------


def test_numeric_array_gives_float_columns_named_f0_f1() -> None:
    columns = columns_from_data(np.array([[1, 2], [3, 4], [5, 6]]))

    assert columns.names == ("f0", "f1")
    assert columns.categorical == (False, False)
    assert [c.dtype for c in columns.values] == [np.float64, np.float64]
    assert as_lists(columns) == [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]


def test_array_input_format_is_array() -> None:
    assert columns_from_data(np.zeros((2, 3))).input_format == "array"


def test_rows_counts_the_rows() -> None:
    assert columns_from_data(np.zeros((7, 2))).rows == 7


def test_nan_in_a_numeric_array_stays_nan() -> None:
    columns = columns_from_data(np.array([[1.0], [np.nan]]))

    assert as_lists(columns) == [[1.0, "nan"]]


def test_string_array_is_categorical() -> None:
    columns = columns_from_data(np.array([["a", "x"], ["b", "y"]]))

    assert columns.categorical == (True, True)
    assert as_lists(columns) == [["a", "b"], ["x", "y"]]


def test_one_dimensional_array_is_rejected_with_its_shape() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^reference: expected a 2-D array \(rows x features\), got 'array of shape \(3,\)'$"
    ):
        columns_from_data(np.array([1.0, 2.0, 3.0]))


def test_three_dimensional_array_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"array of shape \(2, 2, 2\)"):
        columns_from_data(np.zeros((2, 2, 2)))


# --- lists of lists ----------------------------------------------------------------------------------------------


def test_list_of_lists_gives_numeric_columns() -> None:
    columns = columns_from_data([[1, 2.5], [3, 4.5]])

    assert columns.categorical == (False, False)
    assert as_lists(columns) == [[1.0, 3.0], [2.5, 4.5]]
    assert columns.input_format == "array"


def test_mixed_list_of_lists_makes_the_string_column_categorical() -> None:
    columns = columns_from_data([[30, "Paris"], [40, "Lyon"]])

    assert columns.categorical == (False, True)
    assert as_lists(columns) == [[30.0, 40.0], ["Paris", "Lyon"]]


def test_a_single_string_makes_a_column_categorical() -> None:
    columns = columns_from_data([[1], [2], ["three"]])

    assert columns.categorical == (True,)
    assert as_lists(columns) == [[1, 2, "three"]]


def test_none_in_a_numeric_list_column_becomes_nan() -> None:
    columns = columns_from_data([[1.0], [None]])

    assert columns.categorical == (False,)
    assert as_lists(columns) == [[1.0, "nan"]]


def test_none_in_a_categorical_column_stays_none() -> None:
    columns = columns_from_data([["a"], [None]])

    assert as_lists(columns) == [["a", None]]


def test_ragged_list_of_lists_names_the_bad_row() -> None:
    with pytest.raises(ConfigurationError, match=r"^reference row 1: expected a list of 2 values like the first row, got \[3\]$"):
        columns_from_data([[1, 2], [3]])


def test_list_of_scalars_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"^reference: expected rows as lists or dicts \(a list of rows\), got 1$"):
        columns_from_data([1, 2, 3])


# --- lists of dicts ----------------------------------------------------------------------------------------------


def test_list_of_dicts_takes_names_from_keys_in_first_seen_order() -> None:
    columns = columns_from_data([{"age": 30, "city": "Paris"}, {"city": "Lyon", "age": 40, "income": 10.5}])

    assert columns.names == ("age", "city", "income")
    assert columns.categorical == (False, True, False)
    assert columns.input_format == "records"


def test_list_of_dicts_fills_absent_keys_as_missing() -> None:
    columns = columns_from_data([{"age": 30, "city": "Paris"}, {"city": "Lyon", "age": 40, "income": 10.5}])

    assert as_lists(columns) == [[30.0, 40.0], ["Paris", "Lyon"], ["nan", 10.5]]


def test_list_of_dicts_with_a_non_dict_row_names_the_row() -> None:
    with pytest.raises(ConfigurationError, match=r"^reference row 1: expected a dict like the first row, got \[1, 2\]$"):
        columns_from_data([{"a": 1}, [1, 2]])


# --- pandas DataFrames ---------------------------------------------------------------------------------------------


def test_dataframe_takes_names_from_columns(frame: pd.DataFrame) -> None:
    columns = columns_from_data(frame)

    assert columns.names == ("age", "income", "city", "plan")
    assert columns.input_format == "dataframe"


def test_dataframe_object_and_category_dtypes_are_categorical(frame: pd.DataFrame) -> None:
    assert columns_from_data(frame).categorical == (False, False, True, True)


def test_dataframe_values_are_floats_and_plain_python_categories(frame: pd.DataFrame) -> None:
    columns = columns_from_data(frame)

    assert as_lists(columns) == [[31.0, 45.0, 27.0], [1200.5, "nan", 3100.0], ["Paris", "Lyon", None], ["basic", "pro", "basic"]]


def test_dataframe_category_dtype_of_numbers_is_categorical() -> None:
    columns = columns_from_data(pd.DataFrame({"grade": pd.Categorical([1, 2, 1])}))

    assert columns.categorical == (True,)
    assert as_lists(columns) == [[1, 2, 1]]


def test_dataframe_nullable_integer_missing_becomes_nan() -> None:
    columns = columns_from_data(pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")}))

    assert columns.categorical == (False,)
    assert as_lists(columns) == [[1.0, "nan", 3.0]]


def test_empty_dataframe_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="expected at least one feature column"):
        columns_from_data(pd.DataFrame())


# --- categorical= and feature_names= --------------------------------------------------------------------------------


def test_categorical_by_name_forces_a_numeric_column_categorical() -> None:
    columns = columns_from_data([[1, 10.0], [2, 20.0]], feature_names=["zip", "amount"], categorical=["zip"])

    assert columns.categorical == (True, False)
    assert as_lists(columns) == [[1, 2], [10.0, 20.0]]


def test_categorical_by_index_forces_a_numeric_column_categorical() -> None:
    columns = columns_from_data(np.array([[1.0, 10.0], [2.0, 20.0]]), categorical=[1])

    assert columns.categorical == (False, True)
    assert as_lists(columns) == [[1.0, 2.0], [10.0, 20.0]]


def test_categorical_index_out_of_range_says_the_valid_range() -> None:
    with pytest.raises(ConfigurationError, match=r"^categorical: expected a feature index in 0\.\.1 or a name, got 2$"):
        columns_from_data(np.zeros((2, 2)), categorical=[2])


def test_categorical_unknown_name_lists_the_feature_names() -> None:
    with pytest.raises(ConfigurationError, match=r"^categorical: expected one of the feature names \['f0', 'f1'\], got 'zip'$"):
        columns_from_data(np.zeros((2, 2)), categorical=["zip"])


def test_feature_names_name_the_columns() -> None:
    assert columns_from_data(np.zeros((2, 2)), feature_names=["age", "income"]).names == ("age", "income")


def test_feature_names_override_dataframe_columns(frame: pd.DataFrame) -> None:
    assert columns_from_data(frame, feature_names=["a", "b", "c", "d"]).names == ("a", "b", "c", "d")


def test_feature_names_of_the_wrong_count_name_the_argument() -> None:
    with pytest.raises(ConfigurationError, match=r"^feature_names: expected 2 names, one per column, got \['age'\]$") as info:
        columns_from_data(np.zeros((3, 2)), feature_names=["age"])

    assert info.value.argument == "feature_names"


def test_duplicate_feature_names_are_rejected_and_named() -> None:
    with pytest.raises(ConfigurationError, match=r"^feature_names: expected unique feature names, got \['a'\]$"):
        columns_from_data(np.zeros((2, 3)), feature_names=["a", "b", "a"])


def test_duplicate_dataframe_columns_are_rejected() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["x", "x"])

    with pytest.raises(ConfigurationError, match=r"^feature_names: expected unique feature names, got \['x'\]$"):
        columns_from_data(frame)


# --- empty and unsupported data -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([], id="empty-list"),
        pytest.param((), id="empty-tuple"),
        pytest.param("a,b\n1,2", id="a-string"),
        pytest.param(None, id="none"),
        pytest.param({"a": [1, 2]}, id="dict-of-columns"),
    ],
)
def test_unsupported_or_empty_data_lists_the_accepted_shapes(data: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^reference: expected a saved reference path, a Reference, a 2-D numpy array"):
        columns_from_data(data)


def test_array_with_no_rows_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="expected at least one row"):
        columns_from_data(np.zeros((0, 3)))


def test_array_with_no_columns_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="expected at least one feature column"):
        columns_from_data(np.zeros((3, 0)))


# --- is_missing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "missing"),
    [
        pytest.param(None, True, id="none"),
        pytest.param(float("nan"), True, id="nan"),
        pytest.param(np.float32("nan"), True, id="numpy-nan"),
        pytest.param(pd.NA, True, id="pandas-NA"),
        pytest.param(pd.NaT, True, id="pandas-NaT"),
        pytest.param(0.0, False, id="zero"),
        pytest.param("", False, id="empty-string"),
        pytest.param("nan", False, id="the-string-nan"),
        pytest.param(False, False, id="false"),
    ],
)
def test_is_missing(value: object, missing: bool) -> None:
    assert is_missing(value) is missing


# --- to_model_input -------------------------------------------------------------------------------------------------


def test_numeric_rows_become_a_float_array_with_nan_for_missing() -> None:
    model_input = to_model_input([[1, 2.5], [None, 4]], ("a", "b"), all_numeric=True, input_format="array")

    assert isinstance(model_input, np.ndarray)
    assert model_input.dtype == np.float64
    np.testing.assert_array_equal(model_input, np.array([[1.0, 2.5], [np.nan, 4.0]]))


def test_mixed_rows_become_an_object_array_keeping_values() -> None:
    model_input = to_model_input([[30, "Paris"], [None, "Lyon"]], ("age", "city"), all_numeric=False, input_format="array")

    assert model_input.dtype == object
    assert model_input.shape == (2, 2)
    assert model_input.tolist() == [[30, "Paris"], [None, "Lyon"]]


def test_records_format_gives_one_dict_per_row() -> None:
    model_input = to_model_input([[30, "Paris"], [None, "Lyon"]], ("age", "city"), all_numeric=False, input_format="records")

    assert model_input == [{"age": 30, "city": "Paris"}, {"age": None, "city": "Lyon"}]


def test_dataframe_format_gives_a_frame_with_the_reference_columns() -> None:
    model_input = to_model_input([[30, "Paris"], [41, "Lyon"]], ("age", "city"), all_numeric=False, input_format="dataframe")

    assert isinstance(model_input, pd.DataFrame)
    assert list(model_input.columns) == ["age", "city"]
    assert model_input.to_dict("records") == [{"age": 30, "city": "Paris"}, {"age": 41, "city": "Lyon"}]


def test_a_dataframe_reference_round_trips_through_model_input(frame: pd.DataFrame) -> None:
    columns = columns_from_data(frame)
    rows = [[31, 1200.5, "Paris", "basic"]]

    model_input = to_model_input(rows, columns.names, all_numeric=False, input_format=columns.input_format)

    assert list(model_input.columns) == list(frame.columns)


def test_monitor_observes_pandas_missing_values_of_nullable_dtypes_as_missing() -> None:
    """A nullable Int64 column holds pandas.NA, not None or NaN: it was counted as a value of the wrong type
    (54 of 500 rows of a healthy frame flagged by data quality)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "count": pd.array(np.where(rng.random(2_000) < 0.1, None, rng.integers(0, 5, 2_000)), dtype="Int64"),
            "when": pd.array(rng.choice(["am", "pm", None], 2_000), dtype="string"),
        }
    )
    monitor = Monitor(Reference.from_data(frame), window=500)

    monitor.observe(frame.sample(500, random_state=1), np.zeros(500))
    quality = monitor.health().check("data_quality")

    assert quality.status.value == "ok", quality.summary
    assert quality.details.features["count"].type_errors == 0
    assert quality.details.features["count"].missing_rate == pytest.approx(float(frame["count"].isna().mean()), abs=0.05)
