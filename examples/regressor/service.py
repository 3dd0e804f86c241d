"""A ridge regressor on the diabetes data set, guarded, with two workers:

bentoml serve examples.regressor.service:svc
"""

from pathlib import Path

import joblib

from guarded_serving import guard

HERE = Path(__file__).parent
model = joblib.load(HERE / "model.pkl")

svc = guard(model.predict, reference=HERE / "reference.json", name="diabetes", workers=2, traffic={"timeout": 10})
