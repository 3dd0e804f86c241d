"""The reference profile: built once from training data, saved as versioned JSON, loaded unchanged."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from guarded_serving.environment import current_fingerprint
from guarded_serving.errors import ConfigurationError, InvalidReferenceError
from guarded_serving.profiles import FeatureProfile
from guarded_serving.reference import Provenance, Reference, TrainingDataWarning
from tests.fixtures.data import gaussian


@pytest.fixture
def eight_rows() -> np.ndarray:
    """Eight rows, two features, seeded: a = [8 5 3 0 1 6 5 9], b = [6 2 0 nan 8 9 6 7]."""
    X = np.random.default_rng(0).integers(0, 10, size=(8, 2)).astype(float)
    X[3, 1] = np.nan
    return X


@pytest.fixture
def cities() -> list[list[Any]]:
    """Eight seeded cities (Nice Nice Paris Nice Lyon Lyon Lyon Paris) and one missing value."""
    drawn = np.random.default_rng(5).choice(["Paris", "Lyon", "Nice"], size=8).tolist()
    return [[city] for city in drawn] + [[None]]


@pytest.fixture
def eight_row_reference(eight_rows: np.ndarray) -> Reference:
    labels = [0, 1, 1, 0, 1, 1, 1, 0]
    probabilities = [[0.2, 0.8], [0.5, 0.5], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.0, 1.0], [0.4, 0.6], [0.7, 0.3]]
    return Reference.from_data(eight_rows, y=labels, predictions=probabilities, feature_names=["a", "b"])


@pytest.fixture
def reference_file(tmp_path: Path) -> Path:
    return tmp_path / "reference.json"


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- profiles ------------------------------------------------------------------------------------------------------


def test_numeric_profile_has_exact_range_mean_and_std(eight_rows: np.ndarray) -> None:
    a = Reference.from_data(eight_rows, feature_names=["a", "b"]).features[0]

    assert (a.name, a.kind, a.count, a.missing_rate) == ("a", "numeric", 8, 0.0)
    assert (a.minimum, a.maximum, a.mean) == (0.0, 9.0, 4.625)
    assert a.std == pytest.approx(math.sqrt(69.875 / 8), rel=1e-12)  # population std: squared deviations sum to 69.875


def test_numeric_profile_ignores_missing_values_and_counts_them(eight_rows: np.ndarray) -> None:
    b = Reference.from_data(eight_rows, feature_names=["a", "b"]).features[1]

    assert (b.count, b.missing_rate, b.minimum, b.maximum) == (8, 0.125, 0.0, 9.0)
    assert b.mean == pytest.approx(38 / 7, rel=1e-12)


def test_all_missing_numeric_feature_has_no_range() -> None:
    profile = Reference.from_data(np.array([[np.nan], [np.nan]])).features[0]

    assert profile == FeatureProfile(name="f0", kind="numeric", count=2, missing_rate=1.0)


def test_categorical_profile_has_frequencies_by_count_then_name(cities: list[list[Any]]) -> None:
    city = Reference.from_data(cities, feature_names=["city"]).features[0]

    assert (city.kind, city.count) == ("categorical", 9)
    assert city.categories == (("Lyon", 0.375), ("Nice", 0.375), ("Paris", 0.25))


def test_categorical_missing_rate_counts_every_row(cities: list[list[Any]]) -> None:
    city = Reference.from_data(cities, feature_names=["city"]).features[0]

    assert city.missing_rate == 1 / 9


def test_category_set_holds_every_seen_category(cities: list[list[Any]]) -> None:
    city = Reference.from_data(cities, feature_names=["city"]).features[0]

    assert city.category_set == frozenset({"Lyon", "Nice", "Paris"})


def test_forced_categorical_numbers_keep_their_values() -> None:
    grade = Reference.from_data(np.array([[1], [2], [2], [3]]), categorical=[0]).features[0]

    assert grade.categories == ((2.0, 0.5), (1.0, 0.25), (3.0, 0.25))


def test_reference_rows_and_feature_names(eight_row_reference: Reference) -> None:
    assert (eight_row_reference.rows, eight_row_reference.feature_names) == (8, ("a", "b"))


def test_reference_records_the_current_environment(eight_row_reference: Reference) -> None:
    assert eight_row_reference.environment == current_fingerprint()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param([[1.0, 2.0]], "array", id="list-of-lists"),
        pytest.param([{"a": 1.0}], "records", id="list-of-dicts"),
    ],
)
def test_input_format_defaults_to_the_shape_of_the_data(data: Any, expected: str) -> None:
    assert Reference.from_data(data).input_format == expected


def test_input_format_can_be_chosen(eight_rows: np.ndarray) -> None:
    assert Reference.from_data(eight_rows, input_format="records").input_format == "records"


def test_unknown_input_format_is_rejected_with_the_choices(eight_rows: np.ndarray) -> None:
    with pytest.raises(
        ConfigurationError, match=r"^input_format: expected one of \['array', 'dataframe', 'records'\], got 'table'$"
    ):
        Reference.from_data(eight_rows, input_format="table")  # type: ignore[arg-type]


def test_infinity_in_the_reference_is_rejected_naming_feature_and_row() -> None:
    X = np.array([[1.0, 2.0], [3.0, np.inf], [5.0, 6.0]])

    with pytest.raises(ConfigurationError, match=r"^reference feature 'income' row 1: expected a finite number or missing, got "):
        Reference.from_data(X, feature_names=["age", "income"])


def test_negative_infinity_in_a_list_reference_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"^reference feature 'f0' row 0: expected a finite number or missing"):
        Reference.from_data([[-math.inf], [1.0]])


# --- predictions and y ---------------------------------------------------------------------------------------------


def test_one_dimensional_predictions_give_one_output_named_prediction(eight_rows: np.ndarray) -> None:
    reference = Reference.from_data(eight_rows, predictions=[0, 1, 1, 0, 1, 1, 1, 0])

    assert [(o.name, o.kind, o.mean) for o in reference.outputs] == [("prediction", "numeric", 0.625)]


def test_two_dimensional_predictions_give_one_output_per_column(eight_row_reference: Reference) -> None:
    assert [(o.name, o.minimum, o.maximum) for o in eight_row_reference.outputs] == [
        ("output_0", 0.0, 0.9),
        ("output_1", 0.1, 1.0),
    ]


def test_string_predictions_are_a_categorical_output(eight_rows: np.ndarray) -> None:
    reference = Reference.from_data(eight_rows, predictions=["yes"] * 6 + ["no"] * 2)

    assert reference.outputs[0].categories == (("yes", 0.75), ("no", 0.25))


def test_predictions_of_the_wrong_length_are_rejected(eight_rows: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"^predictions: expected 8 rows, one per row of X, got '7 rows'$"):
        Reference.from_data(eight_rows, predictions=[0.5] * 7)


def test_three_dimensional_predictions_are_rejected(eight_rows: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"^predictions: expected one prediction .* got 'array of shape \(8, 2, 1\)'$"):
        Reference.from_data(eight_rows, predictions=np.zeros((8, 2, 1)))


def test_numeric_labels_give_a_numeric_target(eight_row_reference: Reference) -> None:
    target = eight_row_reference.target
    assert target is not None
    summary = FeatureProfile(
        name="target", kind="numeric", count=8, missing_rate=0.0, minimum=0.0, maximum=1.0, mean=0.625, std=0.4841229182759271
    )
    assert dataclasses.replace(target, edges=(), proportions=(), sample=(), top_share=0.0) == summary
    assert target.edges == (1.0,)
    assert target.proportions == (0.375, 0.625)
    assert target.top_share == 0.625


def test_string_labels_give_a_categorical_target(eight_rows: np.ndarray) -> None:
    reference = Reference.from_data(eight_rows, y=["churn", "stay", "stay", "stay", "churn", "stay", "stay", "stay"])

    assert reference.target is not None
    assert reference.target.categories == (("stay", 0.75), ("churn", 0.25))


def test_labels_of_the_wrong_length_are_rejected(eight_rows: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"^y: expected 8 labels, one per row of X, got '9 labels'$"):
        Reference.from_data(eight_rows, y=[0] * 9)


def test_without_y_and_predictions_there_is_no_target_and_no_outputs(eight_rows: np.ndarray) -> None:
    reference = Reference.from_data(eight_rows)

    assert (reference.target, reference.outputs) == (None, ())


# --- save and load ---------------------------------------------------------------------------------------------------


def test_saved_reference_loads_equal(eight_row_reference: Reference, reference_file: Path) -> None:
    eight_row_reference.save(reference_file)

    assert Reference.load(reference_file) == eight_row_reference


def test_saved_categorical_reference_loads_equal(cities: list[list[Any]], reference_file: Path) -> None:
    reference = Reference.from_data(cities, feature_names=["city"], y=[True] * 5 + [False] * 4)
    reference.save(reference_file)

    assert Reference.load(reference_file) == reference


def test_save_returns_the_path_and_leaves_no_temporary_file(eight_row_reference: Reference, reference_file: Path) -> None:
    assert eight_row_reference.save(reference_file) == reference_file
    assert [p.name for p in reference_file.parent.iterdir()] == ["reference.json"]


def test_saved_document_declares_format_and_version(eight_row_reference: Reference, reference_file: Path) -> None:
    document = json.loads(eight_row_reference.save(reference_file).read_text(encoding="utf-8"))

    assert (document["format"], document["version"]) == ("guarded-serving/reference", 1)


def test_saved_document_is_strict_json_with_null_for_missing_statistics(reference_file: Path) -> None:
    Reference.from_data(np.array([[np.nan, 1.0]])).save(reference_file)

    document = json.loads(reference_file.read_text(encoding="utf-8"), parse_constant=lambda text: pytest.fail(f"{text} in JSON"))
    assert document["features"][0]["minimum"] is None


finite_matrices = arrays(
    np.float64,
    shape=st.tuples(st.integers(1, 6), st.integers(1, 4)),
    elements=st.floats(allow_nan=False, allow_infinity=False),
)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # statistics of values near 1e308 overflow to None
@settings(max_examples=60, deadline=None)
@given(X=finite_matrices)
def test_any_finite_float_reference_survives_save_and_load(X: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("property") / "reference.json"
    reference = Reference.from_data(X)

    reference.save(path)

    assert Reference.load(path) == reference


@settings(max_examples=60, deadline=None)
@given(column=st.lists(st.one_of(st.none(), st.text(max_size=5)), min_size=1, max_size=8))
def test_any_text_categories_survive_save_and_load(column: list[str | None], tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("property") / "reference.json"
    reference = Reference.from_data([[value] for value in column], categorical=[0])

    reference.save(path)

    assert Reference.load(path) == reference


def test_loading_a_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"

    with pytest.raises(InvalidReferenceError, match=r"^cannot read reference '.*nowhere\.json': No such file or directory$"):
        Reference.load(missing)


def test_loading_a_directory_is_an_invalid_reference(tmp_path: Path) -> None:
    with pytest.raises(InvalidReferenceError, match=r"^cannot read reference"):
        Reference.load(tmp_path)


def test_loading_non_json_names_the_path_and_the_position(reference_file: Path) -> None:
    reference_file.write_text("features: [a, b]\n", encoding="utf-8")

    with pytest.raises(
        InvalidReferenceError, match=r"^reference '.*reference\.json' is not valid JSON: Expecting value: line 1 column 1"
    ):
        Reference.load(reference_file)


@pytest.mark.parametrize(
    ("document", "found"),
    [
        pytest.param([1, 2, 3], "'list'", id="a-list"),
        pytest.param({"features": []}, "None", id="no-format"),
        pytest.param({"format": "evidently/profile", "version": 1}, "'evidently/profile'", id="another-format"),
    ],
)
def test_loading_another_document_names_the_file_and_both_formats(reference_file: Path, document: object, found: str) -> None:
    write_json(reference_file, document)

    with pytest.raises(InvalidReferenceError) as raised:
        Reference.load(reference_file)

    assert str(raised.value) == (
        f"reference {str(reference_file)!r}: not a guarded-serving reference:"
        f" expected format 'guarded-serving/reference', got {found}"
    )


def test_loading_another_version_names_both_versions(eight_row_reference: Reference, reference_file: Path) -> None:
    write_json(reference_file, {**eight_row_reference.to_json(), "version": 2})

    with pytest.raises(InvalidReferenceError, match=r"reference version 2 is not supported; this library reads version 1$"):
        Reference.load(reference_file)


def test_loading_a_document_without_features_says_so(eight_row_reference: Reference, reference_file: Path) -> None:
    write_json(reference_file, {**eight_row_reference.to_json(), "features": []})

    with pytest.raises(InvalidReferenceError, match=r"^reference '.*reference\.json': reference has no features$"):
        Reference.load(reference_file)


def test_loading_a_document_missing_a_field_names_the_field(eight_row_reference: Reference, reference_file: Path) -> None:
    document = eight_row_reference.to_json()
    del document["rows"]
    write_json(reference_file, document)

    with pytest.raises(
        InvalidReferenceError, match=r"^reference '.*reference\.json': malformed reference document: KeyError: 'rows'$"
    ):
        Reference.load(reference_file)


def test_loading_a_feature_of_unknown_kind_names_feature_and_kind(eight_row_reference: Reference, reference_file: Path) -> None:
    document = eight_row_reference.to_json()
    document["features"][1]["kind"] = "text"
    write_json(reference_file, document)

    with pytest.raises(
        InvalidReferenceError,
        match=r"^reference '.*reference\.json': feature 'b': kind must be 'numeric' or 'categorical', got 'text'$",
    ):
        Reference.load(reference_file)


# -- provenance and held-out rows ----------------------------------------------------------------------------------


def memorised(rows: int, seed: int) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Rows, labels and probabilities of a model that is right on every one of them at 70 % confidence."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2))
    y = (X[:, 0] > 0).astype(int)
    p = np.where(y == 1, 0.7, 0.3)
    return X, y.tolist(), np.column_stack([1 - p, p])


def calibrated(rows: int, seed: int) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Rows, labels drawn from the probabilities, and those probabilities: a model judged on fresh rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2))
    p = 1 / (1 + np.exp(-2 * X[:, 0]))
    return X, (rng.random(rows) < p).astype(int).tolist(), np.column_stack([1 - p, p])


def test_a_reference_whose_model_errs_far_less_than_it_believes_warns_and_is_marked_as_training_rows() -> None:
    X, y, P = memorised(1_000, seed=1)

    with pytest.warns(TrainingDataWarning, match=r"accuracy 1\.000 on these 1000 rows, while .* predict 0\.700.*holdout="):
        reference = Reference.from_data(X, y=y, predictions=P)

    assert reference.provenance == Provenance(outputs="training", performance="training")


def test_a_reference_of_calibrated_predictions_on_fresh_rows_does_not_warn() -> None:
    X, y, P = calibrated(5_000, seed=2)

    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingDataWarning)
        reference = Reference.from_data(X, y=y, predictions=P)

    assert reference.provenance == Provenance()


def test_outputs_from_predict_on_x_are_marked_as_training_outputs(eight_rows: np.ndarray) -> None:
    reference = Reference.from_data(eight_rows, predict=lambda rows: np.nansum(rows, axis=1))

    assert reference.provenance.outputs == "training"
    assert reference.outputs[0].count == 8


def test_holdout_rows_give_the_outputs_and_the_performance(eight_rows: np.ndarray) -> None:
    X_val, y_val, P_val = calibrated(500, seed=3)
    X = gaussian(300, 2, seed=4)

    reference = Reference.from_data(X, holdout=(X_val, y_val), predictions=P_val)

    assert reference.rows == 300
    assert reference.outputs[0].count == 500
    assert reference.performance is not None
    assert reference.performance.rows == 500
    assert reference.provenance == Provenance(outputs="holdout", performance="holdout")


def test_holdout_rows_are_given_to_predict_shaped_as_at_serving_time() -> None:
    seen: list[Any] = []
    X = [{"age": 30.0, "city": "Lyon"}, {"age": 40.0, "city": "Nice"}]
    held = [{"age": 35.0, "city": "Nice"}]

    def predict(rows: Any) -> list[float]:
        seen.append(rows)
        return [1.0 for _ in rows]

    reference = Reference.from_data(X, holdout=(held, [1.0]), predict=predict)

    assert seen == [[{"age": 35.0, "city": "Nice"}]]
    assert reference.provenance.outputs == "holdout"


def test_with_holdout_a_reference_replaces_its_outputs_and_performance(eight_row_reference: Reference) -> None:
    X_val, y_val, P_val = calibrated(400, seed=5)

    held = eight_row_reference.with_holdout((X_val, y_val), predictions=P_val)

    assert held.features == eight_row_reference.features
    assert held.performance is not None
    assert held.performance.rows == 400
    assert held.provenance == Provenance(outputs="holdout", performance="holdout")


def test_y_with_holdout_is_refused_naming_where_labels_go(eight_rows: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"^y: expected the held-out rows' labels in holdout=\(X_val, y_val\)"):
        Reference.from_data(eight_rows, y=[0] * 8, holdout=(eight_rows, [0] * 8))


def test_holdout_rows_with_other_features_are_refused(eight_rows: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"^holdout: expected the reference's features, \['a', 'b'\]"):
        Reference.from_data(eight_rows, feature_names=["a", "b"], holdout=[{"a": 1.0, "c": 2.0}], predict=lambda r: [0.0])


def test_a_holdout_of_three_items_is_refused(eight_rows: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"^holdout: expected held-out rows X_val, or \(X_val, y_val\)"):
        Reference.from_data(eight_rows, holdout=(eight_rows, [0] * 8, [0] * 8))


def test_predictions_and_predict_together_are_refused(eight_rows: np.ndarray) -> None:
    with pytest.raises(ConfigurationError, match=r"^predictions: expected one of the two"):
        Reference.from_data(eight_rows, predictions=[0.0] * 8, predict=lambda rows: [0.0] * len(rows))


def test_provenance_survives_save_and_load(reference_file: Path) -> None:
    X_val, y_val, P_val = calibrated(200, seed=6)
    reference = Reference.from_data(np.ones((4, 2)), holdout=(X_val, y_val), predictions=P_val)

    assert Reference.load(reference.save(reference_file)).provenance == Provenance(outputs="holdout", performance="holdout")


def test_a_document_without_provenance_trusts_its_outputs(eight_row_reference: Reference, reference_file: Path) -> None:
    document = eight_row_reference.to_json()
    del document["provenance"]
    reference_file.write_text(json.dumps(document))

    assert Reference.load(reference_file).provenance == Provenance()


def test_an_unknown_origin_is_an_invalid_reference(eight_row_reference: Reference, reference_file: Path) -> None:
    document = eight_row_reference.to_json()
    document["provenance"]["outputs"] = "yesterday"
    reference_file.write_text(json.dumps(document))

    with pytest.raises(InvalidReferenceError, match=r"provenance of outputs: expected one of \['training', 'holdout', 'given'\]"):
        Reference.load(reference_file)


def test_a_point_mass_gets_a_bin_of_its_own() -> None:
    """A zero-inflated feature: 95 % zeros, whose deciles are all 0, still gets a bin for its non-zero values."""
    values = np.zeros((1_000, 1))
    values[::20, 0] = np.arange(1, 51)
    [feature] = Reference.from_data(values).features

    assert feature.edges == (1.0,)
    assert feature.proportions == pytest.approx((0.95, 0.05))
