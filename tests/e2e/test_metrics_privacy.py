"""/metrics privacy: metrics_labels decides what the Prometheus metrics (served without the token) name."""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator

import numpy as np
import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from guarded_serving import ConfigurationError, Monitor
from tests.apps.quiet_metrics import TRAINING
from tests.fixtures.servers import Server, start_server

FEATURES = ["age", "city"]


def exposition(metrics_labels: str | None) -> str:
    """What /metrics would show of a monitor (one categorical feature) after 200 rows and a health report."""
    registry = CollectorRegistry()
    constructors = ("Gauge", "Counter", "Histogram")
    factory = types.SimpleNamespace(
        **{name: functools.partial(getattr(prometheus_client, name), registry=registry) for name in constructors}
    )
    keywords = {} if metrics_labels is None else {"metrics_labels": metrics_labels}
    monitor = Monitor(TRAINING, feature_names=FEATURES, categorical=["city"], name="m", metrics=factory, window=100, **keywords)
    with monitor:
        monitor.observe(TRAINING[:200], np.zeros(200))
        monitor.health()
        assert monitor.metrics is not None
        monitor.metrics.flush()
        return prometheus_client.generate_latest(registry).decode()


def test_by_default_metrics_name_features_and_the_references_categories() -> None:
    text = exposition(None)

    assert 'bin="Springfield"' in text
    assert 'guarded_serving_drift_score{check="data_drift",feature="city"' in text


def test_indexed_metrics_name_categories_by_rank_and_keep_the_drift_statistics() -> None:
    text = exposition("indexed")

    assert [city for city in ("Springfield", "Shelbyville", "Ogdenville") if city in text] == []
    assert 'guarded_serving_feature_bin_total{bin="c0",feature="city",model="m",source="input",version=""}' in text
    assert 'guarded_serving_drift_score{check="data_drift",feature="city"' in text


def test_metrics_without_labels_export_no_per_feature_series() -> None:
    text = exposition("none")
    series = [line for line in text.splitlines() if line.startswith("guarded_serving_")]

    assert [line for line in series if "feature=" in line or "bin=" in line] == []
    assert 'guarded_serving_status{model="m",version=""}' in text
    assert 'guarded_serving_check_status{check="data_drift",model="m",version=""}' in text
    assert 'guarded_serving_rows_total{model="m",version=""} 200.0' in text


def test_an_unknown_metrics_labels_value_names_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"metrics_labels: expected one of \['names', 'indexed', 'none'\], got 'bins'"):
        Monitor(TRAINING, feature_names=FEATURES, categorical=["city"], metrics_labels="bins")


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server("tests.apps.quiet_metrics:quiet", tmp_path_factory.mktemp("quiet"))
    yield server
    server.stop()


def test_a_served_metrics_endpoint_without_labels_shows_no_feature_or_category(quiet: Server) -> None:
    for i in range(20):
        rows = [[30 + i, "Springfield"], [50, "Ogdenville"], [45, "Shelbyville"], [41, "Springfield"], [39, "Ogdenville"]]
        assert quiet.client.post("/predict", json={"rows": rows}).status_code == 200
    assert quiet.client.get("/health/model").status_code == 200

    text = quiet.client.get("/metrics").text
    # BentoML's multiprocess files may hold other services' series on a shared machine: this model's only
    ours = [line for line in text.splitlines() if line.startswith("guarded_serving_") and 'model="quiet"' in line]
    assert any(line.startswith('guarded_serving_status{model="quiet",version=""}') for line in ours)
    assert [line for line in ours if "feature=" in line or "bin=" in line] == []
    assert [line for line in ours if "Springfield" in line] == []
