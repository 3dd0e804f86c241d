"""Model performance: the task, per-row losses, and the reference's figures realized performance is compared with."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from guarded_serving import ConfigurationError, Problem
from guarded_serving.performance import Performance, _plain_rows, infer_task, plain_matrix, row_losses


@pytest.fixture
def classifier() -> Performance:
    return Performance.from_data(["dog", "cat", "dog"], ["dog", "dog", "dog"])


@pytest.fixture
def regressor() -> Performance:
    return Performance.from_data([0.5, 1.5, 2.5, 3.5], [0.5, 2.5, 2.0, 3.5])


# -- infer_task ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "predictions", "task"),
    [
        pytest.param([1, 0, 1], [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], "classification", id="class-probabilities"),
        pytest.param([1.5, 0.25, 3.0], [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], "classification", id="probabilities-win-over-y"),
        pytest.param(["cat", "dog", "cat"], ["cat", "cat", "dog"], "classification", id="string-labels"),
        pytest.param([True, False, True], [True, True, False], "classification", id="boolean-labels"),
        pytest.param([0, 1, 2, 1, 0], [0, 2, 2, 1, 0], "classification", id="few-integer-labels"),
        pytest.param(list(np.linspace(0, 10, 50)), list(np.linspace(0.1, 10.1, 50)), "regression", id="many-distinct-floats"),
        pytest.param([0.5, 1.5, 2.5], [0.4, 1.6, 2.5], "regression", id="few-non-integral-floats"),
        pytest.param(list(range(21)), list(range(21)), "regression", id="more-than-20-integers"),
    ],
)
def test_infer_task(y: list[Any], predictions: list[Any], task: str) -> None:
    assert infer_task(y, predictions) == task


# -- row_losses ----------------------------------------------------------------------------------------------------


def test_row_losses_of_probabilities_are_argmax_errors_and_log_loss() -> None:
    losses = row_losses("classification", (0, 1), [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [0, 0, 1])

    assert losses.error.tolist() == [0.0, 1.0, 1.0]
    assert losses.loss.tolist() == pytest.approx([-math.log(0.9), -math.log(0.2), -math.log(0.4)], abs=1e-12)


def test_row_losses_pick_the_probability_column_of_the_class_in_class_order() -> None:
    losses = row_losses("classification", ("ant", "bee", "cow"), [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], ["cow", "ant"])

    assert losses.error.tolist() == [1.0, 0.0]
    assert losses.loss.tolist() == pytest.approx([-math.log(0.2), -math.log(0.5)], abs=1e-12)


def test_a_label_outside_the_classes_is_an_error_with_the_largest_log_loss() -> None:
    losses = row_losses("classification", (0, 1), [[0.9, 0.1]], [7])

    assert losses.error.tolist() == [1.0]
    assert losses.loss.tolist() == pytest.approx([-math.log(1e-15)])


def test_row_losses_of_predicted_labels_are_zero_one_errors() -> None:
    losses = row_losses("classification", ("cat", "dog"), ["cat", "dog", "dog", "cat"], ["cat", "cat", "dog", "dog"])

    assert losses.error.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert losses.loss.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_row_losses_of_a_regressor_are_absolute_and_squared_errors() -> None:
    losses = row_losses("regression", (), [1.0, 2.5, -1.0, 4.0], [1.5, 2.5, 1.0, 1.0])

    assert losses.error.tolist() == [0.5, 0.0, 2.0, 3.0]
    assert losses.loss.tolist() == [0.25, 0.0, 4.0, 9.0]


def test_row_losses_of_a_regressor_read_single_column_outputs() -> None:
    losses = row_losses("regression", (), [[1.0], [2.5]], [2.0, 2.0])

    assert losses.error.tolist() == [1.0, 0.5]


# -- Performance.from_data -----------------------------------------------------------------------------------------


def test_from_data_of_probabilities_gives_error_rate_and_log_loss() -> None:
    performance = Performance.from_data([0, 1, 1, 0], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2]])

    assert (performance.task, performance.classes, performance.rows) == ("classification", (0, 1), 4)
    assert performance.error_mean == 0.25
    assert performance.error_std == pytest.approx(math.sqrt(0.25 * 0.75))
    assert performance.loss_mean == pytest.approx(-(math.log(0.9) + math.log(0.7) + math.log(0.4) + math.log(0.8)) / 4)


def test_from_data_reads_numpy_labels_as_plain_values() -> None:
    performance = Performance.from_data(np.array([1, 0, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]))

    assert performance.classes == (0, 1)
    assert all(type(c) is int for c in performance.classes)
    assert performance.error_mean == pytest.approx(1 / 3)


def test_from_data_of_predicted_labels_sorts_the_classes(classifier: Performance) -> None:
    assert (classifier.task, classifier.classes, classifier.rows) == ("classification", ("cat", "dog"), 3)
    assert classifier.error_mean == pytest.approx(1 / 3)
    assert classifier.loss_mean == pytest.approx(1 / 3)


def test_from_data_of_a_regressor_gives_mae_and_rmse(regressor: Performance) -> None:
    # absolute errors 0, 1, 0.5, 0
    assert (regressor.task, regressor.classes, regressor.rows) == ("regression", (), 4)
    assert regressor.error_mean == 0.375
    assert regressor.error_std == pytest.approx(np.std([0.0, 1.0, 0.5, 0.0]))
    assert regressor.loss_mean == 0.3125
    assert (regressor.metric, regressor.loss_name) == ("mae", "rmse")
    assert regressor.loss_value(regressor.loss_mean) == pytest.approx(math.sqrt(0.3125))


def test_a_classifier_is_judged_on_accuracy_and_log_loss(classifier: Performance) -> None:
    assert (classifier.metric, classifier.loss_name) == ("accuracy", "log_loss")
    assert classifier.metric_value(0.25) == 0.75
    assert classifier.loss_value(0.4) == 0.4


def test_from_data_follows_a_task_given_explicitly() -> None:
    performance = Performance.from_data([0, 1, 2, 3], [0.5, 1.0, 2.0, 3.5], task="regression")

    assert performance.task == "regression"
    assert performance.error_mean == 0.25


def test_from_data_refuses_an_unknown_task() -> None:
    with pytest.raises(
        ConfigurationError, match=r"^task: expected 'classification', 'regression' or None \(inferred\), got 'ranking'$"
    ):
        Performance.from_data([0, 1], [0, 1], task="ranking")  # type: ignore[arg-type]


# -- JSON ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "predictions"),
    [
        pytest.param([0, 1, 1, 0], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2]], id="probabilities"),
        pytest.param(["dog", "cat", "dog"], ["dog", "dog", "dog"], id="string-labels"),
        pytest.param([0.5, 1.5, 2.5, 3.5], [0.5, 2.5, 2.0, 3.5], id="regression"),
    ],
)
def test_performance_survives_a_json_round_trip(y: list[Any], predictions: list[Any]) -> None:
    performance = Performance.from_data(y, predictions)

    assert Performance.from_json(json.loads(json.dumps(performance.to_json()))) == performance


# -- check_label ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", [pytest.param("cat", id="cat"), pytest.param("dog", id="dog")])
def test_check_label_accepts_a_known_class(classifier: Performance, label: str) -> None:
    assert classifier.check_label(label) is None


def test_check_label_names_the_classes_for_an_unknown_class(classifier: Performance) -> None:
    problem = classifier.check_label("cow")

    assert problem == Problem('got "cow"', 'one of the classes ["cat", "dog"]')
    assert str(problem) == 'got "cow"; expected one of the classes ["cat", "dog"]'


@pytest.mark.parametrize("label", [pytest.param(3, id="int"), pytest.param(-2.5, id="float"), pytest.param(1e300, id="huge")])
def test_check_label_of_a_regressor_accepts_a_finite_number(regressor: Performance, label: float) -> None:
    assert regressor.check_label(label) is None


@pytest.mark.parametrize(
    "label",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param("3.5", id="numeric-string"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param([1.0], id="list"),
    ],
)
def test_check_label_of_a_regressor_needs_a_finite_number(regressor: Performance, label: Any) -> None:
    assert regressor.check_label(label) == Problem(f"got {label!r}", "a finite number")


# -- predictions that cannot be scored -------------------------------------------------------------------------------


def test_row_losses_leave_out_a_regressor_row_without_a_usable_prediction() -> None:
    losses = row_losses("regression", (), [1.0, math.nan, None, [2.0, 3.0], 4.0], [1.5, 2.0, 2.0, 2.0, 1.0])

    assert (losses.error.tolist(), losses.unscored) == ([0.5, 3.0], 3)


def test_row_losses_leave_out_a_nan_probability_row_and_score_the_rest_as_probabilities() -> None:
    losses = row_losses("classification", (0, 1), [[0.9, 0.1], [math.nan, math.nan], [0.2, 0.8], None], [0, 0, 1, 1])

    assert (losses.error.tolist(), losses.unscored) == ([0.0, 0.0], 2)
    assert losses.loss.tolist() == pytest.approx([-math.log(0.9), -math.log(0.8)], abs=1e-12)


def test_row_losses_leave_out_a_missing_predicted_label() -> None:
    losses = row_losses("classification", ("cat", "dog"), ["cat", None, "dog", math.nan], ["cat", "cat", "cat", "dog"])

    assert (losses.error.tolist(), losses.unscored) == ([0.0, 1.0], 2)


@pytest.mark.parametrize(
    ("task", "classes", "outputs", "labels", "kept"),
    [
        ("regression", (), [1.0, math.nan, None, [2.0, 3.0], 4.0], [1.5, 2.0, 2.0, 2.0, 1.0], [1, 0, 0, 0, 1]),
        ("classification", (0, 1), [[0.9, 0.1], [math.nan, math.nan], [0.2, 0.8], None], [0, 0, 1, 1], [1, 0, 1, 0]),
        ("classification", ("cat", "dog"), ["cat", None, "dog", math.nan], ["cat", "cat", "cat", "dog"], [1, 0, 1, 0]),
    ],
    ids=["regression", "probabilities", "predicted-labels"],
)
def test_row_losses_mark_the_rows_they_scored_among_those_given(
    task: Any, classes: Any, outputs: list[Any], labels: list[Any], kept: list[int]
) -> None:
    losses = row_losses(task, classes, outputs, labels)

    assert losses.kept is not None
    assert losses.kept.tolist() == [bool(k) for k in kept]


def _window_of_probabilities(seed: int) -> tuple[list[Any], list[Any]]:
    """Three-class probability rows, some not probabilities (a negative value, a row that does not sum
    to 1, an infinity, a NaN), some whole numbers, with labels as fed back (one unknown, one not text)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([1.0, 2.0, 3.0], size=300)
    rows: list[Any] = p.tolist()
    for i in rng.choice(300, size=40, replace=False):
        rows[i] = [[math.nan, 0.5, 0.5], [-0.2, 0.6, 0.6], [0.2, 0.2, 0.2], [math.inf, 0.0, 0.0], [1, 0, 0]][i % 5]
    labels: list[Any] = rng.choice(["a", "b", "c", "d", True], size=300, p=[0.3, 0.3, 0.3, 0.05, 0.05]).tolist()
    return rows, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_row_losses_of_a_window_of_lists_are_those_of_the_same_rows_read_one_by_one(seed: int) -> None:
    rows, labels = _window_of_probabilities(seed)
    as_tuples = [tuple(row) for row in rows]  # not plain lists: read row by row
    assert _plain_rows(rows, 3)
    assert not _plain_rows(as_tuples, 3)

    at_once = row_losses("classification", ("a", "b", "c"), rows, labels)
    one_by_one = row_losses("classification", ("a", "b", "c"), as_tuples, labels)

    np.testing.assert_array_equal(at_once.error, one_by_one.error)
    np.testing.assert_array_equal(at_once.loss, one_by_one.loss)
    assert at_once.unscored == one_by_one.unscored > 20


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ([[0.25, 0.75], [1, 0]], [[0.25, 0.75], [1.0, 0.0]]),
        ([[0.25, 0.75], [True, False]], None),  # a boolean is not read as a number
        ([[0.25, 0.75], [None, 1.0]], None),
        ([[0.25, 0.75], [1.0]], None),  # rows of two lengths
        ([(0.25, 0.75)], None),  # a tuple is not what the model's rows are logged as
        ([], None),
    ],
    ids=["numbers", "a-bool", "a-none", "two-lengths", "a-tuple", "no-rows"],
)
def test_outputs_are_a_plain_matrix_only_when_every_one_is_a_list_of_numbers(outputs: list[Any], expected: Any) -> None:
    matrix = plain_matrix(outputs)

    if expected is None:
        assert matrix is None
    else:
        np.testing.assert_array_equal(matrix, np.array(expected))


def test_scores_from_a_kept_matrix_are_the_scores_from_the_rows() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(300)
    outputs = np.column_stack([1 - p, p]).tolist()
    labels = (rng.random(300) < p).astype(int).tolist()

    kept = row_losses("classification", (0, 1), outputs, labels, plain_matrix(outputs))
    read = row_losses("classification", (0, 1), outputs, labels)

    np.testing.assert_array_equal(kept.error, read.error)
    np.testing.assert_array_equal(kept.loss, read.loss)
