"""The replicas of a fleet in its reports: one built with other library versions is named by the environment
check, and one killed (kill -9) is reported stale while the others keep judging the fleet's rows.

Replica B is "built with other library versions" for real as far as the library can tell: its PYTHONPATH
starts with a directory holding a ``scipy-1.0.0.dist-info``, so that the installed distributions it reads
(importlib.metadata, as every fingerprint is taken) name scipy 1.0.0; nothing in it is imported. The tests
of this module share one fleet and run in order (the second kills B).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.fixtures.postgres import PostgresServer
from tests.fixtures.servers import Server
from tests.fixtures.waiting import wait_for

from .test_fleet import Fleet, health, predict, replica

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def fleet(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    url = postgres.database("replicas")
    root = tmp_path_factory.mktemp("replicas")
    other = root / "other-libraries" / "scipy-1.0.0.dist-info"
    other.mkdir(parents=True)
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: scipy\nVersion: 1.0.0\n")
    a = replica("replica-a", url, root)
    try:
        b = replica("replica-b", url, root, PYTHONPATH=str(other.parent))
    except BaseException:
        a.stop()
        raise
    yield Fleet(a, b, url)
    for server in (a, b):
        server.stop()


def replicas(server: Server) -> dict[str, dict[str, Any]]:
    return {r["host"]: r for r in health(server).get("replicas", [])}


def test_the_environment_check_names_the_replica_whose_libraries_differ(fleet: Fleet) -> None:
    assert wait_for(lambda: len(replicas(fleet.a)) == 2, timeout=30, interval=0.5)

    for server in (fleet.a, fleet.b):  # A started first: on a tie, the fleet's libraries are its
        environment = health(server)["checks"]["environment"]
        assert environment["status"] == "warn"
        assert environment["summary"].startswith("Replica replica-b:")
        assert "runs other libraries than the fleet: scipy " in environment["summary"]
        assert "-> 1.0.0" in environment["summary"]
        assert "replica-a:" not in environment["summary"]
    listed = replicas(fleet.a)
    assert listed["replica-a"]["libraries"] == []
    assert any(change.startswith("scipy ") for change in listed["replica-b"]["libraries"])


def test_a_killed_replica_is_reported_stale_and_the_other_still_judges_its_rows(fleet: Fleet) -> None:
    rng = np.random.default_rng(7)
    for _ in range(4):
        predict(fleet.b, rng.normal(size=(25, 3)))
    assert wait_for(lambda: health(fleet.a)["totals"]["rows"] >= 100, timeout=10)

    fleet.b.stop(signal.SIGKILL)

    assert wait_for(lambda: not replicas(fleet.a).get("replica-b", {"live": True})["live"], timeout=30, interval=0.5)
    report = health(fleet.a)
    store = report["checks"]["store"]
    assert store["status"] == "warn"
    assert "replica replica-b:" in store["summary"]
    assert "was last seen at" in store["summary"]
    assert replicas(fleet.a)["replica-a"]["live"]
    assert report["window"]["rows"] >= 100  # B's rows are still judged
    assert report["checks"]["environment"]["status"] == "ok"  # a stale replica's libraries are no longer the fleet's
    predict(fleet.a, rng.normal(size=(5, 3)))
    assert wait_for(lambda: health(fleet.a)["totals"]["rows"] >= 105, timeout=10)
