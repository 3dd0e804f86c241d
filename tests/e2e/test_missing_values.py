"""A null sent to the README's one-liner, whose LogisticRegression raises on NaN: a 422 naming the row and the
feature, logged as rejected, never a 500, and the service answers on (before, the model raised: a 500)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for

GOOD = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module", params=["svc", "batched"])
def oneliner(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(f"tests.apps.oneliner:{request.param}", tmp_path_factory.mktemp(request.param))
    yield server
    server.stop()


def logged_status(db: Path, request_id: str) -> str | None:
    with sqlite3.connect(db) as con:
        row = con.execute("SELECT status FROM requests WHERE request_id = ?", (request_id,)).fetchone()
    return None if row is None else str(row[0])


def test_a_null_is_a_422_naming_the_row_and_feature_and_logged_as_rejected(oneliner: Server) -> None:
    answer = oneliner.client.post("/predict", json={"rows": [GOOD, [5.0, 3.4, None, 0.2]]})

    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["detail"].startswith("row 1, feature 'f2': got null, a missing value, which this model cannot take")
    assert problem["problems"][0]["expected"] == "a number"
    assert wait_for(lambda: logged_status(oneliner.db, problem["request_id"]) == "rejected", timeout=10)


def test_nulls_sent_among_good_requests_fail_none_of_them_and_count_no_model_error(oneliner: Server) -> None:
    def send(i: int) -> int:
        row = [None, 3.5, 1.4, 0.2] if i % 4 == 0 else GOOD
        with httpx.Client(base_url=oneliner.url, timeout=30) as client:
            return client.post("/predict", json={"rows": [row]}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(40)))

    assert sorted(set(statuses)) == [200, 422]
    assert statuses.count(422) == 10
    totals = oneliner.client.get("/health/model").json()["totals"]
    assert totals["errors"] == 0
