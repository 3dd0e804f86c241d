"""A seeded tabular world and small real scikit-learn models for the model acceptance tests and their service.

Features of every kind a real table has: rounded numbers (age in years, income to the 100), a normal score
with 3 % missing values, small counts (Poisson 2 and 0.3), binary flags (30 % and 3 %), zero-inflated
values (1 % and 5 % non-zero), a near-constant column (99.7 % one value), sparse "pixels" (90 % to 99.5 %
zeros, intensities 1-16 otherwise), categories (5 uneven regions, 30 Zipf products) and an ID-like
column (a fresh user id on nearly every row, as in production). Labels follow a noisy logistic model
(about 80 % accuracy at best); the regression target, a noisy linear one.

Each model is wrapped in a Pipeline that imputes, scales and one-hot encodes, and drops the user id.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

PIXEL_ZEROS = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995)
NUMERIC = [
    "age",
    "income",
    "score",
    "tenure",
    "complaints",
    "premium",
    "flag",
    "clicks",
    "extra",
    "legacy",
    *(f"px{k}" for k in range(len(PIXEL_ZEROS))),
]
CATEGORICAL = ["region", "product"]
REGIONS = np.array(["north", "south", "east", "west", "centre"], dtype=object)
PRODUCTS = np.array([f"p{k:02d}" for k in range(30)], dtype=object)


def draw(rows: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``rows`` rows of the world: the features (a DataFrame), class labels (0/1) and a regression target."""
    age = np.clip(np.round(rng.normal(40, 12, rows)), 18, 90)
    income = np.round(rng.lognormal(10.5, 0.6, rows), -2)
    score = rng.normal(0, 1, rows)
    score[rng.random(rows) < 0.03] = np.nan
    tenure = rng.poisson(2.0, rows).astype(float)
    complaints = rng.poisson(0.3, rows).astype(float)
    premium = (rng.random(rows) < 0.3).astype(float)
    flag = (rng.random(rows) < 0.03).astype(float)
    clicks = np.where(rng.random(rows) < 0.01, rng.lognormal(1, 1, rows), 0.0)
    extra = np.where(rng.random(rows) < 0.05, rng.exponential(20, rows), 0.0)
    legacy = np.where(rng.random(rows) < 0.997, 1.0, 0.0)
    region = rng.choice(REGIONS, rows, p=[0.4, 0.25, 0.2, 0.1, 0.05])
    zipf = 1 / np.arange(1, len(PRODUCTS) + 1) ** 1.1
    product = rng.choice(PRODUCTS, rows, p=zipf / zipf.sum())
    user = np.array([f"u{v}" for v in rng.integers(0, 10**9, rows)], dtype=object)
    pixels = {
        f"px{k}": np.where(rng.random(rows) < zeros, 0.0, rng.integers(1, 17, rows).astype(float))
        for k, zeros in enumerate(PIXEL_ZEROS)
    }
    X = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "score": score,
            "tenure": tenure,
            "complaints": complaints,
            "premium": premium,
            "flag": flag,
            "clicks": clicks,
            "extra": extra,
            "legacy": legacy,
            "region": region,
            "product": product,
            "user_id": user,
            **pixels,
        }
    )
    z = (
        0.05 * (age - 40)
        + 0.8 * (np.log(income) - 10.5)
        + 1.2 * np.nan_to_num(score)
        - 0.4 * (tenure - 2)
        + 0.9 * premium
        + 0.6 * complaints
        + np.where(region == "north", 0.5, -0.3)
        + 0.08 * pixels["px1"]
        + 0.3 * np.sin(age / 5)
    )
    y = (rng.random(rows) < 1 / (1 + np.exp(-1.5 * z))).astype(int)
    target = 3 * z + np.where(product == "p00", 2.0, 0.0) + rng.normal(0, 1.0, rows)
    return X, y, target


def _prepare(scale: bool) -> ColumnTransformer:
    numeric = make_pipeline(SimpleImputer(), StandardScaler()) if scale else SimpleImputer()
    encoded = OneHotEncoder(handle_unknown="ignore")
    return ColumnTransformer([("num", numeric, NUMERIC), ("cat", encoded, CATEGORICAL)], remainder="drop")


# Small but real: fitted in a few seconds on 4,000 rows, each as overconfident on its training rows as its kind is.
MODELS: dict[str, Callable[[], Pipeline]] = {
    "logistic_regression": lambda: Pipeline([("prep", _prepare(True)), ("model", LogisticRegression(max_iter=1000))]),
    "random_forest": lambda: Pipeline([("prep", _prepare(False)), ("model", RandomForestClassifier(40, random_state=0))]),
    "extra_trees": lambda: Pipeline([("prep", _prepare(False)), ("model", ExtraTreesClassifier(40, random_state=0))]),
    "hist_gradient_boosting": lambda: Pipeline(
        [("prep", _prepare(False)), ("model", HistGradientBoostingClassifier(max_iter=80, random_state=0))]
    ),
    "k_neighbors": lambda: Pipeline([("prep", _prepare(True)), ("model", KNeighborsClassifier(15))]),
    "mlp": lambda: Pipeline([("prep", _prepare(True)), ("model", MLPClassifier((24,), max_iter=400, random_state=0))]),
    "gradient_boosting_regressor": lambda: Pipeline(
        [("prep", _prepare(False)), ("model", GradientBoostingRegressor(n_estimators=60, random_state=0))]
    ),
}
REGRESSORS = frozenset({"gradient_boosting_regressor"})


def fitted(family: str, X: pd.DataFrame, y: np.ndarray, target: np.ndarray) -> tuple[Any, Callable[..., Any], np.ndarray]:
    """The fitted model, the function the one-liner wraps (predict_proba; predict for a regressor), and its labels."""
    model = MODELS[family]()
    labels = target if family in REGRESSORS else y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the small MLP stops before it has converged: fine here
        model.fit(X, labels)
    return model, model.predict if family in REGRESSORS else model.predict_proba, labels
