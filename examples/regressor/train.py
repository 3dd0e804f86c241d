"""Train a diabetes-progression regressor and save it with its reference.

python examples/regressor/train.py
"""

from __future__ import annotations

from pathlib import Path

import joblib
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from guarded_serving import Reference

HERE = Path(__file__).parent


def main() -> None:
    data = load_diabetes()
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=0)
    model = Ridge(alpha=0.1).fit(X_train, y_train)
    joblib.dump(model, HERE / "model.pkl")
    reference = Reference.from_data(X_train, y=y_train, predictions=model.predict(X_train), feature_names=data.feature_names)
    reference.save(HERE / "reference.json")
    print(f"test R^2 {model.score(X_test, y_test):.3f}; saved {HERE / 'model.pkl'} and {HERE / 'reference.json'}")


if __name__ == "__main__":
    main()
