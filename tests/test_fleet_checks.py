"""What the store and environment checks say of a fleet, from the replicas' heartbeats (guarded_serving/fleet.py)."""

from __future__ import annotations

import dataclasses
import json

from guarded_serving.fleet import fleet_environment_check, fleet_store_check, replica_statuses
from guarded_serving.health import CheckResult, Status
from guarded_serving.store import Replica

PACKAGES = {"numpy": "2.1.3", "scipy": "1.14.1"}
OWN_STORE = CheckResult("store", Status.OK, "120 rows written, 0 pending, none dropped.")
OWN_ENVIRONMENT = CheckResult("environment", Status.OK, "Same package versions as the reference; no deprecation warnings.")


def beat(name: str, *, age: float = 1.0, packages: dict[str, str] | None = None, **state: object) -> Replica:
    fingerprint = {"python": "3.11.7", "platform": "linux-x86_64", "packages": packages or PACKAGES}
    found = Replica(
        name=f"{name}:1",
        host=name,
        pid=1,
        library="0.1.0",
        fingerprint=json.dumps(fingerprint),
        started_at=f"2026-11-30T10:00:0{len(name) % 10}.000+00:00",
        last_seen="2026-11-30T11:00:00.000+00:00",
        age=age,
        pending=0,
        written=100,
        dropped=0,
        capacity=1000,
        last_error=None,
        last_error_at=None,
        warnings=0,
    )
    return dataclasses.replace(found, **state)  # type: ignore[arg-type]


def test_a_sound_fleet_is_summed_up_over_its_live_replicas() -> None:
    check = fleet_store_check(OWN_STORE, [beat("a"), beat("b", written=50, pending=3)], me="a:1")

    assert (check.status, check.summary) == (Status.OK, "150 rows written by 2 live replicas, 3 pending, none dropped.")


def test_a_replica_not_seen_for_10_s_is_stale_and_named_by_the_store_check() -> None:
    check = fleet_store_check(OWN_STORE, [beat("a"), beat("b", age=10.5, pending=7)], me="a:1")

    assert check.status is Status.WARN
    assert check.summary == (
        "1 live replica shares the store; replica b:1 was last seen at 2026-11-30T11:00:00.000+00:00 (stopped without"
        " closing, or cut off from the database): 7 rows were waiting in its memory then."
    )
    assert [(r.name, r.live) for r in replica_statuses([beat("a"), beat("b", age=10.5)])] == [("a:1", True), ("b:1", False)]


def test_a_replica_that_cannot_write_or_falls_behind_is_named() -> None:
    failing = beat("b", last_error="OperationalError: the server closed the connection", pending=600)
    behind = beat("c", pending=500)

    check = fleet_store_check(OWN_STORE, [beat("a"), failing, behind], me="a:1")

    assert check.status is Status.ALERT
    assert "replica b:1 cannot write (OperationalError: the server closed the connection); 600 rows wait in its memory" in (
        check.summary
    )
    assert "replica c:1 is falling behind: 500 of 1000 buffered rows" in check.summary


def test_a_replicas_own_state_comes_from_its_own_check_not_its_heartbeat() -> None:
    own = CheckResult("store", Status.WARN, "Writes are failing (timeout); 10 rows wait in memory.")

    check = fleet_store_check(own, [beat("a", last_error="timeout", pending=900), beat("b")], me="a:1")

    assert (check.status, check.summary) == (Status.WARN, own.summary)


def test_the_environment_check_names_the_replica_whose_libraries_differ_from_most() -> None:
    upgraded = beat("c", packages={**PACKAGES, "numpy": "2.2.0"})

    check = fleet_environment_check(OWN_ENVIRONMENT, [beat("a"), upgraded, beat("b")])

    assert check.status is Status.WARN
    assert check.summary == "Replica c:1 runs other libraries than the fleet: numpy 2.1.3 -> 2.2.0."


def test_on_a_tie_the_fleets_libraries_are_the_first_started_replicas() -> None:
    first, second = beat("a"), beat("bb", packages={**PACKAGES, "scipy": "1.0.0", "extra": "1"})

    for replicas in ([first, second], [second, first]):
        check = fleet_environment_check(OWN_ENVIRONMENT, sorted(replicas, key=lambda r: r.started_at))
        assert check.summary == "Replica bb:1 runs other libraries than the fleet: scipy 1.14.1 -> 1.0.0, extra 1 added."


def test_a_stale_replicas_libraries_are_not_the_fleets() -> None:
    check = fleet_environment_check(OWN_ENVIRONMENT, [beat("a"), beat("b", age=60, packages={"numpy": "1.0"})])

    assert check is OWN_ENVIRONMENT
