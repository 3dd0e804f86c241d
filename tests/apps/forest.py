"""A scikit-learn Pipeline with a categorical feature, as users write them, served by the hostile-input tests.

``prep`` scales the numeric features and one-hot encodes ``colour`` with OneHotEncoder's default
``handle_unknown="error"``; ``forest`` is a random forest, which works in float32.
"""

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from guarded_serving import guard

FEATURES = ["size", "colour", "weight"]
COLOURS = ["red", "green", "blue"]

rng = np.random.default_rng(0)
TRAINING = np.empty((300, 3), dtype=object)
TRAINING[:, 0] = rng.normal(10.0, 2.0, 300).round(2)
TRAINING[:, 1] = rng.choice(COLOURS, 300)
TRAINING[:, 2] = rng.normal(50.0, 10.0, 300).round(1)
LABELS = (TRAINING[:, 0].astype(float) + 2 * (TRAINING[:, 1] == "red") > 11).astype(int)

prep = ColumnTransformer([("scale", StandardScaler(), [0, 2]), ("colour", OneHotEncoder(), [1])])
model = Pipeline([("prep", prep), ("forest", RandomForestClassifier(n_estimators=10, random_state=0))]).fit(TRAINING, LABELS)

svc = guard(model.predict_proba, reference=TRAINING, feature_names=FEATURES, name="forest")
