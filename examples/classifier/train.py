"""Train an iris classifier (a scikit-learn Pipeline), save it and its guarded_serving reference.

python examples/classifier/train.py
"""

from __future__ import annotations

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


def main() -> None:
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=500))])
    model.fit(X_train, y_train)
    joblib.dump(model, HERE / "model.pkl")
    reference = Reference.from_data(X_train, y=y_train, predictions=model.predict_proba(X_train), feature_names=FEATURES)
    reference.save(HERE / "reference.json")
    print(f"test accuracy {model.score(X_test, y_test):.3f}; saved {HERE / 'model.pkl'} and {HERE / 'reference.json'}")


if __name__ == "__main__":
    main()
