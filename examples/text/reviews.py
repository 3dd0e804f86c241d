"""A DataFrame model with a free-text column beside numeric and categorical ones, guarded in one line:

bentoml serve examples.text.reviews:svc      (from the repository root)

Rows are objects: {"rows": [{"review": "Fast delivery, lovely staff.", "stars": 5, "price": 19.9, "channel": "web"}]}
The model (a ColumnTransformer: TF-IDF on ``review``, scaled ``stars`` and ``price``, one-hot ``channel``) gets a
DataFrame; ``review`` is watched through its text descriptors, the other columns as they are.
"""

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from examples.text.corpus import reviews
from guarded_serving import guard

X, came_back = reviews(4000, seed=1)
columns = ColumnTransformer(
    [
        ("review", TfidfVectorizer(), "review"),
        ("numbers", StandardScaler(), ["stars", "price"]),
        ("channel", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
    ]
)
model = make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(X, came_back)

svc = guard(model.predict_proba, reference=X, name="reviews")
