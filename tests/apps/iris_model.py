"""Train the iris classifier the class-based test services load, and save it (with its reference) in the model
store of ``$BENTOML_HOME``: ``python -m tests.apps.iris_model``."""

from __future__ import annotations

from tests.fixtures.data import iris

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


def save(with_reference: bool = True) -> str:
    import bentoml
    from sklearn.linear_model import LogisticRegression

    from guarded_serving.bento import save_reference

    X, y = iris()
    classifier = LogisticRegression(max_iter=1000).fit(X, y)
    model = bentoml.sklearn.save_model("iris", classifier)
    if with_reference:
        save_reference(model, X, feature_names=FEATURES)
    return str(model.tag)


if __name__ == "__main__":
    print(save())
