"""Quick in-process measurement: what the guard adds per request around a model's predict.

    python bench/guard_overhead.py

Side by side in one run, interleaved rounds: (a) the bare predict function on a parsed array,
(b) GuardedModel.handle_predict on the JSON body (parse, validate, predict, serialize, enqueue for
the store, with a real SQLite store writing in the background). Prints per-request times and the
guard's own cost as the difference. The proper HTTP benchmark against bare BentoML is bench/overhead.py
(issue 6); this one only isolates the library's request path.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from guarded_serving import GuardedModel


def per_call(func, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(n):
        func()
    return (time.perf_counter() - start) / n


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with tempfile.TemporaryDirectory() as tmp:
        guarded = GuardedModel(model.predict_proba, reference=X, name="bench", db=os.path.join(tmp, "bench.db"))
        guarded.start()
        for rows in (1, 64):
            batch = X[:rows]
            body = json.dumps({"rows": batch.tolist()}).encode()
            bare, full = [], []
            for _ in range(7):  # interleaved rounds
                bare.append(per_call(lambda b=batch: model.predict_proba(b), 2000))
                full.append(per_call(lambda b=body: guarded.handle_predict(b, "application/json"), 2000))
            b, f = statistics.median(bare), statistics.median(full)
            print(
                f"{rows:>3} row(s): bare predict {b * 1e6:8.1f} us | guarded {f * 1e6:8.1f} us | "
                f"guard adds {(f - b) * 1e6:7.1f} us ({f / b:.2f}x)"
            )
        guarded.close()


if __name__ == "__main__":
    main()
