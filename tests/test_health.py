"""The health report: statuses ordered best to worst, typed results rendered to the JSON contract at the edge."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from guarded_serving.health import CheckResult, HealthReport, Status, to_jsonable, worst


@dataclass(frozen=True)
class Measure:
    score: float
    threshold: float
    level: Status
    bounds: tuple[float, ...]


class Shade(enum.StrEnum):
    DARK = "dark"


@pytest.fixture
def report() -> HealthReport:
    return HealthReport(
        status=Status.WARN,
        model_name="churn",
        model_version="2026-01",
        generated_at="2026-01-01T00:00:00+00:00",
        window_rows=250,
        window_capacity=1000,
        requests=300,
        rows=420,
        rejected=4,
        errors=1,
        checks=(
            CheckResult("pipeline", Status.OK, "300 recent requests.", Measure(0.5, 1.0, Status.OK, (0.0, 1.0))),
            CheckResult("environment", Status.WARN, "1 package differs from the reference: numpy 1.0.0 -> 2.4.6."),
        ),
    )


# --- Status ----------------------------------------------------------------------------------------------------------


def test_statuses_rank_from_ok_to_alert() -> None:
    assert sorted(Status, key=lambda s: s.rank) == [Status.OK, Status.INSUFFICIENT_DATA, Status.WARN, Status.ALERT]


def test_status_values_are_the_json_words() -> None:
    assert [s.value for s in Status] == ["ok", "insufficient_data", "warn", "alert"]


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.value)
def test_status_parses_its_own_value(status: Status) -> None:
    assert Status.parse(status.value) is status


def test_status_parse_of_an_unknown_word_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"^expected one of \['ok', 'insufficient_data', 'warn', 'alert'\], got 'red'$"):
        Status.parse("red")


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param([], Status.OK, id="none-is-ok"),
        pytest.param([Status.OK, Status.OK], Status.OK, id="all-ok"),
        pytest.param([Status.OK, Status.INSUFFICIENT_DATA], Status.INSUFFICIENT_DATA, id="insufficient-data-beats-ok"),
        pytest.param([Status.INSUFFICIENT_DATA, Status.WARN, Status.OK], Status.WARN, id="warn-beats-insufficient-data"),
        pytest.param([Status.ALERT, Status.WARN, Status.OK], Status.ALERT, id="alert-beats-everything"),
    ],
)
def test_worst(statuses: list[Status], expected: Status) -> None:
    assert worst(statuses) is expected


def test_worst_accepts_a_generator() -> None:
    assert worst(c.status for c in (CheckResult("a", Status.WARN, "."), CheckResult("b", Status.OK, "."))) is Status.WARN


# --- CheckResult ------------------------------------------------------------------------------------------------------


def test_check_without_details_renders_status_and_summary() -> None:
    assert CheckResult("store", Status.OK, "No log store.").to_json() == {"status": "ok", "summary": "No log store."}


def test_check_details_are_merged_next_to_status_and_summary() -> None:
    result = CheckResult("drift", Status.WARN, "Drift in 'age'.", Measure(0.3, 0.2, Status.WARN, (0.0, 1.0)))

    assert result.to_json() == {
        "status": "warn",
        "summary": "Drift in 'age'.",
        "score": 0.3,
        "threshold": 0.2,
        "level": "warn",
        "bounds": [0.0, 1.0],
    }


def test_check_details_that_are_not_an_object_go_under_details() -> None:
    result = CheckResult("drift", Status.OK, "Fine.", (1, 2))

    assert result.to_json() == {"status": "ok", "summary": "Fine.", "details": [1, 2]}


# --- HealthReport ----------------------------------------------------------------------------------------------------


def test_report_json_matches_the_contract(report: HealthReport) -> None:
    assert report.to_json() == {
        "status": "warn",
        "model": {"name": "churn", "version": "2026-01"},
        "generated_at": "2026-01-01T00:00:00+00:00",
        "window": {"rows": 250, "capacity": 1000},
        "totals": {"requests": 300, "rows": 420, "rejected": 4, "errors": 1},
        "checks": {
            "pipeline": {
                "status": "ok",
                "summary": "300 recent requests.",
                "score": 0.5,
                "threshold": 1.0,
                "level": "ok",
                "bounds": [0.0, 1.0],
            },
            "environment": {"status": "warn", "summary": "1 package differs from the reference: numpy 1.0.0 -> 2.4.6."},
        },
    }


def test_report_json_without_detail_only_has_status_model_and_time(report: HealthReport) -> None:
    assert report.to_json(detail=False) == {
        "status": "warn",
        "model": {"name": "churn", "version": "2026-01"},
        "generated_at": "2026-01-01T00:00:00+00:00",
    }


def test_report_json_is_strict_json(report: HealthReport) -> None:
    text = json.dumps(report.to_json(), allow_nan=False)

    assert json.loads(text) == report.to_json()


def test_report_json_keeps_a_missing_version_as_null(report: HealthReport) -> None:
    unversioned = HealthReport(
        status=Status.OK,
        model_name="churn",
        model_version=None,
        generated_at="2026-01-01T00:00:00+00:00",
        window_rows=0,
        window_capacity=1000,
        requests=0,
        rows=0,
        rejected=0,
        errors=0,
        checks=(),
    )

    assert unversioned.to_json()["model"] == {"name": "churn", "version": None}


def test_report_finds_a_check_by_name(report: HealthReport) -> None:
    assert report.check("environment").status is Status.WARN


def test_report_check_of_an_unknown_name_lists_the_checks(report: HealthReport) -> None:
    with pytest.raises(KeyError, match=r"no check named 'drift'; the report has \['pipeline', 'environment'\]"):
        report.check("drift")


# --- to_jsonable -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(math.nan, None, id="nan-becomes-null"),
        pytest.param(math.inf, None, id="infinity-becomes-null"),
        pytest.param(-math.inf, None, id="minus-infinity-becomes-null"),
        pytest.param(0.25, 0.25, id="finite-float-unchanged"),
        pytest.param((1, (2, 3)), [1, [2, 3]], id="tuples-become-lists"),
        pytest.param(Status.ALERT, "alert", id="enum-becomes-its-value"),
        pytest.param({1: Status.OK, "b": (math.nan,)}, {"1": "ok", "b": [None]}, id="mapping-keys-become-strings"),
        pytest.param([math.nan, "x", None, True, 3], [None, "x", None, True, 3], id="list-items-rendered"),
        pytest.param([np.float64(math.nan), np.float64(0.5)], [None, 0.5], id="numpy-floats-as-floats"),
        pytest.param(
            {"m": [Measure(1.0, 2.0, Status.OK, ())]},
            {"m": [{"score": 1.0, "threshold": 2.0, "level": "ok", "bounds": []}]},
            id="nested",
        ),
    ],
)
def test_to_jsonable(value: object, expected: object) -> None:
    assert to_jsonable(value) == expected


def test_to_jsonable_renders_a_str_enum_as_its_plain_value() -> None:
    rendered = to_jsonable([Shade.DARK])

    assert rendered == ["dark"]
    assert type(rendered[0]) is str


def test_to_jsonable_renders_a_dataclass_as_an_object_of_its_fields() -> None:
    assert to_jsonable(Measure(math.nan, 0.2, Status.INSUFFICIENT_DATA, (0.0, math.inf))) == {
        "score": None,
        "threshold": 0.2,
        "level": "insufficient_data",
        "bounds": [0.0, None],
    }


def test_to_jsonable_leaves_a_dataclass_class_alone() -> None:
    assert to_jsonable(Measure) is Measure
