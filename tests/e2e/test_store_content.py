"""A real `bentoml serve` answers health whatever the log store holds (tests/acceptance/test_store_content.py: no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from guarded_serving.cli import main
from tests.acceptance.test_store_content import CORRUPTIONS, corrupt, query
from tests.fixtures.data import gaussian
from tests.fixtures.servers import Server
from tests.fixtures.waiting import wait_for


@pytest.fixture
def sampled(serve: Any) -> Server:
    return serve("tests.apps.faults:sampled")  # type: ignore[no-any-return]


def logged_outputs(db: Path, request_id: str) -> bool:
    found = query(db, "SELECT outputs IS NOT NULL FROM requests WHERE request_id = ?", (request_id,))
    return bool(found and found[0][0])


def ask_over_http(server: Server) -> list[int]:
    client = server.client
    return [
        client.get("/health/model").status_code,
        client.get("/health/model?format=html").status_code,
        client.get("/health/model", headers={"Accept": "text/html"}).status_code,
        client.get("/health/model/history").status_code,
    ]


def test_a_service_keeps_answering_health_after_labels_for_unlogged_predictions(sampled: Server) -> None:
    client = sampled.client
    rows = gaussian(40, 3, seed=3).round(4).tolist()
    ids = [client.post("/predict", json={"rows": [row]}).json()["request_id"] for row in rows]
    assert wait_for(lambda: len(query(sampled.db, "SELECT 1 FROM requests")) == len(ids))
    sampled_out = next(rid for rid in ids if not logged_outputs(sampled.db, rid))
    # The same client id twice: one row, then three; the label names row 2, which only the second has.
    client.post("/predict", json={"rows": rows[:1]}, headers={"X-Request-ID": "client-7"})
    client.post("/predict", json={"rows": rows[:3]}, headers={"X-Request-ID": "client-7"})

    assert client.post("/feedback", json={"request_id": sampled_out, "labels": [1.5]}).status_code == 200
    assert client.post("/feedback", json={"items": [{"request_id": "client-7", "row": 2, "label": 0.5}]}).status_code == 200

    assert ask_over_http(sampled) == [200, 200, 200, 200]
    assert client.get("/health/model").json()["checks"]["store"]["status"] == "ok"


def test_a_service_keeps_answering_health_while_its_store_is_corrupted_under_it(
    sampled: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sampled.client
    rows = gaussian(150, 3, seed=4).round(4).tolist()
    ids = [client.post("/predict", json={"rows": rows[i : i + 10]}).json()["request_id"] for i in range(0, 150, 10)]
    assert wait_for(lambda: len(query(sampled.db, "SELECT 1 FROM requests")) == len(ids))
    client.get("/health/model")  # a first snapshot in the history
    assert wait_for(lambda: len(query(sampled.db, "SELECT 1 FROM health_history")) > 0)

    corrupt(sampled.db, [sql for statements in CORRUPTIONS.values() for sql in statements], ids)

    assert ask_over_http(sampled) == [200, 200, 200, 200]
    metrics = httpx.get(sampled.url + "/metrics", timeout=30)
    assert metrics.status_code == 200
    assert "guarded_serving_status" in metrics.text
    assert main(["report", "--db", str(sampled.db)]) == 0
    assert "Traceback" not in sampled.logs()
