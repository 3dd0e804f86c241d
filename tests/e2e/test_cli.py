"""The command line on a served model's database: `guarded-serving report` says what the live endpoint said."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.fixtures.servers import Server
from tests.test_cli import BIN, drifted_features


# -- end to end ------------------------------------------------------------------------------------
def test_report_on_a_served_models_database_names_the_drifted_features_the_live_endpoint_named(
    serve: Callable[..., Server],
) -> None:
    """Acceptance: a real `bentoml serve` of the toy model (under a changed environment), drifted traffic,
    GET /health/model; then, the server stopped, the installed console script on its database."""
    server = serve("tests.apps.toy:drifted")
    started = time.time() - 1
    rng = np.random.default_rng(11)
    for shift, requests in ((0.0, 4), (2.0, 24)):
        for _ in range(requests):
            rows = rng.normal(size=(50, 3)) + np.array([0.0, shift, 0.0])
            assert server.client.post("/predict", json={"rows": rows.tolist()}).status_code == 200
    live = server.client.get("/health/model").json()
    assert server.stop() == 0

    def report(*options: str) -> dict[str, Any]:
        done = subprocess.run(
            [str(BIN / "guarded-serving"), "report", "--db", str(server.db), "--json", *options],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    offline = report()
    replayed = report("--since", str(started))

    assert drifted_features(live)["data_drift"] == ["b"]
    assert drifted_features(offline) == drifted_features(live)
    assert offline["checks"]["data_drift"] == live["checks"]["data_drift"]
    assert offline["checks"]["environment"]["status"] == live["checks"]["environment"]["status"] == "warn"
    assert offline["totals"] == live["totals"]
    assert offline["status"] == live["status"]
    assert drifted_features(replayed)["data_drift"] == ["b"]
    assert replayed["offline"]["replayed"]["rows_judged"] == 1400
