"""End to end: the dashboard and the history of a real `bentoml serve`, the page rendered by headless Chromium.

`python -m tests` installs Debian's `chromium` when it is missing. The rendered page and a screenshot
are kept in tests/artifacts/ (dashboard.html, dashboard.png) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.apps.dashboard import HOSTILE, labels, rows
from tests.fixtures.servers import ROOT, Server, start_server
from tests.fixtures.waiting import wait_for

ARTIFACTS = ROOT / "tests" / "artifacts"
WIDTH, HEIGHT = 1280, 2400
REQUESTS = 17  # what send_traffic sends
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--hide-scrollbars",
)


def chromium_binary() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail(
            "chromium is not installed: run the suite with `python -m tests`, which installs it (apt-get install chromium)"
        )
    return found


def chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    command = [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command)} exited with {result.returncode}:\n{result.stderr[-3000:]}"
    return result


class Elements(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def values(self, attribute: str) -> dict[str, dict[str, str | None]]:
        return {str(a[attribute]): a for _, a in self.elements if attribute in a}


def wait_for_a_new_snapshot(client: httpx.Client) -> None:
    """Wait until the service's periodic evaluation (every 0.5 s) has recorded one more snapshot."""

    def count() -> int:
        return len(client.get("/health/model/history", params={"limit": 10000}).json()["snapshots"])

    before = count()
    assert wait_for(lambda: count() > before, timeout=10.0), "no new health snapshot within 10 s"


