"""The README's one-liner as a new user writes it: `bentoml serve tests.apps.oneliner:svc`.

A LogisticRegression on the iris rows, guarded with its training data: a model that raises on a missing value.
"""

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from guarded_serving import guard

X_train, y_train = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=500).fit(X_train, y_train)

svc = guard(model.predict_proba, reference=X_train, name="churn")

# The same, its model calls shared by concurrent requests: a null must never reach a shared call.
batched = guard(model.predict_proba, reference=X_train, name="churn-batched", batching=True)
