"""Acceptance end to end: the README's one-liner, served for real, stays quiet and keeps its adopted baseline over a restart."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tests.acceptance.test_models import CHECK_EVERY, CHECKS, FLAGGED, REQUEST_ROWS, as_rows
from tests.apps.world import draw
from tests.fixtures.servers import Server


def test_a_served_one_liner_stays_quiet_and_keeps_its_adopted_baseline_over_a_restart(serve: Callable[..., Server]) -> None:
    rng = np.random.default_rng(8)
    X, y, _ = draw(3000, rng)
    rows = as_rows(X)
    server = serve("tests.apps.models:forest")

    def send(to: Server, start: int, stop: int) -> None:
        for at in range(start, stop, REQUEST_ROWS):
            answer = to.client.post("/predict", json={"rows": rows[at : at + REQUEST_ROWS]})
            assert answer.status_code == 200, answer.text
            labels = y[at : at + REQUEST_ROWS].tolist()
            assert (
                to.client.post("/feedback", json={"request_id": answer.json()["request_id"], "labels": labels}).status_code == 200
            )

    statuses = []
    for start in range(0, 2000, CHECK_EVERY):
        send(server, start, start + CHECK_EVERY)
        statuses.append(server.client.get("/health/model").json())
    flagged = [(c, r["checks"][c]["summary"]) for r in statuses for c in CHECKS if r["checks"][c]["status"] in FLAGGED]
    baseline = statuses[-1]["checks"]["prediction_drift"]["baseline"]
    assert server.stop() == 0
    assert flagged == []
    assert baseline["source"] == "served traffic"

    restarted = serve("tests.apps.models:forest", db=server.db)
    send(restarted, 2000, 2250)
    judged = restarted.client.get("/health/model").json()["checks"]["prediction_drift"]

    assert judged["status"] == "ok", judged["summary"]
    assert judged["baseline"] == baseline
