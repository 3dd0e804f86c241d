"""Train an iris classifier and save it in BentoML's model store, with its guarded_serving reference.

python examples/bentoml_native/train.py

The reference (held-out rows, their labels and the model's predictions on them) is written into the model's own
directory, so ``bentoml build`` ships it with the model; the environment recorded with it is this one, the
model's saving environment, against which the served model's libraries are judged.
"""

from __future__ import annotations

import bentoml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from guarded_serving import Reference
from guarded_serving.bento import save_reference

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main() -> str:
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    classifier = LogisticRegression(max_iter=500).fit(X_train, y_train)
    model = bentoml.sklearn.save_model("iris_classifier", classifier)
    holdout = Reference.from_data(X_test, y=y_test, predictions=classifier.predict(X_test), feature_names=FEATURES)
    save_reference(model, holdout)
    return str(model.tag)


if __name__ == "__main__":
    print(main())
