"""A reference built from a model's outputs on its training rows is told apart, for ExtraTrees too.

ExtraTrees' fully grown trees (no bootstrap) put every training row in a pure leaf of every tree: each gets a
probability of exactly 1 and is right. Its probabilities then predict no error at all, and the test of realized
against predicted errors could not read them: ``Reference.from_data(X_train, y=y_train,
predictions=model.predict_proba(X_train))`` was trusted, and healthy traffic was flagged at once (an accuracy of
0.77 against the reference's 1.0, and prediction drift). Such rows are now marked ``training``, with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from guarded_serving import Reference, TrainingDataWarning


def _world(rows: int, seed: int, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    scores = np.c_[X[:, 0] + X[:, 1], -X[:, 0], X[:, 2]][:, :classes] + rng.gumbel(size=(rows, classes))
    return X, scores.argmax(axis=1)


def _built(model: object, X: np.ndarray, y: np.ndarray) -> tuple[Reference, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference = Reference.from_data(X, y=y, predictions=model.predict_proba(X))  # type: ignore[attr-defined]
    return reference, [str(w.message) for w in caught if issubclass(w.category, TrainingDataWarning)]


@pytest.mark.parametrize(("rows", "classes"), [(600, 2), (150, 3)], ids=["600 rows, binary", "150 rows, 3 classes"])
def test_extra_trees_outputs_on_their_training_rows_are_marked_training(rows: int, classes: int) -> None:
    X, y = _world(rows, seed=1, classes=classes)
    model = ExtraTreesClassifier(n_estimators=30, random_state=0).fit(X, y)

    reference, warned = _built(model, X, y)

    assert reference.provenance.outputs == "training"
    assert reference.provenance.performance == "training"
    assert len(warned) == 1
    assert f"{rows} of these {rows} rows given a probability of 1 and none of them wrong" in warned[0]


@pytest.mark.parametrize("forest", [ExtraTreesClassifier, RandomForestClassifier], ids=["extra trees", "random forest"])
def test_forest_outputs_on_held_out_rows_are_trusted(forest: type) -> None:
    X, y = _world(600, seed=2)
    X_val, y_val = _world(600, seed=3)
    model = forest(n_estimators=30, random_state=0).fit(X, y)

    reference, warned = _built(model, X_val, y_val)

    assert reference.provenance.outputs == "given"
    assert warned == []


def test_a_confident_model_right_on_an_easy_held_out_set_is_trusted() -> None:
    # Two classes far apart: 15 nearest neighbours agree on 91 % of fresh rows (a probability of exactly 1) and are
    # right on them all, as a model scores rows it memorised: at a 90 % bar such a holdout was marked training (a
    # helper's sweep: 108 of 114 held-out rows). Memorised rows are sure on every one (ExtraTrees: 100 %, above).
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(6)

    def easy(rows: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, rows)
        return rng.normal(size=(rows, 3)) + 2.8 * y[:, None], y

    X, y = easy(2_000)
    X_val, y_val = easy(120)
    model = KNeighborsClassifier(15).fit(X, y)
    sure = float((model.predict_proba(X_val).max(axis=1) == 1).mean())

    reference, warned = _built(model, X_val, y_val)

    assert 0.9 <= sure < 0.99
    assert reference.provenance.outputs == "given"
    assert warned == []


# -- an underconfident forest on genuine held-out rows ------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's handwritten digits (1,797 rows, 10 classes), halved at random: training and held-out rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    train, held = order[: len(order) // 2], order[len(order) // 2 :]
    return digits.data[train], digits.target[train], digits.data[held], digits.target[held]


@pytest.mark.parametrize("forest", [RandomForestClassifier, ExtraTreesClassifier], ids=["random forest", "extra trees"])
def test_an_underconfident_forest_on_held_out_rows_is_trusted_when_its_training_rows_are_known(
    digits_split: tuple[np.ndarray, ...], forest: type
) -> None:
    """200 averaged trees on digits are right on 98 % of held-out rows whose mean confidence is 0.74-0.75: a twelfth
    of the errors their probabilities predict, which the test of errors took for training rows (with a warning telling
    the user to pass the holdout= they had passed), and the holdout's estimate and baselines were dropped. The model is
    surer of its training rows (0.90 and 1.00): with them at hand (``X`` of ``from_data``, ``reference=`` of
    ``guard``) the held-out rows are told apart."""
    X, y, X_val, y_val = digits_split
    model = forest(n_estimators=200, random_state=0).fit(X, y)
    assert model.predict_proba(X_val).max(axis=1).mean() < 0.8

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference = Reference.from_data(X, holdout=(X_val, y_val), predict=model.predict_proba)
        withheld = Reference.from_data(X).with_holdout((X_val, y_val), predict=model.predict_proba)  # no training rows
    warned = [str(w.message) for w in caught if issubclass(w.category, TrainingDataWarning)]

    assert reference.provenance.outputs == reference.provenance.performance == "holdout"
    assert reference.confidence is not None
    assert len(warned) == 1  # the second reference's: without the training rows the errors alone decide
    assert withheld.provenance.outputs == "training"


@pytest.mark.parametrize("mistake", ["the training rows as holdout", "the model refitted on every row"])
def test_rows_the_forest_was_fitted_on_are_still_caught_with_its_training_rows_known(
    digits_split: tuple[np.ndarray, ...], mistake: str
) -> None:
    X, y, X_val, y_val = digits_split
    if mistake == "the training rows as holdout":
        model, held = RandomForestClassifier(n_estimators=200, random_state=0).fit(X, y), (X, y)
    else:
        model = RandomForestClassifier(n_estimators=200, random_state=0).fit(np.vstack([X, X_val]), np.r_[y, y_val])
        held = (X_val, y_val)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference = Reference.from_data(X, holdout=held, predict=model.predict_proba)

    assert reference.provenance.outputs == "training"
    assert [w for w in caught if issubclass(w.category, TrainingDataWarning)]


def test_guard_with_holdout_trusts_an_underconfident_forests_held_out_rows(digits_split: tuple[np.ndarray, ...]) -> None:
    from guarded_serving import guard

    X, y, X_val, y_val = digits_split
    model = RandomForestClassifier(n_estimators=200, random_state=0).fit(X, y)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        svc = guard(model.predict_proba, reference=X, holdout=(X_val, y_val), db=":memory:")

    assert not [w for w in caught if issubclass(w.category, TrainingDataWarning)]
    reference = svc.inner.guarded.reference
    assert reference.provenance.outputs == "holdout"
    assert reference.confidence is not None


def test_training_rows_without_the_references_features_are_refused_naming_them(digits_split: tuple[np.ndarray, ...]) -> None:
    from guarded_serving.errors import ConfigurationError

    X, y, X_val, y_val = digits_split
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)

    with pytest.raises(ConfigurationError, match=r"^fitted: expected the reference's features, .*got \"features \['a', 'b'\]\""):
        Reference.from_data(X).with_holdout((X_val, y_val), predict=model.predict_proba, fitted=[{"a": 1.0, "b": 2.0}])