def send_traffic(server: Server) -> None:
    """Healthy labelled traffic for a while, some bad requests and a deprecation warning, then drift."""
    client = server.client
    for k in range(6):
        batch = rows(50, seed=100 + k)
        answer = client.post("/predict", json={"rows": batch})
        assert answer.status_code == 200, answer.text
        feedback = client.post("/feedback", json={"request_id": answer.json()["request_id"], "labels": labels(batch)})
        assert feedback.status_code == 200, feedback.text
        wait_for_a_new_snapshot(client)  # the timeline shows the healthy state for a few slots
    assert client.post("/predict", json={"rows": [[1.0, "wide", 0.0, "red"]]}).status_code == 422
    assert client.post("/predict", json={"rows": [[1.0, 2.0]]}).status_code == 422
    assert client.post("/predict", json={"rows": [[-99.0, 0.0, 0.0, "red"]]}).status_code == 200
    for k in range(8):
        batch = rows(50, seed=200 + k, shift=2.0)
        assert client.post("/predict", json={"rows": batch}).status_code == 200
        if k % 2:
            wait_for_a_new_snapshot(client)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dashboard app (history every 0.5 s), after healthy and then drifted traffic."""
    server = start_server("tests.apps.dashboard:svc", tmp_path_factory.mktemp("dashboard"))
    try:
        send_traffic(server)

        def drifted_and_recorded() -> bool:
            checks = server.client.get("/health/model").json()["checks"]
            snapshots = server.client.get("/health/model/history").json()["snapshots"]
            statuses = {s["status"] for s in snapshots}
            return (
                checks["data_drift"]["status"] == "alert"
                and len(snapshots) >= 6
                and "alert" in statuses
                and len(statuses) > 1
                and snapshots[-1]["totals"]["requests"] == REQUESTS
            )

        assert wait_for(drifted_and_recorded, timeout=30, interval=0.5), server.client.get("/health/model/history").text
        yield server
    finally:
        server.stop()


def test_chromium_renders_a_card_per_check_histograms_and_the_timeline(dashboard: Server, tmp_path: Path) -> None:
    report = dashboard.client.get("/health/model").json()

    dom = chromium(tmp_path, "--dump-dom", f"{dashboard.url}/health/model?format=html").stdout
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dashboard.html").write_text(dom)

    page = Elements(dom)
    cards = page.values("data-check")
    assert set(cards) == set(report["checks"])
    assert {name: card["data-status"] for name, card in cards.items()} == {n: c["status"] for n, c in report["checks"].items()}
    assert cards["data_drift"]["data-status"] == "alert"
    figures = page.values("data-feature")
    assert set(figures) == {"a", "b", HOSTILE, "colour", "output_0", "output_1"}
    assert [tag for tag, a in page.elements if a.get("id") in ("overall", "timeline", "latency", "inputs", "outputs")] == [
        "header",
        "section",
        "section",
        "section",
        "section",
    ]
    timeline = dom[dom.index('id="timeline"') : dom.index('id="latency"')]
    assert {"alert"} < set(re.findall(r'data-status="(\w+)"', timeline))
    latency = dom[dom.index('id="latency"') : dom.index('id="inputs"')]
    assert {"validate", "predict", "serialize", "log"} <= set(re.findall(r'data-stage="(\w+)"', latency))
    # Nothing from outside, and the hostile feature name stayed text.
    assert "script" not in {tag for tag, _ in page.elements}
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", dom)
    assert "http://" not in dom
    assert "https://" not in dom
    assert "&lt;script&gt;alert('owned')&lt;/script&gt;" in dom


def test_chromium_screenshot_of_the_dashboard(dashboard: Server, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)

    chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", f"{dashboard.url}/health/model?format=html")

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, HEIGHT)
    assert len(data) > 100_000  # a blank or error page compresses to far less


def test_a_browser_gets_the_page_and_everyone_else_json(dashboard: Server) -> None:
    client = dashboard.client

    default = client.get("/health/model")
    browser = client.get("/health/model", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    forced = client.get("/health/model?format=json", headers={"Accept": "text/html"})
    asked = client.get("/health/model?format=html")

    assert default.headers["content-type"] == "application/json"
    assert "checks" in default.json()
    assert forced.headers["content-type"] == "application/json"
    for reply in (browser, asked):
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        assert reply.text.startswith("<!DOCTYPE html>")
        assert '<meta http-equiv="refresh" content="30">' in reply.text
    bad = client.get("/health/model?format=pdf")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["parameter"] == "format"


def test_history_endpoint_returns_the_timeline(dashboard: Server) -> None:
    client = dashboard.client

    body = client.get("/health/model/history").json()

    assert body["model"] == {"name": "dashboard", "version": None}
    assert body["interval_s"] == 0.5
    snapshots = body["snapshots"]
    times = [s["ts"] for s in snapshots]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert set(snapshots[-1]["checks"]) == set(client.get("/health/model").json()["checks"])
    assert {"validate", "predict", "serialize", "log"} <= set(snapshots[-1]["stages"])
    assert snapshots[-1]["totals"]["requests"] == REQUESTS

    assert len(client.get("/health/model/history?limit=3").json()["snapshots"]) == 3
    since = client.get("/health/model/history", params={"since": times[-3]}).json()["snapshots"]
    assert [s["ts"] for s in since][:3] == times[-3:]
    first = client.get("/health/model/history", params={"since": "2000-01-01T00:00:00Z", "limit": 1}).json()["snapshots"]
    assert len(first) == 1


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("since=last-tuesday", "since"), ("since=nan", "since"), ("limit=0", "limit"), ("limit=lots", "limit")],
)
def test_bad_history_parameters_are_a_400_naming_them(dashboard: Server, query: str, parameter: str) -> None:
    reply = dashboard.client.get(f"/health/model/history?{query}")

    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["parameter"] == parameter
    assert reply.json()["detail"].startswith(f"{parameter}=")


def test_with_a_token_only_the_status_is_public(serve: Callable[..., Server]) -> None:
    token = "e2e-dashboard-token-0123456789"
    server = serve("tests.apps.dashboard:svc", env={"GUARDED_SERVING_TOKEN": token})
    client = server.client
    assert wait_for(lambda: client.get("/health/model/history").json()["count"] >= 1, timeout=30)

    public = client.get("/health/model/history").json()["snapshots"]
    private = client.get("/health/model/history", headers={"Authorization": f"Bearer {token}"}).json()["snapshots"]
    locked = Elements(client.get("/health/model?format=html").text)
    opened = Elements(client.get("/health/model?format=html", headers={"Authorization": f"Bearer {token}"}).text)

    assert {frozenset(s) for s in public} == {frozenset({"ts", "status"})}
    assert "checks" in private[-1]
    assert not locked.values("data-check")
    assert opened.values("data-check")
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    assert client.get("/health/model/history", headers=wrong).status_code == 401
    assert client.get("/health/model?format=html", headers=wrong).status_code == 401
