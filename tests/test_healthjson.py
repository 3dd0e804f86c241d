"""The health report's JSON body (guarded_serving.healthjson): byte for byte what ``dump_bytes(report.to_json())``
writes, on the reports of every kind of model and check, and written by the compiled serializers on all of them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from examples.text.corpus import news
from guarded_serving import Monitor, Reference, healthjson
from guarded_serving.concept import ConceptDetails
from guarded_serving.drift.checks import DriftDetails
from guarded_serving.drift.joint import FeatureJoint, JointDetails
from guarded_serving.drift.quality import QualityDetails
from guarded_serving.estimate import EstimateDetails
from guarded_serving.health import BaselineSource, CheckResult, HealthReport, Status
from guarded_serving.healthjson import check_bytes, report_bytes
from guarded_serving.jsontext import dump_bytes
from guarded_serving.operational import EnvironmentDetails, PipelineDetails, StoreDetails
from tests.fixtures.data import (
    MIXED_FEATURES,
    logistic_probabilities,
    logistic_reference,
    logistic_world,
    mixed_probabilities,
    mixed_reference,
    mixed_rows,
)

ROOT = Path(__file__).resolve().parent.parent
PREPARED = {  # every details class of a check: those healthjson.prepare builds
    ConceptDetails, DriftDetails, EnvironmentDetails, EstimateDetails, JointDetails, PipelineDetails, QualityDetails,
    StoreDetails,
}  # fmt: skip


def served(monitor: Monitor, X: object, predictions: np.ndarray, labels: np.ndarray | None = None, per: int = 50) -> Monitor:
    """``monitor`` after serving the rows ``per`` a request (with latencies and stage timings), labelled when given."""
    rows = X if isinstance(X, list) else np.asarray(X)
    for start in range(0, len(rows), per):
        rid = monitor.observe(
            rows[start : start + per], predictions[start : start + per], latency_ms=3.5, stages={"validate": 0.2, "predict": 3.0}
        )
        if labels is not None:
            monitor.feedback(rid, labels[start : start + per].tolist())
    return monitor


def few_rows(tmp_path: Path) -> Monitor:
    X, _ = logistic_world(10, seed=3)
    return served(Monitor(logistic_reference(500, seed=1)), X, logistic_probabilities(X))


def labelled(tmp_path: Path) -> Monitor:
    X, y = logistic_world(600, seed=3)
    return served(Monitor(logistic_reference(2_000, seed=1), window=500), X, logistic_probabilities(X), y)


def drifted_with_a_store(tmp_path: Path) -> Monitor:
    X, y = logistic_world(600, seed=4)
    X[:, 0] = X[:, 0] * 2 + 1.5  # moved and spread
    X[:, 2] = -X[:, 1]  # a relation that was not there
    monitor = Monitor(logistic_reference(2_000, seed=1), window=500, db=tmp_path / "log.db", name="drifted")
    return served(monitor, X, logistic_probabilities(X), 1 - y)  # the labels' relation turned around


def every_feature_kind(tmp_path: Path) -> Monitor:
    rows = mixed_rows(600, seed=7, shift=1.0)
    y = np.random.default_rng(8).integers(0, 2, 600)
    return served(Monitor(mixed_reference(2_000, seed=1), window=500), rows, mixed_probabilities(rows), y)


def regression(tmp_path: Path) -> Monitor:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(2_600, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=2_600)
    reference = Reference.from_data(X[:2_000], y=y[:2_000], predictions=y[:2_000] + rng.normal(scale=0.5, size=2_000))
    X[2_000:, 3] = 7.0  # a column gone constant
    return served(Monitor(reference, window=500), X[2_000:], y[2_000:] * 1.3, y[2_000:])


def texts(tmp_path: Path) -> Monitor:
    corpus, topics = news(900, seed=1)
    P = np.eye(3)[np.asarray(topics[600:]) % 3] * 0.8 + 0.2 / 3
    return served(Monitor(corpus[:600], window=250), list(corpus[600:]), P)


def images(tmp_path: Path) -> Monitor:
    digits = load_digits()
    held = digits.images[900:1_400] * 1.5  # brighter
    return served(Monitor(digits.images[:900], window=250), held, np.eye(10)[digits.target[900:1_400]])


SCENARIOS: dict[str, Callable[[Path], Monitor]] = {
    f.__name__: f for f in (few_rows, labelled, drifted_with_a_store, every_feature_kind, regression, texts, images)
}


@pytest.fixture(params=sorted(SCENARIOS))
def monitored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Monitor]:
    monitor = SCENARIOS[request.param](tmp_path)
    monitor.flush()
    yield monitor
    monitor.close()


def test_the_body_is_byte_for_byte_the_reports_json(monitored: Monitor) -> None:
    report = monitored.health()

    assert report_bytes(report) == dump_bytes(report.to_json())
    assert report_bytes(report, detail=False) == dump_bytes(report.to_json(detail=False))


def test_a_health_asked_again_reuses_the_unchanged_checks_bytes_and_writes_the_changed_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A probe asking again on the same window gets the same CheckResult objects (all but the store's and the
    environment's, judged afresh): their bytes are not written again. After new requests, what changed is
    written anew, never an earlier report's bytes."""
    X, y = logistic_world(900, seed=3)
    monitor = served(Monitor(logistic_reference(2_000, seed=1), window=500), X[:600], logistic_probabilities(X[:600]), y[:600])
    first = monitor.health()
    assert report_bytes(first) == dump_bytes(first.to_json())
    written: list[str] = []
    check_bytes_ = healthjson.check_bytes
    monkeypatch.setattr(healthjson, "check_bytes", lambda c: written.append(c.name) or check_bytes_(c))

    again = monitor.health()
    body = report_bytes(again)
    served(monitor, X[600:], logistic_probabilities(X[600:]) * 0.5 + 0.25, y[600:])  # predictions drifted
    moved = monitor.health()
    written_again = list(written)
    moved_body = report_bytes(moved)

    assert body == dump_bytes(again.to_json())
    assert set(written_again) <= {"store", "environment"}  # judged afresh each time (cheap); every other reused
    assert moved_body == dump_bytes(moved.to_json())
    assert {"data_drift", "prediction_drift"} <= set(written)  # written again after the move
    assert json.loads(moved_body)["checks"]["prediction_drift"]["status"] != "ok"


