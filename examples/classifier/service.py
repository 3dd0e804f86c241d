"""The iris classifier, guarded in one line. Serve it with

bentoml serve examples.classifier.service:svc      (from the repository root)
bentoml serve service:svc                          (from this folder)
"""

from pathlib import Path

import joblib

from guarded_serving import guard

HERE = Path(__file__).parent
model = joblib.load(HERE / "model.pkl")

svc = guard(model.predict_proba, reference=HERE / "reference.json", name="iris")
