"""Send normal iris rows to the guarded classifier, then broken ones, then drifted ones, and print /health/model.

python examples/traffic.py --url http://127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import json
import math

import httpx
from sklearn.datasets import load_iris

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

BROKEN = [
    ("a string for a number", {"rows": [[5.1, "wide", 1.4, 0.2]]}),
    ("a row too short", {"rows": [[5.1, 3.5, 1.4]]}),
    ("an unknown feature", {"rows": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_size": 0.2}]}),
    ("no rows at all", {"rows": []}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--normal", type=int, default=150, help="normal rows to send, 10 per request")
    parser.add_argument("--drifted", type=int, default=300, help="rows whose petal length grew by 2 cm, 10 per request")
    args = parser.parse_args()
    X = load_iris().data
    with httpx.Client(base_url=args.url, timeout=30) as client:
        sent = 0
        for start in range(0, args.normal, 10):
            batch = X[start % len(X) : start % len(X) + 10]
            response = client.post("/predict", json={"rows": batch.tolist()})
            response.raise_for_status()
            sent += len(batch)
        print(f"sent {sent} normal rows")
        for label, body in BROKEN:
            response = client.post("/predict", json=body)
            print(f"{label}: {response.status_code} {response.json()['detail']}")
        response = client.post(
            "/predict", content=json.dumps({"rows": [[math.nan, 3.0, 1.0, 0.2]]}), headers={"Content-Type": "application/json"}
        )
        print(f"a NaN literal: {response.status_code} {response.json()['detail']}")
        drifted = 0
        for start in range(0, args.drifted, 10):
            batch = X[start % len(X) : start % len(X) + 10].copy()
            batch[:, FEATURES.index("petal_length")] += 2.0
            client.post("/predict", json={"rows": batch.tolist()}).raise_for_status()
            drifted += len(batch)
        print(f"sent {drifted} drifted rows (petal_length + 2 cm)")
        report = client.get("/health/model").json()
    for name in ("data_drift", "prediction_drift", "data_quality"):
        check = report["checks"][name]
        print(f"{name}: {check['status']}: {check['summary']}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
