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
