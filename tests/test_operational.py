"""Operational checks: the pipeline, the log store and the environment, each judged with a one-sentence summary."""

from __future__ import annotations

import pytest

from guarded_serving.environment import EnvironmentDiff, Fingerprint, PackageChange, WarningRecord, diff_environment
from guarded_serving.health import Status
from guarded_serving.operational import (
    EnvironmentDetails,
    PipelineDetails,
    PipelineThresholds,
    StoreDetails,
    environment_check,
    pipeline_check,
    store_check,
)
from guarded_serving.stages import PipelineSummary, RecentRequest, StageSummary, summarise
from guarded_serving.store import StoreStats


def recent(
    requests: int, errors: int = 0, rejected: int = 0, p99: float = 10.0, stages: tuple[StageSummary, ...] = ()
) -> PipelineSummary:
    """A summary of recent requests whose total latency has p50 5 ms and the given p99."""
    return PipelineSummary(requests, errors, rejected, StageSummary("total", requests, errors, 5.0, p99, p99), stages)


def store_stats(pending: int = 3, dropped: int = 0, last_error: str | None = None, capacity: int = 1000) -> StoreStats:
    return StoreStats(
        path="/var/log/model.db",
        pending=pending,
        written=120,
        dropped=dropped,
        capacity=capacity,
        last_error=last_error,
        last_error_at="2026-01-01T00:00:00+00:00" if last_error else None,
        last_flush_at="2026-01-01T00:00:01+00:00",
        flush_interval=1.0,
    )


NO_CHANGE = EnvironmentDiff(python=None, changed=(), missing=(), added=0)
BUDGET = PipelineThresholds(latency_budget_ms=100)


# --- pipeline_check ------------------------------------------------------------------------------------------------


def test_pipeline_without_requests_is_ok() -> None:
    result = pipeline_check(PipelineSummary(0, 0, 0, None, ()))

    assert (result.name, result.status, result.summary) == ("pipeline", Status.OK, "No requests yet.")


def test_healthy_pipeline_summary_names_the_numbers() -> None:
    result = pipeline_check(recent(100))

    assert result.status is Status.OK
    assert result.summary == "100 recent requests, 0.0% failed, 0.0% rejected, p50 5.0 ms, p99 10.0 ms."


@pytest.mark.parametrize(
    ("requests", "errors", "status"),
    [
        pytest.param(200, 1, Status.OK, id="0.5%-ok"),
        pytest.param(100, 1, Status.WARN, id="1%-warn"),
        pytest.param(100, 4, Status.WARN, id="4%-warn"),
        pytest.param(100, 5, Status.ALERT, id="5%-alert"),
        pytest.param(10, 10, Status.ALERT, id="100%-alert"),
    ],
)
def test_error_rate_boundaries(requests: int, errors: int, status: Status) -> None:
    assert pipeline_check(recent(requests, errors=errors)).status is status


def test_error_rate_below_the_warning_is_reported_in_the_ok_summary() -> None:
    result = pipeline_check(recent(200, errors=1))

    assert result.summary == "200 recent requests, 0.5% failed, 0.0% rejected, p50 5.0 ms, p99 10.0 ms."


def test_error_summary_names_the_stages_that_failed_most_first() -> None:
    stages = (StageSummary("prep", 100, 1, 1.0, 1.0, 1.0), StageSummary("forest", 99, 4, 3.0, 8.0, 9.0))

    result = pipeline_check(recent(100, errors=5, stages=stages))

    assert result.summary == "5 of the last 100 requests failed (5.0%): 4 in stage 'forest', 1 in stage 'prep'."


def test_error_summary_names_the_one_stage_that_failed() -> None:
    stages = (StageSummary("validate", 100, 0, 1.0, 1.0, 1.0), StageSummary("prep", 100, 2, 3.0, 8.0, 9.0))

    result = pipeline_check(recent(100, errors=2, stages=stages))

    assert result.summary == "2 of the last 100 requests failed (2.0%), in stage 'prep'."