def test_every_check_of_every_kind_of_report_is_written_by_its_compiled_serializer(
    monitored: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not by the fallback: were a details class of the package to lose its serializer (a type pydantic cannot read,
    a value not of its declared type), the body would still be right but as slow as before, and this would fail."""
    report = monitored.health()
    expected = {c.name: c.to_json() for c in report.checks}

    def refused(self: CheckResult) -> dict[str, object]:
        raise AssertionError(f"{self.name}'s details ({type(self.details).__name__}) were rendered by to_json")

    monkeypatch.setattr(CheckResult, "to_json", refused)
    written = {c.name: json.loads(check_bytes(c)) for c in report.checks if c.details is not None}

    assert written == {name: expected[name] for name in written}
    assert {"data_drift", "data_quality"} <= set(written)
    # and each class is one a service builds at start (healthjson.prepare), not in its first answer
    assert {type(c.details) for c in report.checks if c.details is not None} <= PREPARED


def test_a_started_service_builds_the_serializers_before_its_first_health_answer() -> None:
    """Building the eight serializers took ~60 ms of the first /health/model answer: a started GuardedModel builds
    them in a thread of its own. In a process of its own, whose serializers nothing built before."""
    code = """
import threading
import numpy as np
from guarded_serving import GuardedModel, healthjson

assert not healthjson._adapters
guarded = GuardedModel(lambda x: x[:, 0] > 0, reference=np.random.default_rng(0).normal(size=(300, 3)), name="m")
guarded.start()
for thread in threading.enumerate():
    if thread.name == "guarded-serving-health-json":
        thread.join(60)
print(sorted(kind.__name__ for kind, adapter in healthjson._adapters.items() if adapter is not None))
guarded.close()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')) == sorted(k.__name__ for k in PREPARED)


def test_the_keys_keep_the_order_to_json_gives_them(monitored: Monitor) -> None:
    report = monitored.health()

    def pairs(body: bytes) -> list[object]:
        return json.loads(body, object_pairs_hook=list)

    assert pairs(report_bytes(report)) == pairs(dump_bytes(report.to_json()))


# --- values the compiled serializers must not write differently ----------------------------------------------------


def joint(*features: FeatureJoint) -> CheckResult:
    details = JointDetails(500, 100, 0.01, 3, 4.0, 1.5, (), {f"f{i}": f for i, f in enumerate(features)})
    return CheckResult("joint_drift", Status.OK, "Relations as in the reference.", details)


def test_nan_and_infinities_are_written_as_null() -> None:
    check = joint(FeatureJoint(Status.OK, False, float("nan"), float("inf")), FeatureJoint(Status.WARN, True, -float("inf"), 2.0))

    assert check_bytes(check) == dump_bytes(check.to_json())
    assert json.loads(check_bytes(check))["features"]["f0"] == {
        "status": "ok",
        "drifted": False,
        "score": None,
        "threshold": None,
        "partner": None,
        "reason": None,
    }


def test_a_value_not_of_its_declared_type_is_written_as_to_json_writes_it() -> None:
    """A string where a float is declared: the compiled serializer refuses it, and to_json writes the check."""
    check = joint(FeatureJoint(Status.OK, False, "high", None))  # type: ignore[arg-type]

    assert check_bytes(check) == dump_bytes(check.to_json())
    assert json.loads(check_bytes(check))["features"]["f0"]["score"] == "high"


def test_a_lone_surrogate_in_a_summary_or_a_detail_is_written_as_to_json_writes_it() -> None:
    check = joint(FeatureJoint(Status.WARN, True, 3.0, 2.0, partner="b\udc80"))
    said = CheckResult("environment", Status.OK, "odd \udc80 name", BaselineSource("training rows"))

    assert check_bytes(check) == dump_bytes(check.to_json())
    assert check_bytes(said) == dump_bytes(said.to_json())


@dataclass(frozen=True)
class Own:
    """A details class of a caller's own (not the package's): written by to_json."""

    status: str  # dropped: a check's own status is never overwritten
    level: float
    shades: tuple[str, ...]


@dataclass(frozen=True)
class Counted:
    """Another of a caller's own, holding a bool where an int is declared (which a serializer of the declared
    type would write as 1)."""

    count: int


@pytest.mark.parametrize(
    "details",
    [
        None,
        {"rows": 3, "share": float("nan")},
        (1, 2.5),
        Own("hidden", 0.5, ("a", "b")),
        Counted(True),
        BaselineSource("served traffic", 40),
        FeatureJoint(Status.ALERT, True, 9.0, 4.0, "b"),  # the package's, with a status of its own (dropped)
    ],
    ids=["none", "mapping", "tuple", "own-class", "own-class-bool", "baseline", "package-class-with-a-status"],
)
def test_any_details_are_written_as_to_json_writes_them(details: object) -> None:
    check = CheckResult("custom", Status.WARN, "Something to look at.", details)

    assert check_bytes(check) == dump_bytes(check.to_json())


def test_a_report_of_a_fleet_writes_its_replicas_after_its_checks() -> None:
    report = HealthReport(
        Status.OK,
        "churn",
        None,
        "2026-12-02T00:00:00+00:00",
        10,
        100,
        3,
        10,
        0,
        0,
        (CheckResult("store", Status.OK, "Logged."),),
        replicas=(BaselineSource("served traffic", 7, "2026-12-01"),),
    )

    assert report_bytes(report) == dump_bytes(report.to_json())
    assert list(json.loads(report_bytes(report)))[-2:] == ["checks", "replicas"]


def test_the_features_of_a_mixed_reference_are_the_ones_written() -> None:
    """The scenario above judges every feature kind: its body names each of them."""
    rows = mixed_rows(600, seed=7, shift=1.0)
    with Monitor(mixed_reference(2_000, seed=1), window=500) as monitor:
        served(monitor, rows, mixed_probabilities(rows))
        body = json.loads(report_bytes(monitor.health()))

    assert sorted(body["checks"]["data_drift"]["features"]) == sorted(MIXED_FEATURES)


def test_a_subclass_of_a_details_class_keeps_its_own_fields() -> None:
    """A serializer compiled for FeatureJoint would write a subclass's instance as a FeatureJoint, its own fields
    dropped; once the class has a subclass, the details holding it are written by to_json. In a process of its
    own: a subclass stays among its parent's for the life of the process."""
    code = """
from dataclasses import dataclass
from guarded_serving.concept import ConceptDetails
from guarded_serving.drift.checks import DriftDetails
from guarded_serving.drift.joint import FeatureJoint, JointDetails
from guarded_serving.drift.quality import QualityDetails
from guarded_serving.estimate import EstimateDetails
from guarded_serving.operational import EnvironmentDetails, PipelineDetails, StoreDetails
from guarded_serving.health import CheckResult, Status
from guarded_serving.healthjson import check_bytes
from guarded_serving.jsontext import dump_bytes

@dataclass(frozen=True, slots=True)
class Blamed(FeatureJoint):
    pair: str = ""

details = JointDetails(500, 100, 0.01, 1, 4.0, 9.0, (), {"a": Blamed(Status.ALERT, True, 9.0, 4.0, "b", pair="a~b")})
check = CheckResult("joint_drift", Status.ALERT, "A relation changed.", details)
assert check_bytes(check) == dump_bytes(check.to_json()), check_bytes(check)
print(check_bytes(check).decode())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)

    assert done.returncode == 0, done.stderr
    assert '"pair":"a~b"' in done.stdout
