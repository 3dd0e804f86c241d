"""Two replicas, two `bentoml serve` processes with their own ports and working directories, sharing one
PostgreSQL database: labels, health and history are the fleet's, whichever replica is asked.

The replicas run tests/apps/fleet.py (a window of 300 rows). The tests of this module share one fleet and
run in order: traffic only adds to what the earlier tests sent, and each asserts what holds whatever came before.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.data import gaussian
from tests.fixtures.postgres import PASSWORD, PostgresServer
from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

APP = "tests.apps.fleet:service"


def replica(name: str, url: str, root: Path, **env: str) -> Server:
    """A replica named ``name`` (its HOSTNAME, as a pod's) serving from a working directory of its own."""
    home = root / name
    home.mkdir()
    return start_server(APP, home, cwd=home, env={"GUARDED_SERVING_DB": url, "HOSTNAME": name, **env})


@dataclass(frozen=True)
class Fleet:
    a: Server
    b: Server
    url: str  # the database both write, password included


@pytest.fixture(scope="module")
def fleet(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    url = postgres.database("fleet")
    root = tmp_path_factory.mktemp("fleet")
    a = replica("replica-a", url, root)
    try:
        b = replica("replica-b", url, root)
    except BaseException:
        a.stop()
        raise
    yield Fleet(a, b, url)
    for server in (a, b):
        server.stop()


def predict(server: Server, rows: np.ndarray) -> str:
    response = server.client.post("/predict", json={"rows": rows.tolist()})
    assert response.status_code == 200, response.text
    return str(response.json()["request_id"])


def health(server: Server) -> dict[str, Any]:
    response = server.client.get("/health/model")
    assert response.status_code in (200, 503), response.text
    return dict(response.json())


def summaries(document: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: (check["status"], check["summary"]) for name, check in document["checks"].items()}


def test_labels_sent_to_b_join_predictions_served_by_a(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    rows = gaussian(5, 3, seed=1)
    request_id = predict(a, rows)

    answer = b.client.post("/feedback", json={"request_id": request_id, "labels": rows.sum(axis=1).tolist()})

    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 5
    assert b.client.post("/feedback", json={"request_id": "never-served", "labels": [1.0]}).status_code == 404


def test_a_and_b_give_the_same_verdict_in_every_check(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    rng = np.random.default_rng(2)
    for i in range(20):
        predict(a if i % 2 else b, rng.normal(size=(10, 3)))

    same = wait_for(lambda: summaries(health(a)) == summaries(health(b)), timeout=30, interval=0.5)
    seen_a, seen_b = summaries(health(a)), summaries(health(b))
    differ = {
        name: (seen_a.get(name), seen_b.get(name))
        for name in seen_a.keys() | seen_b.keys()
        if seen_a.get(name) != seen_b.get(name)
    }
    assert same, f"the checks A and B still judge differently after 30 s: {differ}"  # once in a full run (2026-12-01)
    report = health(a)
    assert report["totals"] == health(b)["totals"]
    assert report["totals"]["requests"] >= 20  # this test's own; the file's other tests add theirs
    assert [r["host"] for r in report["replicas"]] == ["replica-a", "replica-b"]
    assert all(r["live"] for r in report["replicas"])
    assert report["checks"]["store"]["summary"].endswith("by 2 live replicas, 0 pending, none dropped.")


def test_drift_sent_through_b_only_is_flagged_by_a_and_blamed_on_its_feature(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    rng = np.random.default_rng(3)
    for _ in range(10):
        rows = rng.normal(size=(30, 3))
        rows[:, 1] += 1.5  # feature "b" drifts
        predict(b, rows)

    def drift() -> dict[str, Any]:  # B writes its rows within a flush interval
        return dict(health(a)["checks"]["data_drift"])

    assert wait_for(lambda: drift()["status"] == "alert", timeout=10)
    assert [name for name, feature in drift()["features"].items() if feature["drifted"]] == ["b"]


def test_concept_drift_is_judged_from_labels_sent_to_either_replica(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    rng = np.random.default_rng(4)
    for i in range(10):
        rows = rng.normal(size=(20, 3))
        served_by, labelled_by = (a, b) if i % 2 else (b, a)
        request_id = predict(served_by, rows)
        wrong = (rows.sum(axis=1) + 3.0).tolist()  # the world changed: every label is 3 away from the prediction
        answer = labelled_by.client.post("/feedback", json={"request_id": request_id, "labels": wrong})
        assert answer.status_code == 200, answer.text

    def concept(server: Server) -> tuple[str, str]:
        check = health(server)["checks"]["concept_drift"]
        return check["status"], check["summary"]

    assert wait_for(lambda: concept(a)[0] == "alert", timeout=10)
    assert concept(a) == concept(b)


def test_one_history_snapshot_per_slot_for_the_whole_fleet(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b  # both replicas judge every 2 s slot; the first snapshot of a slot is kept, for both

    def history(server: Server) -> list[float]:
        answer = server.client.get("/health/model/history", params={"limit": 100})
        assert answer.status_code == 200, answer.text
        return [dt.datetime.fromisoformat(s["ts"]).timestamp() for s in answer.json()["snapshots"]]

    assert wait_for(lambda: len(history(a)) >= 4, timeout=30, interval=0.5)
    times_a, times_b = history(a), history(b)

    assert times_a[:4] == times_b[:4]
    slots = [math.floor(t / 2.0) for t in times_a]  # as guarded_serving/history.py numbers them (history_interval=2)
    assert len(set(slots)) == len(slots)  # snapshots may be close across a slot's edge, never two in one slot


def test_the_cli_reads_the_fleets_database_by_its_url_and_never_shows_its_password(fleet: Fleet) -> None:
    cli = str(Path(sys.executable).parent / "guarded-serving")
    for _ in range(3):
        predict(fleet.a, gaussian(2, 3, seed=5))
    assert wait_for(lambda: health(fleet.b)["totals"]["requests"] >= 3, timeout=10)

    tail = subprocess.run([cli, "tail", "--db", fleet.url, "-n", "3"], capture_output=True, text=True, timeout=120)
    report = subprocess.run([cli, "report", "--db", fleet.url], capture_output=True, text=True, timeout=300)

    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.strip().splitlines()) == 4  # a header and three requests
    assert report.returncode == 0, report.stderr
    assert "data_drift" in report.stdout
    assert "by 2 live replicas" in report.stdout  # the fleet's heartbeats, read as a live replica reads them
    assert PASSWORD not in tail.stdout + tail.stderr + report.stdout + report.stderr
    assert "guarded:***@127.0.0.1" in report.stdout