def test_model_failures_and_rejections_are_reported_apart() -> None:
    """The issue's case: model errors in the `prep` and `forest` steps of a Pipeline, and rejected requests."""
    requests = [RecentRequest("ok", 2.0, {"validate": 0.1, "prep": 0.5, "forest": 1.0, "predict": 1.6}) for _ in range(28)]
    requests += [RecentRequest("rejected", 0.2, {"validate": 0.1}, failed_stage="validate") for _ in range(4)]
    requests += [
        RecentRequest("error", 1.0, {"validate": 0.1, "prep": 0.5, "predict": 0.6}, failed_stage="prep"),
        RecentRequest("error", 1.5, {"validate": 0.1, "prep": 0.5, "forest": 0.4, "predict": 1.0}, failed_stage="forest"),
    ]

    result = pipeline_check(summarise(requests))

    assert result.summary == (
        "2 of the last 34 requests failed (5.9%): 1 in stage 'prep', 1 in stage 'forest';"
        " 4 of the last 34 requests were rejected as invalid input (11.8%)."
    )
    assert {name: s.errors for name, s in result.details.stages.items()} == {"validate": 0, "prep": 1, "forest": 1, "predict": 0}


def test_error_summary_without_a_failing_stage_names_no_stage() -> None:
    assert pipeline_check(recent(100, errors=2)).summary == "2 of the last 100 requests failed (2.0%)."


@pytest.mark.parametrize(
    ("requests", "rejected", "status"),
    [
        pytest.param(19, 19, Status.OK, id="19-requests-all-rejected-too-few-to-judge"),
        pytest.param(100, 4, Status.OK, id="4%-ok"),
        pytest.param(20, 1, Status.WARN, id="5%-warn"),
        pytest.param(20, 4, Status.WARN, id="20%-warn"),
        pytest.param(20, 5, Status.ALERT, id="25%-alert"),
    ],
)
def test_rejection_rate_boundaries(requests: int, rejected: int, status: Status) -> None:
    assert pipeline_check(recent(requests, rejected=rejected)).status is status


def test_rejection_summary_names_the_numbers() -> None:
    result = pipeline_check(recent(20, rejected=5))

    assert result.summary == "5 of the last 20 requests were rejected as invalid input (25.0%)."


def test_minimum_requests_for_rejections_is_configurable() -> None:
    thresholds = PipelineThresholds(min_requests_for_rejections=5)

    assert pipeline_check(recent(10, rejected=10), thresholds).status is Status.ALERT


@pytest.mark.parametrize(
    ("p99", "status"),
    [
        pytest.param(100.0, Status.OK, id="at-budget-ok"),
        pytest.param(150.0, Status.WARN, id="over-budget-warn"),
        pytest.param(200.0, Status.WARN, id="twice-budget-warn"),
        pytest.param(200.5, Status.ALERT, id="over-twice-budget-alert"),
    ],
)
def test_latency_budget_boundaries(p99: float, status: Status) -> None:
    assert pipeline_check(recent(100, p99=p99), BUDGET).status is status


def test_latency_without_a_budget_is_never_judged() -> None:
    assert pipeline_check(recent(100, p99=60_000.0)).status is Status.OK


def test_latency_summary_names_p99_budget_and_slowest_stage() -> None:
    stages = (StageSummary("validate", 100, 0, 1.0, 2.0, 3.0), StageSummary("predict", 100, 0, 3.0, 8.0, 140.0))

    result = pipeline_check(recent(100, p99=150.0, stages=stages), BUDGET)

    assert result.summary == "p99 latency 150.0 ms is over the 100 ms budget; slowest stage 'predict' p99 140.0 ms."


def test_several_findings_are_joined_and_the_worst_status_wins() -> None:
    result = pipeline_check(recent(100, errors=2, rejected=30, p99=150.0), BUDGET)

    assert result.status is Status.ALERT
    assert result.summary == (
        "2 of the last 100 requests failed (2.0%); "
        "30 of the last 100 requests were rejected as invalid input (30.0%); "
        "p99 latency 150.0 ms is over the 100 ms budget."
    )


