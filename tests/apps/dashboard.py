"""A guarded classifier for the dashboard tests: `bentoml serve tests.apps.dashboard:svc`.

Numeric and categorical features, one of them named like an HTML script element (the page must
escape it), a reference with labels and predictions (so every check has something to judge) and a
short history interval. A first feature of -99 makes the model raise a DeprecationWarning.
"""

import warnings

import numpy as np

from guarded_serving import Reference, guard

HOSTILE = "<script>alert('owned')</script>"
FEATURES = ["a", "b", HOSTILE, "colour"]
COLOURS = ("red", "green", "blue")


def rows(n: int, seed: int, shift: float = 0.0) -> list[list[object]]:
    """``n`` rows like the training data, with feature ``a`` moved by ``shift`` standard deviations."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(n, 3))
    numbers[:, 0] += shift
    colours = rng.choice(len(COLOURS), size=n, p=[0.5, 0.3, 0.2])
    return [[float(x), float(y), float(z), COLOURS[c]] for (x, y, z), c in zip(numbers, colours, strict=True)]


def labels(batch: list[list[object]]) -> list[int]:
    """The truth: mostly what the model predicts (the third feature, which it ignores, adds noise)."""
    return [int(float(r[0]) + float(r[1]) + 0.3 * float(r[2]) > 0) for r in batch]  # type: ignore[arg-type]


def predict(batch: np.ndarray) -> np.ndarray:
    X = np.asarray(batch[:, :3], dtype=float)
    if (X[:, 0] == -99).any():
        warnings.warn("predict(rows) is deprecated; call predict_v2", DeprecationWarning, stacklevel=1)
    p = 1 / (1 + np.exp(-3 * (X[:, 0] + X[:, 1])))
    return np.c_[1 - p, p]


TRAINING = rows(2000, seed=0)
REFERENCE = Reference.from_data(
    TRAINING,
    y=labels(TRAINING),
    predictions=predict(np.array(TRAINING, dtype=object)),
    feature_names=FEATURES,
    categorical=["colour"],
)

svc = guard(predict, reference=REFERENCE, name="dashboard", history_interval=0.5)
