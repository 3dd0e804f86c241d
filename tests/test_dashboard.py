"""The HTML dashboard: a pure renderer (escaping, offline, every check), histograms on the reference's
bins, and content negotiation and the history endpoint on GuardedModel, without a server."""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from guarded_serving import CheckResult, GuardedModel, HealthReport, Monitor, Reference, Status
from guarded_serving.dashboard import render_dashboard
from guarded_serving.drift.baseline import Baseline
from guarded_serving.drift.bins import bin_counts
from guarded_serving.drift.encoder import Encoder
from guarded_serving.histograms import FeatureHistogram, feature_histograms
from guarded_serving.history import Snapshot, StageLatency
from guarded_serving.http import prefers_html
from guarded_serving.times import parse_since
from tests.fixtures.data import gaussian
from tests.fixtures.waiting import wait_for

HOSTILE = "<script>alert('owned')</script>"
TOKEN = "dashboard-token-0123456789"
CHROME_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


class Page(HTMLParser):
    """The elements of a page: tag names and attributes, and its text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, attribute: str) -> dict[str, dict[str, str | None]]:
        return {str(a[attribute]): a for _, a in self.elements if attribute in a}


def report(status: Status = Status.ALERT) -> HealthReport:
    drift = {"features": {HOSTILE: {"status": "alert", "drifted": True, "reason": "mean +1.2 std"}, "b": {"status": "ok"}}}
    return HealthReport(
        status=status,
        model_name="churn<b>",
        model_version="v1",
        generated_at="2026-01-01T00:11:30.000+00:00",
        window_rows=500,
        window_capacity=1000,
        requests=120,
        rows=500,
        rejected=3,
        errors=1,
        checks=(
            CheckResult("data_drift", status, f"1 of 2 features drifted: {HOSTILE}: mean +1.2 std.", drift),
            CheckResult(
                "pipeline", Status.OK, "120 recent requests & <fine>.", {"stages": {"predict": {"count": 120, "p50_ms": 2.0}}}
            ),
            CheckResult("store", Status.WARN, "Writes are failing."),
            CheckResult("environment", Status.INSUFFICIENT_DATA, "n/a"),
        ),
    )


def history(n: int = 12) -> list[Snapshot]:
    out = []
    for k in range(n):
        status = Status.OK if k < n // 2 else Status.ALERT
        checks = Snapshot.of(report(status)).checks
        stages = (StageLatency("predict", 10, 1.0 + k / 10, 2.0 + k / 10, 3.0), StageLatency(HOSTILE, 10, 0.1, 0.2, 0.3))
        out.append(Snapshot(1_767_225_600.0 + 60 * k, status, checks, stages, 500, 10 * k, 40 * k, 0, 0))
    return out


def histograms() -> tuple[FeatureHistogram, ...]:
    return (
        FeatureHistogram(HOSTILE, "numeric", "input", ("< 0", "0 to 1", ">= 1"), (0.3, 0.4, 0.3), (10, 20, 70), (0.0, 1.0)),
        FeatureHistogram("colour", "categorical", "input", ("<i>red</i>", "blue", "unseen"), (0.6, 0.4, 0.0), (50, 40, 10)),
        FeatureHistogram("output_1", "numeric", "output", ("< 0.5", ">= 0.5"), (0.5, 0.5), (30, 70), (0.5,)),
    )


@pytest.fixture(scope="module")
def page() -> str:
    return render_dashboard(report(), histograms(), history(), refresh_seconds=30)


# -- the renderer ---------------------------------------------------------------------------------


def test_every_check_has_a_card_with_its_status_and_summary(page: str) -> None:
    cards = Page(page).having("data-check")

    assert {name: card["data-status"] for name, card in cards.items()} == {
        "data_drift": "alert",
        "pipeline": "ok",
        "store": "warn",
        "environment": "insufficient_data",
    }
    assert "120 recent requests &amp; &lt;fine&gt;." in page
    assert "Writes are failing." in page


def test_the_overall_status_and_totals_are_shown(page: str) -> None:
    parsed = Page(page)

    assert parsed.having("data-status")["alert"]  # the <body> and the alert card
    assert ("body", {"data-status": "alert"}) in parsed.elements
    text = " ".join(parsed.text)
    assert "churn<b>" in text
    assert "v1" in text
    assert all(word in text for word in ("requests", "rejected", "errors", "500 / 1,000"))


def test_data_is_escaped_everywhere(page: str) -> None:
    parsed = Page(page)

    assert "script" not in {tag for tag, _ in parsed.elements}
    assert "<script" not in page
    assert "<i>red</i>" not in page
    assert "churn<b>" not in page
    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page
    assert HOSTILE in parsed.having("data-feature")  # the attribute holds the real name once parsed
    assert HOSTILE in " ".join(parsed.text)


def test_the_page_is_self_contained(page: str) -> None:
    parsed = Page(page)

    assert "http://" not in page
    assert "https://" not in page
    assert not [a for _, a in parsed.elements if "src" in a or "href" in a]
    assert not {"script", "link", "img", "iframe", "object", "embed"} & {tag for tag, _ in parsed.elements}
    assert "@import" not in page
    assert "url(" not in page


def test_the_page_refreshes_itself_only_when_asked(page: str) -> None:
    assert ("meta", {"http-equiv": "refresh", "content": "30"}) in Page(page).elements
    assert "http-equiv" not in render_dashboard(report(), histograms(), history())


def test_histograms_are_drawn_per_feature_with_its_drift_status(page: str) -> None:
    figures = Page(page).having("data-feature")

    assert {name: f["data-role"] for name, f in figures.items()} == {HOSTILE: "input", "colour": "input", "output_1": "output"}
    section = page[page.index('id="inputs"') : page.index('id="outputs"')]
    assert section.count("<rect") == 2 * 3 + 2 * 3  # a reference and a current bar per bin
    assert '<span class="badge alert">alert</span>' in section  # the hostile feature drifted


def test_the_timeline_has_a_row_per_check_and_merges_equal_statuses(page: str) -> None:
    timeline = page[page.index('id="timeline"') : page.index('id="latency"')]

    bars = re.findall(r'<rect [^>]*data-status="(\w+)"', timeline)
    assert bars == ["ok", "alert", "ok", "alert", "ok", "warn", "insufficient_data"]  # overall, data_drift, then one run each
    assert all(f">{name}</text>" in timeline for name in ("overall", "data_drift", "pipeline", "store", "environment"))
    assert "12 snapshots" in timeline


def test_stage_latencies_are_drawn_over_time(page: str) -> None:
    latency = page[page.index('id="latency"') : page.index('id="inputs"')]

    lines = [(a["data-stage"], "stroke-dasharray" in a) for tag, a in Page(latency).elements if tag == "polyline"]
    assert lines == [("predict", False), ("predict", True), (HOSTILE, False), (HOSTILE, True)]  # p50 solid, p95 dashed
    assert all(len(points.split()) == 12 for points in re.findall(r'<polyline points="([^"]+)"', latency))


def test_one_slow_moment_switches_latencies_to_a_log_scale(page: str) -> None:
    slow = history()
    slow[3] = dataclasses.replace(slow[3], stages=(StageLatency("predict", 10, 1.0, 900.0, 950.0),))

    latency = render_dashboard(report(), (), slow).split('id="latency"')[1]

    assert "ms (log scale)" in latency
    assert "ms (log scale)" not in page  # latencies of one order of magnitude stay linear
    assert [t for t in ("0.1", "1", "10", "100", "1000") if f">{t}</text>" in latency] == ["0.1", "1", "10", "100", "1000"]


def test_without_history_the_page_says_so() -> None:
    page = render_dashboard(report(), (), ())

    assert "No health snapshots yet" in page
    assert "Not enough snapshots" in page
    assert set(Page(page).having("data-check")) == {"data_drift", "pipeline", "store", "environment"}


def test_without_detail_only_the_overall_status_is_shown() -> None:
    page = render_dashboard(report(Status.WARN), histograms(), history(), detail=False)
    parsed = Page(page)

    assert not parsed.having("data-check")
    assert not parsed.having("data-feature")
    assert "Writes are failing" not in page
    assert "timeline" not in page
    assert ("body", {"data-status": "warn"}) in parsed.elements
    assert "bearer token" in page


# -- histograms on the reference's bins ----------------------------------------------------------


def test_bin_counts_of_the_reference_itself_are_its_proportions() -> None:
    rng = np.random.default_rng(0)
    data = np.c_[rng.normal(size=1000), rng.integers(0, 4, size=1000)]
    reference = Reference.from_data(data, feature_names=["x", "k"])
    encoded = Encoder(Baseline.from_profiles(reference.features)).encode(data.tolist(), {}, {})

    for j, profile in enumerate(reference.features):
        counts = bin_counts(profile, encoded[:, j])
        assert counts.sum() == 1000
        np.testing.assert_allclose(counts / 1000, profile.proportions)


def test_numeric_histograms_put_values_beyond_the_range_in_the_open_bins_and_count_missing() -> None:
    reference = Reference.from_data(np.arange(100.0).reshape(-1, 1), feature_names=["x"])
    profile = reference.features[0]
    window = np.array([[-1e9], [1e9], [np.nan], [50.0]])

    (h,) = feature_histograms(reference.features, window)

    assert h.current[0] == 1
    assert h.current[-1] == 1
    assert sum(h.current) == 3
    assert h.missing_current == 1
    assert h.reference == profile.proportions
    assert h.edges == profile.edges
    assert h.labels[0] == f"< {profile.edges[0]:g}"
    assert h.labels[-1].startswith(">= ")


def test_categorical_histograms_keep_the_common_categories_then_other_then_unseen() -> None:
    names = [f"c{k:02d}" for k in range(20)]
    data = [[name] for k, name in enumerate(names) for _ in range(40 - k)]
    reference = Reference.from_data(data, feature_names=["k"])
    encoded = Encoder(Baseline.from_profiles(reference.features)).encode([["c00"], ["c19"], ["new"], [None]], {}, {})

    (h,) = feature_histograms(reference.features, encoded)

    assert h.labels == (*names[:11], "other (9)", "unseen")
    assert h.current == (1, *[0] * 10, 1, 1)
    assert sum(h.reference) == pytest.approx(1.0)
    assert h.missing_current == 1


def test_redacted_features_get_no_histogram() -> None:
    training = gaussian(300, 3, seed=2)
    monitor = Monitor(Reference.from_data(training, feature_names=["age", "ssn", "income"]), redact=["ssn"])
    monitor.observe(training[:50], training[:50].sum(axis=1))

    assert [h.name for h in monitor.histograms()] == ["age", "income"]


# -- content negotiation and the history endpoint, without a server ------------------------------


def make(**kwargs: object) -> GuardedModel:
    training = gaussian(300, 2, seed=3)
    guarded = GuardedModel(lambda x: np.asarray(x)[:, 0], reference=training, name="m", db=":memory:", **kwargs)  # type: ignore[arg-type]
    for k in range(3):
        guarded.handle_predict(json.dumps({"rows": training[k * 50 : (k + 1) * 50].tolist()}).encode(), "application/json")
    return guarded


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        pytest.param(CHROME_ACCEPT, True, id="browser"),
        pytest.param("text/html", True, id="html"),
        pytest.param("text/html, */*", True, id="html-and-anything"),
        pytest.param("*/*", False, id="anything"),
        pytest.param(None, False, id="none"),
        pytest.param("application/json", False, id="json"),
        pytest.param("text/html, application/json", False, id="tie-is-json"),
        pytest.param("text/html;q=0.5, application/json", False, id="json-preferred"),
        pytest.param("text/html;q=0", False, id="html-refused"),
    ],
)
def test_html_is_for_clients_that_prefer_it(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


def test_health_is_json_by_default_and_html_on_request() -> None:
    guarded = make()

    assert json.loads(guarded.health_reply().body)["checks"]
    assert guarded.health_reply(format="json", accept=CHROME_ACCEPT).media_type == "application/json"
    for reply in (guarded.health_reply(format="html"), guarded.health_reply(accept=CHROME_ACCEPT)):
        assert reply.status == 200
        assert reply.media_type == "text/html; charset=utf-8"
        page = reply.body.decode()
        assert set(Page(page).having("data-check")) == {c.name for c in guarded.start().health().checks}
        assert set(Page(page).having("data-feature")) == {"f0", "f1", "prediction"}


def test_fail_on_applies_to_the_page_too() -> None:
    guarded = make()
    shifted = gaussian(200, 2, seed=4) + 3
    guarded.handle_predict(json.dumps({"rows": shifted.tolist()}).encode(), "application/json")

    reply = guarded.health_reply(fail_on="alert", format="html")

    assert reply.status == 503
    assert Page(reply.body.decode()).having("data-check")["data_drift"]["data-status"] == "alert"


def test_an_unknown_format_is_a_400_naming_it() -> None:
    reply = make().health_reply(format="xml")

    assert reply.status == 400
    assert reply.media_type == "application/problem+json"
    body = json.loads(reply.body)
    assert body["parameter"] == "format"
    assert body["detail"] == "format='xml'; expected 'json' or 'html'"


def test_without_the_token_the_page_shows_only_the_overall_status() -> None:
    guarded = make(auth_token=TOKEN)

    locked = guarded.health_reply(format="html").body.decode()
    opened = guarded.health_reply(format="html", authorization=f"Bearer {TOKEN}").body.decode()

    assert not Page(locked).having("data-check")
    assert "bearer token" in locked
    assert Page(opened).having("data-check")
    assert guarded.health_reply(format="html", authorization="Bearer wrong-token-0123456789").status == 401


def test_history_reply_lists_snapshots_oldest_first() -> None:
    guarded = make(history_interval=0.05)
    monitor = guarded.start()  # judges health every 0.05 s by itself
    try:
        assert wait_for(lambda: len(monitor.history()) >= 3, timeout=10)

        body = json.loads(guarded.history_reply().body)
        assert body["model"] == {"name": "m", "version": None}
        assert body["interval_s"] == 0.05
        assert body["count"] == len(body["snapshots"]) >= 3
        times = [s["ts"] for s in body["snapshots"]]
        assert times == sorted(times)
        assert set(body["snapshots"][-1]["checks"]) == {c.name for c in monitor.health().checks}
        assert json.loads(guarded.history_reply(limit="2").body)["count"] == 2
        since = json.loads(guarded.history_reply(since=times[-2]).body)["snapshots"]
        assert [s["ts"] for s in since][:2] == times[-2:]
        assert json.loads(guarded.history_reply(since="9999-01-01T00:00:00Z").body)["count"] == 0
    finally:
        guarded.close()


@pytest.mark.parametrize(
    ("since", "limit", "parameter", "expected"),
    [
        pytest.param("yesterday", None, "since", "an ISO 8601 time", id="since-word"),
        pytest.param("2026-13-01", None, "since", "or epoch seconds", id="since-bad-date"),
        pytest.param("nan", None, "since", "an ISO 8601 time", id="since-nan"),
        pytest.param("-1", None, "since", "an ISO 8601 time", id="since-negative"),
        pytest.param(None, "0", "limit", "an integer from 1 to 10000", id="limit-zero"),
        pytest.param(None, "ten", "limit", "an integer from 1 to 10000", id="limit-word"),
        pytest.param(None, "10001", "limit", "an integer from 1 to 10000", id="limit-too-big"),
        pytest.param(None, "-3", "limit", "an integer from 1 to 10000", id="limit-negative"),
    ],
)
def test_bad_history_parameters_are_a_400_naming_them(
    since: str | None, limit: str | None, parameter: str, expected: str
) -> None:
    reply = make().history_reply(since=since, limit=limit)

    assert reply.status == 400
    assert reply.media_type == "application/problem+json"
    body = json.loads(reply.body)
    assert body["parameter"] == parameter
    assert body["detail"].startswith(f"{parameter}=")
    assert expected in body["detail"]


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        pytest.param("2026-01-31T12:00:00Z", 1769860800.0, id="iso-z"),
        pytest.param("2026-01-31T12:00:00", 1769860800.0, id="iso-naive-is-utc"),
        pytest.param("2026-01-31T13:00:00+01:00", 1769860800.0, id="iso-offset"),
        pytest.param("2026-01-31T13:00:00 01:00", 1769860800.0, id="iso-offset-plus-decoded-as-space"),
        pytest.param("1769860800", 1769860800.0, id="epoch"),
        pytest.param("1769860800.5", 1769860800.5, id="epoch-fraction"),
        pytest.param(None, None, id="none"),
    ],
)
def test_since_reads_iso_times_and_epoch_seconds(text: str | None, epoch: float | None) -> None:
    assert parse_since(text) == epoch


def test_history_without_the_token_has_only_times_and_statuses() -> None:
    guarded = make(auth_token=TOKEN)
    guarded.start().health()

    locked = json.loads(guarded.history_reply().body)
    opened = json.loads(guarded.history_reply(authorization=f"Bearer {TOKEN}").body)

    assert [set(s) for s in locked["snapshots"]] == [{"ts", "status"}]
    assert {"checks", "stages", "totals", "window_rows"} <= set(opened["snapshots"][0])
    assert guarded.history_reply(authorization="Bearer wrong-token-0123456789").status == 401


# -- cosmetics ------------------------------------------------------------------------------------


def test_feature_and_stage_names_stay_on_one_line_whole_in_their_tooltip(page: str) -> None:
    names = [(a.get("title"), a.get("class")) for tag, a in Page(page).elements if tag == "code" and a.get("class") == "name"]
    rule = re.search(r"\.name\{([^}]*)\}", page)

    assert (HOSTILE, "name") in names  # the drifted feature's table row, and its histogram's caption
    assert ("colour", "name") in names
    assert ("output_1", "name") in names
    assert ("predict", "name") in names  # the stage table
    assert rule is not None
    assert "white-space:nowrap" in rule.group(1)
    assert "text-overflow:ellipsis" in rule.group(1)
    assert "overflow-wrap:anywhere" not in page[page.index(".hist figcaption") :][:200]


def axis_labels(section: str) -> list[str]:
    return re.findall(r'text-anchor="(?:start|middle|end)">(\d\d:\d\d:\d\d(?:\.\d\d)? UTC)</text>', section)


@pytest.mark.parametrize(
    ("generated_at", "last_tick"),
    [
        pytest.param("2026-01-01T00:11:30.000+00:00", "00:11:30 UTC", id="half-a-step-after-the-last-snapshot"),
        pytest.param("2026-01-01T00:11:00.000+00:00", "00:11:00 UTC", id="as-the-last-snapshot-was-taken"),
        pytest.param("2026-01-01T00:30:00.000+00:00", "00:12:00 UTC", id="long-after-the-last-snapshot-stands-for-one-step"),
    ],
)
def test_the_timeline_axis_ends_no_later_than_the_page_was_generated(generated_at: str, last_tick: str) -> None:
    page = render_dashboard(dataclasses.replace(report(), generated_at=generated_at), (), history())
    timeline = page[page.index('id="timeline"') : page.index('id="latency"')]

    assert axis_labels(timeline)[0] == "00:00:00 UTC"
    assert axis_labels(timeline)[-1] == last_tick


def test_snapshots_newer_than_the_page_are_left_out() -> None:
    page = render_dashboard(dataclasses.replace(report(), generated_at="2026-01-01T00:05:00.000+00:00"), (), history())
    timeline = page[page.index('id="timeline"') : page.index('id="latency"')]

    assert "6 snapshots" in timeline
    assert axis_labels(timeline)[-1] == "00:05:00 UTC"


def test_a_lone_snapshot_taken_as_the_page_was_made_gets_a_one_second_axis_ending_then() -> None:
    [first] = history(1)
    page = render_dashboard(dataclasses.replace(report(), generated_at="2026-01-01T00:00:00.000+00:00"), (), [first])
    timeline = page[page.index('id="timeline"') : page.index('id="latency"')]

    assert axis_labels(timeline)[0] == "23:59:59.00 UTC"
    assert axis_labels(timeline)[-1] == "00:00:00.00 UTC"