def test_findings_below_their_warning_level_are_left_out_of_the_summary() -> None:
    result = pipeline_check(recent(200, errors=1, p99=150.0), BUDGET)

    assert result.summary == "p99 latency 150.0 ms is over the 100 ms budget."


def test_pipeline_details_hold_rounded_rates_latencies_and_stages() -> None:
    predict = StageSummary("predict", 300, 1, 3.0, 8.0, 9.0)

    result = pipeline_check(recent(300, errors=1, rejected=2, p99=12.34567, stages=(predict,)), BUDGET)

    assert result.details == PipelineDetails(
        requests=300,
        error_rate=0.0033,
        rejection_rate=0.0067,
        latency_p50_ms=5.0,
        latency_p99_ms=12.346,
        latency_budget_ms=100,
        stages={"predict": predict},
    )


# --- store_check ---------------------------------------------------------------------------------------------------


def test_no_store_is_ok_and_says_requests_are_only_in_memory() -> None:
    result = store_check(None)

    assert (result.name, result.status, result.summary) == (
        "store",
        Status.OK,
        "No log store configured: requests are monitored in memory only.",
    )


def test_healthy_store_summary_names_the_numbers() -> None:
    result = store_check(store_stats())

    assert (result.status, result.summary) == (Status.OK, "120 rows written, 3 pending, none dropped.")


def test_failing_writes_with_a_small_backlog_warn_and_quote_the_error() -> None:
    result = store_check(store_stats(pending=10, last_error="disk I/O error"))

    assert (result.status, result.summary) == (Status.WARN, "Writes are failing (disk I/O error); 10 rows wait in memory.")


@pytest.mark.parametrize(
    ("pending", "status"),
    [
        pytest.param(499, Status.WARN, id="49.9%-full-warn"),
        pytest.param(500, Status.ALERT, id="50%-full-alert"),
        pytest.param(1000, Status.ALERT, id="full-alert"),
    ],
)
def test_failing_writes_alert_once_the_buffer_is_half_full(pending: int, status: Status) -> None:
    assert store_check(store_stats(pending=pending, last_error="disk I/O error")).status is status


def test_a_half_full_buffer_without_errors_warns_that_the_writer_is_behind() -> None:
    result = store_check(store_stats(pending=600))

    assert (result.status, result.summary) == (Status.WARN, "The writer is falling behind: 600 of 1000 buffered rows in use.")


def test_dropped_rows_alert() -> None:
    result = store_check(store_stats(dropped=7))

    assert (result.status, result.summary) == (Status.ALERT, "7 rows were dropped (buffer full, or unwritable records).")


def test_dropped_rows_and_failing_writes_are_both_named() -> None:
    result = store_check(store_stats(pending=600, dropped=7, last_error="disk full"))

    assert (
        result.summary
        == "Writes are failing (disk full); 600 rows wait in memory; 7 rows were dropped (buffer full, or unwritable records)."
    )


def test_store_details_copy_the_stats() -> None:
    details = store_check(store_stats(last_error="disk full")).details

    assert details == StoreDetails(
        path="/var/log/model.db",
        pending=3,
        written=120,
        dropped=0,
        capacity=1000,
        last_error="disk full",
        last_error_at="2026-01-01T00:00:00+00:00",
        last_flush_at="2026-01-01T00:00:01+00:00",
    )


# --- environment_check ---------------------------------------------------------------------------------------------


def test_unchanged_environment_without_warnings_is_ok() -> None:
    result = environment_check(NO_CHANGE, "3.11.7", "3.11.7", ())

    assert (result.name, result.status) == ("environment", Status.OK)
    assert result.summary == "Same package versions as the reference; no deprecation warnings."


def test_a_changed_package_is_named_with_both_versions() -> None:
    diff = EnvironmentDiff(python=None, changed=(PackageChange("numpy", "1.0.0", "2.4.6"),), missing=(), added=0)

    result = environment_check(diff, "3.11.7", "3.11.7", ())

    assert (result.status, result.summary) == (Status.WARN, "1 package differs from the reference: numpy 1.0.0 -> 2.4.6.")


