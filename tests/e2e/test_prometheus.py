"""Prometheus end to end: BentoML's own /metrics with two workers, a real Prometheus server scraping
the service, and the shipped recording rules and Grafana dashboard.

Prometheus and promtool are Debian's ``prometheus`` package (``python -m tests`` installs it when
missing). Each server gets its own BENTOML_HOME, so that its prometheus multiprocess directory (which
``bentoml serve`` empties when it starts) is its own.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from guarded_serving.metrics import METRICS, STATUS_VALUES
from tests.fixtures.servers import ROOT, Server, free_port
from tests.fixtures.waiting import wait_for

RULES = ROOT / "examples" / "prometheus" / "recording_rules.yml"
DASHBOARD = ROOT / "examples" / "grafana" / "guarded_serving.json"
MODEL = "toy-two"
STATUS_CODES = {status.value: code for status, code in STATUS_VALUES.items()}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: `python -m tests` installs Debian's prometheus package (apt-get install prometheus)"
        )
    return path


def exported_names() -> set[str]:
    """Every sample name the service can expose (histograms as their _bucket, _count and _sum)."""
    names = set()
    for spec in METRICS:
        suffixes = ("_bucket", "_count", "_sum") if spec.kind == "histogram" else ("",)
        names.update(spec.name + suffix for suffix in suffixes)
    return names


def recorded_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def scrape(server: Server) -> list[Sample]:
    """The guard's samples in the service's /metrics (BentoML's own are checked to be there too)."""
    text = server.client.get("/metrics").text
    assert "bentoml_service_request_total" in text or "bentoml_api_server_request_total" in text
    return [
        Sample(s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("guarded_serving_")
    ]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def serve_isolated(serve: Callable[..., Server], tmp_path: Path) -> Server:
    """The toy model with two workers (tests/apps/toy.py), in a BENTOML_HOME of its own."""
    return serve("tests.apps.toy:two", env={"BENTOML_HOME": str(tmp_path / "bentoml-home")})


def workers_in(server: Server) -> int:
    with sqlite3.connect(server.db) as conn:
        return int(conn.execute("SELECT count(DISTINCT worker) FROM requests").fetchone()[0])


def send_until_both_workers_served(server: Server, rows_per_request: int, shift: float = 0.0) -> int:
    """Send 40-request rounds on new connections, 8 at a time, until both workers have answered some
    (the kernel decides which worker accepts). Returns the requests sent."""
    rng = np.random.default_rng(11)
    sent = 0
    with httpx.Client(base_url=server.url, timeout=30, headers={"Connection": "close"}) as client:

        def send(_: int) -> int:
            rows = rng.normal(size=(rows_per_request, 3)) + np.array([0.0, shift, 0.0])
            return client.post("/predict", json={"rows": rows.tolist()}).status_code

        for _ in range(10):
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                assert set(pool.map(send, range(40))) == {200}
            sent += 40
            if wait_for(lambda: workers_in(server) == 2, timeout=2):
                return sent
    raise AssertionError("one worker answered every request")


def test_two_workers_count_every_request_once_and_expose_one_value_per_gauge(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve_isolated(serve, tmp_path)

    requests = send_until_both_workers_served(server, rows_per_request=5)
    for _ in range(3):
        assert server.client.post("/predict", json={"rows": [[1, "x", 3]]}).status_code == 422
    rows = 5 * requests

    def all_counted() -> bool:
        samples = scrape(server)
        return (
            total(samples, "guarded_serving_requests_total", status="ok") == requests
            and total(samples, "guarded_serving_requests_total", status="rejected") == 3
            and total(samples, "guarded_serving_store_rows_written_total") == rows
        )

    assert wait_for(all_counted, timeout=20), scrape(server)
    for _ in range(6):  # both workers compute reports, each setting the gauges
        with httpx.Client(base_url=server.url, timeout=30) as fresh:
            last = fresh.get("/health/model").json()
    samples = scrape(server)

    assert total(samples, "guarded_serving_rows_total") == rows
    assert total(samples, "guarded_serving_stage_duration_seconds_count", stage="predict") == requests
    assert total(samples, "guarded_serving_stage_duration_seconds_count", stage="log") == requests + 3
    for feature in ("a", "b", "c"):
        assert total(samples, "guarded_serving_feature_bin_total", feature=feature) == rows
        assert total(samples, "guarded_serving_feature_reference_share", feature=feature) == pytest.approx(1.0)
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
    assert len(keys) == len(set(keys)), "a series appears twice"
    assert not [s for s in samples if "pid" in s.labels], "a gauge is exposed per worker"
    assert [s.value for s in samples if s.name == "guarded_serving_status"] == [STATUS_CODES[last["status"]]]
    assert {s.name for s in samples} <= exported_names()
    assert {s.labels["model"] for s in samples} == {MODEL}


class Prometheus:
    """A Prometheus server of our own (not the Debian package's service) scraping one target every second."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [{"job_name": "guarded_serving", "static_configs": [{"targets": [target]}]}],
                }
            )
        )
        self.log = tmp_path / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> Any:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
        response = httpx.get(self.url + path, params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/query", query=promql)["result"])

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def target_up(self) -> bool:
        try:  # until its storage is ready, Prometheus answers 503
            if httpx.get(self.url + "/-/ready", timeout=5).status_code != 200:
                return False
        except httpx.TransportError:
            return False
        targets = self.api("/api/v1/targets")["activeTargets"]
        return bool(targets) and targets[0]["health"] == "up"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        started.append(Prometheus(tmp_path, target))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_prometheus_reads_the_drift_gauge_and_the_rules_compute_fleet_drift(serve, prometheus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve_isolated(serve, tmp_path)
    prom = prometheus(server.url.removeprefix("http://"))
    assert wait_for(prom.target_up, timeout=60), prom.log.read_text()[-3000:]
    # the counters' first scrape must see them at 0, so that increase() counts every row sent after it
    assert wait_for(lambda: prom.value('sum(guarded_serving_feature_bin_total{feature="b"})') == 0.0, timeout=30)

    rng = np.random.default_rng(5)
    for _ in range(30):  # 300 rows whose feature b moved by 3 standard deviations
        rows = rng.normal(size=(10, 3)) + np.array([0.0, 3.0, 0.0])
        assert server.client.post("/predict", json={"rows": rows.tolist()}).status_code == 200
    assert wait_for(lambda: server.client.get("/health/model").json()["window"]["rows"] == 300, timeout=15)
    report = server.client.get("/health/model").json()
    drift = report["checks"]["data_drift"]["features"]["b"]
    assert drift["status"] == "alert"

    score = f'guarded_serving_drift_score{{model="{MODEL}", check="data_drift", feature="b", method="wasserstein"}}'
    assert wait_for(lambda: prom.value(score) == drift["score"], timeout=30), prom.query(score)
    assert prom.value(f'guarded_serving_status{{model="{MODEL}"}}') == 2.0

    # Fleet drift from the bin counters, by the shipped recording rules: with one replica and all its
    # rows in the window, the fleet's PSI is the service's own PSI of the window (rounded to 4 digits).
    assert wait_for(lambda: prom.value('sum(guarded_serving_feature_bin_total{feature="b"})') == 300.0, timeout=30)
    fleet_psi = f'guarded_serving:feature_psi:1h{{model="{MODEL}", source="input", feature="b"}}'

    def psi_settled() -> bool:
        found = prom.value(fleet_psi)
        return found is not None and abs(found - drift["psi"]) < 1e-4

    assert wait_for(psi_settled, timeout=30), (prom.query(fleet_psi), drift["psi"])
    samples = scrape(server)
    counts = np.array([s.value for s in samples if s.name == "guarded_serving_feature_bin_total" and s.labels["feature"] == "b"])
    shares = np.array(
        [s.value for s in samples if s.name == "guarded_serving_feature_reference_share" and s.labels["feature"] == "b"]
    )
    expected_tv = 0.5 * np.abs(counts / counts.sum() - shares).sum()
    tv = prom.value(f'guarded_serving:feature_tv:1h{{model="{MODEL}", source="input", feature="b"}}')
    assert tv == pytest.approx(expected_tv, rel=1e-9)
    assert tv > 0.5

    # Every query of the Grafana dashboard is valid PromQL on this server, and the ones about this model answer.
    for expr in dashboard_queries():
        concrete = expr.replace("$model", MODEL).replace("$feature", "b").replace("$__rate_interval", "1m")
        answer = prom.query(concrete.replace("$version", ".*"))  # "All" versions, the unversioned one ("") among them
        if "guarded_serving_status{" in expr:
            assert [series["metric"].get("version", "") for series in answer] == [""]  # one series per version


def dashboard_queries() -> list[str]:
    """The PromQL of every panel target, and the series selectors of the template variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.*), \w+\)", variable["query"]["query"])
            assert found, variable["query"]
            queries.append(found.group(1))
    return queries


def test_the_recording_rules_pass_promtool() -> None:
    checked = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_fleet_drift_rules_add_up_every_replica(tmp_path: Path) -> None:
    """promtool's rule unit test: two replicas of one model; replica a sends rows in the reference's
    proportions, replica b only to bins 1 and 2. The fleet's shares are their sum."""
    reference = np.array([0.5, 0.3, 0.2])
    per_minute = {"a": np.array([5, 3, 2]), "b": np.array([0, 5, 5])}
    fleet = sum(per_minute.values()) / sum(v.sum() for v in per_minute.values())  # type: ignore[union-attr]
    series = []
    for instance, counts in per_minute.items():
        for k in range(3):
            labels = f'instance="{instance}", model="m", source="input", feature="x", bin="{k}"'
            series.append({"series": f"guarded_serving_feature_bin_total{{{labels}}}", "values": f"0+{counts[k]}x60"})
            series.append({"series": f"guarded_serving_feature_reference_share{{{labels}}}", "values": f"{reference[k]}x60"})
    p, q = np.maximum(fleet, 1e-4), np.maximum(reference, 1e-4)
    expected = {
        "guarded_serving:feature_tv:1h": float(0.5 * np.abs(fleet - reference).sum()),
        "guarded_serving:feature_psi:1h": float(np.sum((p - q) * np.log(p / q))),
    }
    # `sum by` adds in no fixed order: compare to 1e-12, as a 0/1 answer, not to the last bit
    close = {f"abs({name} - {value!r}) < bool 1e-12": name for name, value in expected.items()}
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "60m",
                        "exp_samples": [{"labels": '{model="m", source="input", feature="x"}', "value": 1}],
                    }
                    for expr in close
                ],
            }
        ],
    }
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(test))

    tested = subprocess.run(
        [tool("promtool"), "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert expected["guarded_serving:feature_tv:1h"] == pytest.approx(0.25)


def test_the_grafana_dashboard_queries_only_metrics_the_service_exports_or_the_rules_record() -> None:
    known = exported_names() | recorded_names()

    used = {name for expr in dashboard_queries() for name in re.findall(r"\bguarded_serving[a-zA-Z0-9_:]*", expr)}

    assert used - known == set()
    assert {"guarded_serving:feature_psi:1h", "guarded_serving_drift_score", "guarded_serving_status"} <= used


def test_the_grafana_dashboard_is_importable_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]

    assert dashboard["uid"] == "guarded-serving"
    assert dashboard["schemaVersion"] >= 30
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(t["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels for t in p.get("targets", []))
    assert all(set(p["gridPos"]) == {"h", "w", "x", "y"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in panels)
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource", "model", "version", "feature"]
    # two versions of a model (a canary beside the current one) are told apart: every panel picks the versions shown
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert all('version=~"$version"' in q for q in queries if 'model=~"$model"' in q)
    assert sum("by (model, version)" in q for q in queries) >= 2
