"""Prometheus metrics (guarded_serving.metrics), with prometheus_client and a fresh registry per test."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
import types
from pathlib import Path

import numpy as np
import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from guarded_serving import ConfigurationError, GuardedModel, HealthReport, Monitor, Reference, Status
from guarded_serving.health import CheckResult
from guarded_serving.metrics import LATENCY_BUCKETS, METRICS, STATUS_VALUES, MetricsExporter, observe_many
from guarded_serving.monitor import ADOPT_ROWS
from guarded_serving.reference import Provenance
from guarded_serving.store import RequestRecord
from tests.fixtures.data import gaussian
from tests.fixtures.servers import ROOT
from tests.fixtures.waiting import wait_for

FEATURES = ["a", "b", "c"]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def factory(registry: CollectorRegistry) -> types.SimpleNamespace:
    """prometheus_client's constructors, bound to the test's own registry."""
    return types.SimpleNamespace(
        **{
            name: functools.partial(getattr(prometheus_client, name), registry=registry)
            for name in ("Gauge", "Counter", "Histogram")
        }
    )


@pytest.fixture
def gaussian_1000x3() -> np.ndarray:
    return gaussian(1000, 3, seed=0)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"version": "", **labels})  # an unversioned model's series


def record(status: str, rows: int = 1, **stages: float) -> RequestRecord:
    return RequestRecord("r", time.time(), "m", None, status, rows, 2.0, dict(stages), None, None)  # type: ignore[arg-type]


def test_a_factory_without_histogram_is_a_configuration_error(gaussian_1000x3: np.ndarray) -> None:
    incomplete = types.SimpleNamespace(Gauge=prometheus_client.Gauge, Counter=prometheus_client.Counter)

    with pytest.raises(ConfigurationError, match="metrics: expected an object with prometheus_client's Histogram"):
        Monitor(gaussian_1000x3, metrics=incomplete)


def test_requests_are_counted_by_outcome_at_the_next_flush_not_on_the_request_path(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", metrics=factory).start()
    assert monitor.metrics is not None

    monitor.observe(gaussian_1000x3[:5], gaussian_1000x3[:5].sum(axis=1))
    monitor.observe(gaussian_1000x3[5:7], gaussian_1000x3[5:7].sum(axis=1))
    monitor.record(record("rejected", 0))
    monitor.record(record("error", 3))
    before = value(registry, "guarded_serving_requests_total", model="m", status="ok")
    monitor.metrics.flush()

    assert before == 0.0
    assert value(registry, "guarded_serving_requests_total", model="m", status="ok") == 2.0
    assert value(registry, "guarded_serving_requests_total", model="m", status="rejected") == 1.0
    assert value(registry, "guarded_serving_requests_total", model="m", status="error") == 1.0
    assert value(registry, "guarded_serving_rows_total", model="m") == 7.0  # rows of answered requests only
    monitor.close()


def test_two_versions_of_a_model_in_one_process_keep_their_own_series(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    current = Monitor(gaussian_1000x3, name="m", version="1", metrics=factory, window=100)
    canary = Monitor(gaussian_1000x3 + 3.0, name="m", version="2", metrics=factory, window=100)  # drifted against its own

    current.observe(gaussian_1000x3[:150], gaussian_1000x3[:150].sum(axis=1))
    canary.observe(gaussian_1000x3[:100], gaussian_1000x3[:100].sum(axis=1))
    for monitor in (current, canary):
        monitor.health()
        assert monitor.metrics is not None
        monitor.metrics.flush()

    assert value(registry, "guarded_serving_rows_total", model="m", version="1") == 150.0
    assert value(registry, "guarded_serving_rows_total", model="m", version="2") == 100.0
    assert value(registry, "guarded_serving_status", model="m", version="1") == STATUS_VALUES[Status.OK]
    assert value(registry, "guarded_serving_status", model="m", version="2") == STATUS_VALUES[Status.ALERT]
    assert value(registry, "guarded_serving_rows_total", model="m") is None  # no unversioned series made
    current.close()
    canary.close()


def test_the_background_thread_flushes_every_interval(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", metrics=factory).start()

    monitor.observe(gaussian_1000x3[:4], gaussian_1000x3[:4].sum(axis=1))

    assert wait_for(lambda: value(registry, "guarded_serving_rows_total", model="m") == 4.0, timeout=5)
    monitor.close()


def test_close_folds_in_what_is_still_queued(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", metrics=factory).start()
    assert monitor.metrics is not None
    monitor.metrics.interval = 3600.0
    monitor.metrics.close()
    monitor.metrics.start()  # restarted with the long interval: only close() can flush now

    monitor.observe(gaussian_1000x3[:3], gaussian_1000x3[:3].sum(axis=1))
    monitor.close()

    assert value(registry, "guarded_serving_rows_total", model="m") == 3.0


def test_every_stage_is_timed_including_the_log_stage_added_after_recording(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    guarded = GuardedModel(
        lambda rows: rows.sum(axis=1), reference=gaussian_1000x3, name="m", db=":memory:", feature_names=FEATURES
    )
    guarded.start(metrics=factory)

    assert guarded.handle_predict(json.dumps({"rows": [[1, 2, 3]]}).encode()).status == 200
    assert guarded.handle_predict(b'{"rows": [[1, "x", 3]]}').status == 422
    guarded.close()

    counts = {
        stage: value(registry, "guarded_serving_stage_duration_seconds_count", model="m", stage=stage)
        for stage in ("validate", "predict", "serialize", "log")
    }
    assert counts == {"validate": 2.0, "predict": 1.0, "serialize": 1.0, "log": 2.0}
    assert value(registry, "guarded_serving_request_duration_seconds_count", model="m", status="rejected") == 1.0


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([0.0, 0.0001, 0.00010001, 0.003, 10.0, 11.0, 250.0], id="on-and-between-bounds"),
        pytest.param(np.random.default_rng(1).lognormal(-6, 2, size=500).tolist(), id="lognormal"),
        pytest.param([], id="none"),
    ],
)
def test_observe_many_fills_the_same_buckets_as_observe(registry: CollectorRegistry, values: list[float]) -> None:
    one = prometheus_client.Histogram("one_seconds", "", buckets=LATENCY_BUCKETS, registry=registry)
    many = prometheus_client.Histogram("many_seconds", "", buckets=LATENCY_BUCKETS, registry=registry)

    for v in values:
        one.observe(v)
    observe_many(many, np.asarray(values, dtype=float))

    def samples(histogram: str) -> dict[str, float]:
        """``_bucket<le>``, ``_count`` and ``_sum`` -> value."""
        return {
            s.name.removeprefix(histogram) + s.labels.get("le", ""): s.value
            for m in registry.collect()
            if m.name == histogram
            for s in m.samples
            if not s.name.endswith("_created")
        }

    one_samples, many_samples = samples("one_seconds"), samples("many_seconds")
    assert len(many_samples) == len(LATENCY_BUCKETS) + 3  # each bucket, +Inf, count, sum
    assert many_samples.pop("_sum") == pytest.approx(one_samples.pop("_sum"))
    assert many_samples == one_samples


def test_observe_many_calls_observe_on_other_histograms() -> None:
    seen: list[float] = []
    histogram = types.SimpleNamespace(observe=seen.append)

    observe_many(histogram, np.array([0.5, 2.0]))

    assert seen == [0.5, 2.0]


def test_the_reference_data_itself_falls_in_the_reference_shares(
    factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    X = gaussian(1000, 3, seed=2)
    X[::10, 1] = np.nan  # one row in ten misses feature b
    monitor = Monitor(X, name="m", feature_names=FEATURES, metrics=factory).start()
    assert monitor.metrics is not None

    for i in range(0, 1000, 100):
        monitor.observe(X[i : i + 100], np.zeros(100))
    monitor.metrics.flush()

    for profile in monitor.reference.features:
        labels = {"model": "m", "source": "input", "feature": profile.name}
        counts = [
            value(registry, "guarded_serving_feature_bin_total", **labels, bin=str(k)) for k in range(len(profile.proportions))
        ]
        shares = [
            value(registry, "guarded_serving_feature_reference_share", **labels, bin=str(k))
            for k in range(len(profile.proportions))
        ]
        missing = value(registry, "guarded_serving_feature_missing_total", **labels)
        present = 1000 - (missing or 0)
        assert np.array(counts) / present == pytest.approx(profile.proportions)
        assert shares == pytest.approx(profile.proportions)
        assert sum(counts) + (missing or 0) == 1000  # type: ignore[arg-type]
    assert value(registry, "guarded_serving_feature_missing_total", model="m", source="input", feature="b") == 100.0
    monitor.close()


def test_categorical_features_get_a_bin_per_common_category_and_one_for_the_rest(
    factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    # 25 categories: "c0" the most common ... "c24" the rarest; only the 20 most common get a bin
    training = [[f"c{k}"] for k in range(25) for _ in range(30 - k)]
    monitor = Monitor(training, name="m", feature_names=["city"], metrics=factory).start()
    assert monitor.metrics is not None

    monitor.observe([["c0"], ["c0"], ["c19"], ["c20"], ["c24"], ["never-seen"], [None]], [0] * 7)
    monitor.metrics.flush()

    def bin_count(name: str) -> float | None:
        return value(registry, "guarded_serving_feature_bin_total", model="m", source="input", feature="city", bin=name)

    assert (bin_count("c0"), bin_count("c19"), bin_count("c20"), bin_count("__other__")) == (2.0, 1.0, None, 3.0)
    assert value(registry, "guarded_serving_feature_missing_total", model="m", source="input", feature="city") == 1.0
    other = value(registry, "guarded_serving_feature_reference_share", model="m", source="input", feature="city", bin="__other__")
    assert other == pytest.approx(sum(30 - k for k in range(20, 25)) / len(training))
    monitor.close()


def test_redacted_features_are_not_exported(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", feature_names=FEATURES, redact=["b"], metrics=factory).start()

    monitor.observe(gaussian_1000x3[:200], gaussian_1000x3[:200].sum(axis=1))
    monitor.health()
    monitor.close()

    exposed = prometheus_client.generate_latest(registry).decode()
    assert 'feature="a"' in exposed
    assert 'feature="b"' not in exposed


def test_predictions_are_binned_against_the_output_profile(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    reference = Reference.from_data(
        gaussian_1000x3, predictions=(gaussian_1000x3[:, 0] > 0).astype(int).astype(str), feature_names=FEATURES
    )
    monitor = Monitor(reference, name="m", metrics=factory).start()
    assert monitor.metrics is not None

    monitor.observe(gaussian_1000x3[:10], ["1"] * 10)
    monitor.metrics.flush()

    labels = {"model": "m", "source": "output", "feature": "prediction"}
    assert value(registry, "guarded_serving_feature_bin_total", **labels, bin="1") == 10.0
    assert value(registry, "guarded_serving_feature_reference_share", **labels, bin="1") == pytest.approx(
        np.mean(gaussian_1000x3[:, 0] > 0)
    )
    monitor.close()


def test_a_health_report_sets_the_status_and_drift_gauges(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", feature_names=FEATURES, metrics=factory).start()
    shifted = gaussian_1000x3[:300] + np.array([0.0, 3.0, 0.0])
    monitor.observe(shifted, shifted.sum(axis=1))

    report = monitor.health()

    drift = report.check("data_drift")
    b = drift.details.features["b"]
    assert report.status is Status.ALERT
    assert value(registry, "guarded_serving_status", model="m") == 2.0
    assert value(registry, "guarded_serving_check_status", model="m", check="data_drift") == 2.0
    assert value(registry, "guarded_serving_check_status", model="m", check="pipeline") == 0.0
    assert value(registry, "guarded_serving_feature_status", model="m", check="data_drift", feature="b") == 2.0
    assert value(registry, "guarded_serving_feature_status", model="m", check="data_drift", feature="a") == 0.0
    assert (
        value(registry, "guarded_serving_drift_score", model="m", check="data_drift", feature="b", method="wasserstein")
        == b.score
    )
    assert (
        value(registry, "guarded_serving_drift_threshold", model="m", check="data_drift", feature="b", method="wasserstein")
        == b.threshold
    )
    stat = value(
        registry, "guarded_serving_drift_statistic", model="m", check="data_drift", feature="b", statistic="mean_shift_std"
    )
    assert stat == b.mean_shift_std
    assert value(registry, "guarded_serving_quality_statistic", model="m", feature="b", statistic="missing_rate") == 0.0
    assert value(registry, "guarded_serving_window_rows", model="m") == 300.0
    assert value(registry, "guarded_serving_health_timestamp_seconds", model="m") == pytest.approx(time.time(), abs=60)
    monitor.close()


def test_a_health_report_sets_the_joint_drift_and_estimated_performance_gauges(
    factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 3))
    X[:, 1] = 0.6 * X[:, 0] + 0.8 * X[:, 1]
    p = 1 / (1 + np.exp(-2 * X[:, 0]))
    reference = Reference.from_data(X, y=(rng.random(2000) < p).astype(int), predictions=np.column_stack([1 - p, p]))
    monitor = Monitor(reference, name="m", feature_names=FEATURES, metrics=factory).start()
    flipped = X[:500] * np.array([1.0, -1.0, 1.0])  # b's relation to a flips, every marginal stays symmetric
    monitor.observe(flipped, np.column_stack([1 - p[:500], p[:500]]))

    report = monitor.health()

    joint, estimate = report.check("joint_drift"), report.check("estimated_performance")
    assert value(registry, "guarded_serving_check_status", model="m", check="joint_drift") == 2.0
    assert value(registry, "guarded_serving_feature_status", model="m", check="joint_drift", feature="f1") == 2.0
    assert (
        value(registry, "guarded_serving_drift_score", model="m", check="joint_drift", feature="f1", method="correlation")
        == joint.details.features["f1"].score
    )
    assert (
        value(registry, "guarded_serving_drift_threshold", model="m", check="joint_drift", feature="f1", method="correlation")
        == joint.details.features["f1"].threshold
    )
    assert value(registry, "guarded_serving_check_status", model="m", check="estimated_performance") == 0.0
    for of, expected in (("window", estimate.details.estimated), ("reference", estimate.details.reference)):
        assert value(registry, "guarded_serving_estimated_performance", model="m", metric="accuracy", of=of) == expected
    low, high = estimate.details.interval
    assert value(registry, "guarded_serving_estimated_performance", model="m", metric="accuracy", of="low") == low
    assert value(registry, "guarded_serving_estimated_performance", model="m", metric="accuracy", of="high") == high
    monitor.close()


def test_gauges_of_features_a_report_no_longer_judges_become_nan(
    factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    training = gaussian(500, 3, seed=4)
    monitor = Monitor(training, name="m", feature_names=FEATURES)
    exporter = MetricsExporter(factory, model="m", inputs=monitor.baseline)
    monitor.observe(training[:200], training[:200].sum(axis=1))
    judged = monitor.health()
    exporter.on_report(judged)
    assert value(registry, "guarded_serving_feature_status", model="m", check="data_drift", feature="a") == 0.0

    insufficient = CheckResult("data_drift", Status.INSUFFICIENT_DATA, "10 rows in the window; drift is judged from 100.")
    exporter.on_report(dataclasses.replace(judged, status=Status.INSUFFICIENT_DATA, checks=(insufficient,)))

    assert math.isnan(value(registry, "guarded_serving_feature_status", model="m", check="data_drift", feature="a") or 0.0)
    assert math.isnan(
        value(registry, "guarded_serving_drift_score", model="m", check="data_drift", feature="a", method="wasserstein") or 0.0
    )
    assert value(registry, "guarded_serving_check_status", model="m", check="data_drift") == -1.0
    assert value(registry, "guarded_serving_status", model="m") == -1.0


def test_status_values_order_like_the_statuses() -> None:
    assert sorted(Status, key=lambda s: STATUS_VALUES[s]) == [Status.INSUFFICIENT_DATA, Status.OK, Status.WARN, Status.ALERT]


def test_store_counters_follow_the_writer(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry, tmp_path: Path
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", db=tmp_path / "m.db", metrics=factory).start()

    for i in range(3):
        monitor.observe(gaussian_1000x3[i * 5 : (i + 1) * 5], np.zeros(5))
    monitor.close()

    assert value(registry, "guarded_serving_store_rows_written_total", model="m") == 15.0
    assert value(registry, "guarded_serving_store_rows_dropped_total", model="m") == 0.0
    assert value(registry, "guarded_serving_store_pending_rows", model="m") == 0.0
    assert value(registry, "guarded_serving_store_failing", model="m") == 0.0


def test_the_queue_is_bounded_and_an_overflow_is_logged(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m")
    exporter = MetricsExporter(factory, model="m", inputs=monitor.baseline, capacity=3)

    for _ in range(10):
        exporter.add(record("ok"))
    with capture_logs() as logs:
        exporter.flush()

    assert value(registry, "guarded_serving_requests_total", model="m", status="ok") == 3.0
    assert [(e["event"], e["skipped"]) for e in logs] == [("metrics_buffer_full", 7)]


def test_monitors_of_two_models_share_one_factory(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    first = Monitor(gaussian_1000x3, name="first", metrics=factory).start()
    second = Monitor(gaussian_1000x3, name="second", metrics=factory).start()

    first.observe(gaussian_1000x3[:2], [0, 0])
    second.observe(gaussian_1000x3[:5], [0] * 5)
    first.close()
    second.close()

    assert value(registry, "guarded_serving_rows_total", model="first") == 2.0
    assert value(registry, "guarded_serving_rows_total", model="second") == 5.0


def test_a_failing_listener_never_fails_the_health_answer(gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", metrics=factory).start()
    assert monitor.metrics is not None
    monitor.metrics._metrics = {}  # every gauge lookup now raises KeyError

    with capture_logs() as logs:
        report = monitor.health()

    monitor.close()

    assert isinstance(report, HealthReport)
    assert [e["event"] for e in logs] == ["health_listener_failed"]


@pytest.mark.parametrize("spec", METRICS, ids=lambda spec: spec.name)
def test_every_metric_is_documented_in_the_readme(spec: object) -> None:
    assert f"`{spec.name}`" in (ROOT / "README.md").read_text()  # type: ignore[attr-defined]


def test_a_monitor_started_again_after_close_exports_again(
    gaussian_1000x3: np.ndarray, factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    monitor = Monitor(gaussian_1000x3, name="m", metrics=factory).start()
    monitor.close()

    monitor.start()
    monitor.observe(gaussian_1000x3[:2], [0, 0])

    assert wait_for(lambda: value(registry, "guarded_serving_rows_total", model="m") == 2.0, timeout=5)
    monitor.close()


def test_output_shares_of_training_rows_are_not_exported_until_a_served_baseline_replaces_them(
    factory: types.SimpleNamespace, registry: CollectorRegistry
) -> None:
    rng = np.random.default_rng(12)
    X = rng.normal(size=(1000, 3))
    trained = Reference.from_data(X, predictions=np.tanh(8 * X[:, 0]), feature_names=FEATURES)  # overconfident
    reference = dataclasses.replace(trained, provenance=Provenance(outputs="training"))
    monitor = Monitor(reference, name="m", window=200, metrics=factory).start()
    labels = {"model": "m", "source": "output", "feature": "prediction", "bin": "0"}
    before = value(registry, "guarded_serving_feature_reference_share", **labels)
    served = rng.normal(size=(ADOPT_ROWS, 3))
    monitor.observe(served, np.tanh(served[:, 0]))

    assert monitor.health().check("prediction_drift").details.baseline.source == "served traffic"
    shares = [value(registry, "guarded_serving_feature_reference_share", **{**labels, "bin": str(k)}) for k in range(10)]
    monitor.close()
    assert math.isnan(before)
    edges = np.asarray(reference.outputs[0].edges)
    adopted = np.tanh(served[:, 0]).astype(np.float32)
    expected = np.bincount(np.searchsorted(edges, adopted, side="right"), minlength=10) / ADOPT_ROWS
    assert shares == pytest.approx(expected.tolist())