def test_a_missing_package_is_named() -> None:
    diff = EnvironmentDiff(
        python=None,
        changed=(PackageChange("numpy", "1.0.0", "2.4.6"),),
        missing=(PackageChange("joblib", "1.3.0", None),),
        added=0,
    )

    summary = environment_check(diff, "3.11.7", "3.11.7", ()).summary

    assert summary == "2 packages differ from the reference: numpy 1.0.0 -> 2.4.6, joblib 1.3.0 is missing."


def test_more_than_three_package_changes_are_counted_not_listed() -> None:
    old = Fingerprint("3.11.7", "linux", dict.fromkeys(("a", "b", "c", "d", "e"), "1.0"))
    new = Fingerprint("3.11.7", "linux", dict.fromkeys(("a", "b", "c", "d", "e"), "2.0"))

    summary = environment_check(diff_environment(old, new), "3.11.7", "3.11.7", ()).summary

    assert summary == "5 packages differ from the reference: a 1.0 -> 2.0, b 1.0 -> 2.0, c 1.0 -> 2.0 and 2 more."


def test_a_python_change_is_named_with_both_versions() -> None:
    diff = EnvironmentDiff(python=("3.11.7", "3.12.4"), changed=(), missing=(), added=0)

    result = environment_check(diff, "3.11.7", "3.12.4", ())

    assert (result.status, result.summary) == (Status.WARN, "Python 3.11.7 -> 3.12.4.")


def test_warnings_are_named_with_their_total_count_and_the_most_frequent() -> None:
    warnings = (
        WarningRecord("DeprecationWarning", "old api", "model.py:1", 3),
        WarningRecord("FutureWarning", "soon", "model.py:2", 1),
    )

    result = environment_check(NO_CHANGE, "3.11.7", "3.11.7", warnings)

    assert (result.status, result.summary) == (
        Status.WARN,
        "The model raised 4 deprecation/future warnings (DeprecationWarning: 'old api' x3).",
    )


def test_a_single_warning_is_singular() -> None:
    warnings = (WarningRecord("FutureWarning", "soon", "model.py:2", 1),)

    summary = environment_check(NO_CHANGE, "3.11.7", "3.11.7", warnings).summary

    assert summary == "The model raised 1 deprecation/future warning (FutureWarning: 'soon' x1)."


def test_environment_findings_are_joined_in_one_sentence() -> None:
    diff = EnvironmentDiff(python=("3.11.7", "3.12.4"), changed=(PackageChange("numpy", "1.0.0", "2.4.6"),), missing=(), added=3)
    warnings = (WarningRecord("DeprecationWarning", "old api", "model.py:1", 2),)

    summary = environment_check(diff, "3.11.7", "3.12.4", warnings).summary

    assert summary == (
        "Python 3.11.7 -> 3.12.4; 1 package differs from the reference: numpy 1.0.0 -> 2.4.6;"
        " the model raised 2 deprecation/future warnings (DeprecationWarning: 'old api' x2)."
    )


def test_added_packages_alone_keep_the_environment_ok() -> None:
    diff = EnvironmentDiff(python=None, changed=(), missing=(), added=12)

    assert environment_check(diff, "3.11.7", "3.11.7", ()).status is Status.OK


def test_environment_details_hold_both_pythons_changes_and_warnings() -> None:
    change = PackageChange("numpy", "1.0.0", "2.4.6")
    warning = WarningRecord("FutureWarning", "soon", "model.py:2", 1)
    diff = EnvironmentDiff(python=None, changed=(change,), missing=(), added=2)

    details = environment_check(diff, "3.11.7", "3.11.7", (warning,)).details

    assert details == EnvironmentDetails(
        python={"reference": "3.11.7", "current": "3.11.7"}, changed=(change,), missing=(), added=2, warnings=(warning,)
    )
