"""Train an iris classifier (a scikit-learn Pipeline), save it and its guarded_serving reference.

python examples/classifier/train.py

It also writes the training rows, their labels and the model's probabilities to training.csv, from
which `guarded-serving profile` builds the same reference on the command line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from guarded_serving import Reference

HERE = Path(__file__).parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
OUTPUTS = ["p_setosa", "p_versicolor", "p_virginica"]


def main() -> None:
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=500))])
    model.fit(X_train, y_train)
    joblib.dump(model, HERE / "model.pkl")
    probabilities = model.predict_proba(X_train)
    reference = Reference.from_data(X_train, y=y_train, predictions=probabilities, feature_names=FEATURES)
    reference.save(HERE / "reference.json")
    with (HERE / "training.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*FEATURES, "species", *OUTPUTS])
        for row, label, p in zip(X_train.tolist(), y_train.tolist(), probabilities.tolist(), strict=True):
            writer.writerow([*map(repr, row), label, *map(repr, p)])
    print(f"test accuracy {model.score(X_test, y_test):.3f}; saved {HERE / 'model.pkl'} and {HERE / 'reference.json'}")


if __name__ == "__main__":
    main()
