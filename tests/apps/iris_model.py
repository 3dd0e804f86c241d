"""Train the iris classifier the class-based test services load, and save it (with its reference) in the model
store of ``$BENTOML_HOME``: ``python -m tests.apps.iris_model``."""

from __future__ import annotations

import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


def training_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target)


def save(with_reference: bool = True) -> str:
    import bentoml
    from sklearn.linear_model import LogisticRegression

    from guarded_serving.bento import save_reference

    X, y = training_data()
    classifier = LogisticRegression(max_iter=1000).fit(X, y)
    model = bentoml.sklearn.save_model("iris", classifier)
    if with_reference:
        save_reference(model, X, feature_names=FEATURES)
    return str(model.tag)


if __name__ == "__main__":
    print(save())
