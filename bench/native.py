"""The class-based form (guarded_serving.bento.guarded_api) against the guard() form, side by side in one process.

    .venv/bin/python bench/native.py                      # 5 interleaved rounds of 2,000 requests per form
    .venv/bin/python bench/native.py --requests 300 --rounds 2 --json out.json

One logistic regression on the iris features is served both ways with the same guard settings and a real
SQLite store: ``guard(model.predict, ...)`` answering ``POST /predict {"rows": ...}``, and a class-based service
whose ``classify(self, data: np.ndarray) -> np.ndarray`` carries ``@guarded_api(...)``, answering
``POST /classify {"data": ...}``. Each service's own ASGI app (BentoML's, lifespan and all) is driven in a
process of its own (BentoML registers its metrics once per process) by Starlette's TestClient, one request at a
time, single-row and 64-row bodies, the two processes taking turns round by round. What is measured is the
serving process's CPU time per request (the store's writer thread included, until it has flushed), which a
loaded machine disturbs far less than wall-clock throughput: printed per form, with the ratio class/guard() of
requests per CPU-second (1.00 = the same; the goal is at least 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bentoml
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

from guarded_serving import guard
from guarded_serving.bento import guarded_api

X, y = load_iris(return_X_y=True)
MODEL = LogisticRegression(max_iter=500).fit(X, y)
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def service(form: str, folder: Path) -> tuple[Any, str, str]:
    """The form's service, route and the body's field for the rows."""
    if form == "guard()":
        return (
            guard(MODEL.predict, reference=X, name="iris-guard", feature_names=FEATURES, db=str(folder / "guard.db")),
            "/predict",
            "rows",
        )

    class IrisClassifier:
        def __init__(self) -> None:
            self.model = MODEL

        @guarded_api(reference=X, name="iris-class", feature_names=FEATURES, db=str(folder / "class.db"))
        @bentoml.api
        def classify(self, data: np.ndarray) -> np.ndarray:
            return self.model.predict(data)

    # guard() turns BentoML's access log and its tracing of the guarded routes off by default (the store records
    # every request); a class-based service keeps its own configuration: the same settings here, for a fair race.
    quiet = {"logging": {"access": {"enabled": False}}, "tracing": {"excluded_urls": ["/classify", "/feedback", "/health/model"]}}
    return bentoml.service(IrisClassifier, **quiet), "/classify", "data"


def child(form: str) -> None:
    """Serve ``form`` in this process; for each stdin line ``rows requests``, print the CPU µs per request."""
    with tempfile.TemporaryDirectory() as tmp:
        svc, route, field = service(form, Path(tmp))
        with TestClient(svc.to_asgi()) as client:
            print("ready", flush=True)
            for line in sys.stdin:
                rows, requests = map(int, line.split())
                batch = X[np.random.default_rng(rows).integers(0, len(X), rows)].tolist()
                body = json.dumps({field: batch}).encode()
                print(cpu_per_request(client, route, body, requests) * 1e6, flush=True)


def cpu_per_request(client: TestClient, route: str, body: bytes, requests: int) -> float:
    """CPU seconds of this process per request, until the stores have written what the requests logged."""
    headers = {"Content-Type": "application/json"}
    for _ in range(50):  # warm
        assert client.post(route, content=body, headers=headers).status_code == 200
    started = time.process_time()
    for _ in range(requests):
        client.post(route, content=body, headers=headers)
    client.get("/health/model")  # waits for the store to write the requests so far
    return (time.process_time() - started) / requests


FORMS = ("guard()", "class")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=FORMS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return []
    procs = {
        form: subprocess.Popen(
            [sys.executable, __file__, "--child", form], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        for form in FORMS
    }
    results: list[dict[str, Any]] = []
    try:
        for proc in procs.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for rows in (1, 64):
            samples: dict[str, list[float]] = {form: [] for form in FORMS}
            for k in range(args.rounds):
                for form in FORMS if k % 2 == 0 else reversed(FORMS):
                    proc = procs[form]
                    assert proc.stdin is not None
                    assert proc.stdout is not None
                    proc.stdin.write(f"{rows} {args.requests}\n")
                    samples[form].append(float(proc.stdout.readline()))
            cpu = {form: statistics.median(values) for form, values in samples.items()}
            results.append(
                {
                    "rows": rows,
                    "cpu_us_per_request": {form: round(value, 1) for form, value in cpu.items()},
                    "class_over_guard": round(cpu["guard()"] / cpu["class"], 3),
                    "loadavg": os.getloadavg()[0],
                }
            )
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(60)
    print(f"{'rows':>5} {'guard() us/req':>15} {'class us/req':>13} {'class/guard() req per CPU-s':>28} {'load':>6}")
    for r in results:
        cpu = r["cpu_us_per_request"]
        print(f"{r['rows']:>5} {cpu['guard()']:>15.1f} {cpu['class']:>13.1f} {r['class_over_guard']:>28.3f} {r['loadavg']:>6.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
