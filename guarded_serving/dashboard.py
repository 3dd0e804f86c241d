"""The health dashboard: one self-contained HTML page, rendered from plain data.

:func:`render_dashboard` is a pure function of a :class:`~guarded_serving.health.HealthReport`, the
feature histograms (:func:`feature_histograms`) and the health history
(:class:`~guarded_serving.history.Snapshot`), so that the same page is served by
``GET /health/model?format=html`` and can be written to a file offline. It needs neither BentoML
nor a running :class:`~guarded_serving.monitor.Monitor`.

The page has no script and loads nothing: inline CSS, and charts drawn here as inline SVG. Every
piece of text that comes from data (model, feature and category names, summaries) is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .health import CheckResult, HealthReport, Status, to_jsonable
from .histograms import FeatureHistogram, number_text
from .history import Snapshot

__all__ = ["render_dashboard"]

STATUS_COLOURS = {
    Status.OK: "#2e7d32",
    Status.INSUFFICIENT_DATA: "#78909c",
    Status.WARN: "#ef8f00",
    Status.ALERT: "#c62828",
}
REFERENCE_COLOUR = "#b0bec5"
CURRENT_COLOUR = "#1565c0"
SERIES_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593", "#ef6c00", "#37474f")


# -- the page -----------------------------------------------------------------------------------


def render_dashboard(
    report: HealthReport,
    histograms: Sequence[FeatureHistogram] = (),
    history: Sequence[Snapshot] = (),
    *,
    refresh_seconds: int | None = None,
    detail: bool = True,
) -> str:
    """The dashboard as one self-contained HTML document (no script, no external URL).

    ``report``: the health report shown (overall status, totals and one card per check).
    ``histograms``: reference-vs-current histograms, e.g. from :func:`feature_histograms` or
    :meth:`Monitor.histograms() <guarded_serving.monitor.Monitor.histograms>`.
    ``history``: snapshots, oldest first, for the status timeline and the stage latencies over time
    (:meth:`Monitor.history() <guarded_serving.monitor.Monitor.history>`).
    ``refresh_seconds``: when given, the page reloads itself that often (leave it out for a file).
    ``detail=False`` shows the overall status only, as ``/health/model`` answers without the token.

    Pure: it reads nothing but its arguments and has no side effect.
    """
    parts = [_head(report, refresh_seconds), _top(report, refresh_seconds)]
    generated = _timestamp(report.generated_at)
    if generated is not None:  # the page shows nothing later than itself: time axes end when it was generated
        history = [s for s in history if s.ts <= generated]
    if detail:
        parts.append(_figures(report))
        parts.append(_cards(report))
        parts.append(_timeline(report, history))
        parts.append(_latency(history))
        inputs = [h for h in histograms if h.role == "input"]
        outputs = [h for h in histograms if h.role == "output"]
        parts.append(_histograms("inputs", "Inputs: reference vs current window", inputs, report, "data_drift"))
        if outputs:
            parts.append(_histograms("outputs", "Outputs: reference vs current window", outputs, report, "prediction_drift"))
    else:
        parts.append(
            '<section class="locked"><p>Only the overall status is shown: the checks, history and histograms need'
            " the bearer token (<code>Authorization: Bearer &lt;token&gt;</code>).</p></section>"
        )
    parts.append(
        "<footer>guarded_serving · JSON: <code>GET /health/model</code>, history: <code>GET /health/model/history</code>"
    )
    parts.append("</footer>\n</body>\n</html>\n")
    return "".join(parts)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _name(name: str) -> str:
    """A feature or stage name on one line, never broken inside a word: cut with an ellipsis when it is too
    long for its column, whole in its tooltip."""
    return f'<code class="name" title="{_e(name)}">{_e(name)}</code>'


def _timestamp(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _badge(status: Status, big: bool = False) -> str:
    size = " big" if big else ""
    return f'<span class="badge {status.value}{size}">{_e(status.value.replace("_", " "))}</span>'


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1c2430;background:#f3f5f8}
main{max-width:1240px;margin:0 auto;padding:20px}
h1{margin:0;font-size:24px}h2{font-size:17px;margin:28px 0 10px}
h3{margin:0;font-size:15px;font-family:ui-monospace,Menlo,Consolas,monospace}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.top{display:flex;justify-content:space-between;align-items:center;padding:18px 22px;border-radius:10px;background:#fff;
 border-left:10px solid var(--c);box-shadow:0 1px 3px rgba(0,0,0,.08)}
.top .meta{margin:4px 0 0;color:#5b6675;font-size:13px}
.version{font-weight:400;color:#5b6675;font-size:16px}
.badge{display:inline-block;padding:2px 9px;border-radius:999px;color:#fff;font-size:12px;font-weight:600;
 text-transform:uppercase;letter-spacing:.03em;white-space:nowrap}
.badge.big{font-size:20px;padding:6px 18px}
.badge.ok{background:#2e7d32}.badge.insufficient_data{background:#78909c}.badge.warn{background:#ef8f00}.badge.alert{background:#c62828}
.figures{display:flex;flex-wrap:wrap;gap:12px;margin-top:14px}
.figure{background:#fff;border-radius:8px;padding:10px 16px;min-width:130px;box-shadow:0 1px 3px rgba(0,0,0,.06)}
.figure b{display:block;font-size:20px}.figure span{color:#5b6675;font-size:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:14px}
.card{background:#fff;border-radius:10px;padding:14px 16px;border-top:6px solid var(--c);box-shadow:0 1px 3px rgba(0,0,0,.08);
 overflow:hidden}
.card header{display:flex;justify-content:space-between;align-items:center;gap:8px}
.card .summary{margin:8px 0;overflow-wrap:anywhere}
.kv{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0 0;padding:0;list-style:none;color:#3d4856;font-size:12px}
.kv li b{font-weight:600}
table{border-collapse:collapse;width:100%;margin-top:8px;font-size:12px}
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #e6e9ee;vertical-align:top;overflow-wrap:anywhere}
th{color:#5b6675;font-weight:600;overflow-wrap:normal;white-space:nowrap}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.panel{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.panel svg{display:block;width:100%;height:auto}
.empty{color:#5b6675;margin:4px 0}
.hists{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:14px}
.hist{margin:0;background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.hist figcaption{display:flex;justify-content:space-between;align-items:center;gap:8px}
.name{display:inline-block;max-width:16em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}
.hist figcaption .name{min-width:0;max-width:none;font-size:13px;font-weight:700}
.hist .note{color:#5b6675;font-size:12px;margin:2px 0 4px}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:#3d4856;margin:0 0 6px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-2px}
.locked{margin-top:16px;background:#fff;border-radius:10px;padding:14px 16px}
footer{margin:30px 0 10px;color:#7a8594;font-size:12px;text-align:center}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
"""


def _head(report: HealthReport, refresh_seconds: int | None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">\n' if refresh_seconds else ""
    title = f"{report.model_name}: {report.status.value} · guarded_serving"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{refresh}<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body data-status="{_e(report.status.value)}">\n<main>\n'
    )


def _top(report: HealthReport, refresh_seconds: int | None) -> str:
    version = f' <span class="version">{_e(report.model_version)}</span>' if report.model_version else ""
    refresh = f" · refreshes every {int(refresh_seconds)} s" if refresh_seconds else ""
    colour = STATUS_COLOURS[report.status]
    return (
        f'<header class="top" id="overall" style="--c:{colour}">'
        f"<div><h1>{_e(report.model_name)}{version}</h1>"
        f'<p class="meta">Model health · generated {_e(report.generated_at)}{_e(refresh)}</p></div>'
        f"{_badge(report.status, big=True)}</header>\n"
    )


def _figures(report: HealthReport) -> str:
    items = [
        ("requests", number_text(report.requests)),
        ("rows", number_text(report.rows)),
        ("rejected", number_text(report.rejected)),
        ("errors", number_text(report.errors)),
        ("window", f"{number_text(report.window_rows)} / {number_text(report.window_capacity)}"),
    ]
    cells = "".join(f'<div class="figure"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in items)
    return f'<section class="figures">{cells}</section>\n'


# -- cards --------------------------------------------------------------------------------------


def _cards(report: HealthReport) -> str:
    cards = [_card(c) for c in report.checks]
    return f'<section id="checks"><h2>Checks</h2><div class="cards">{"".join(cards)}</div></section>\n'


def _card(check: CheckResult) -> str:
    name, status = check.name, check.status
    body = [f'<p class="summary">{_e(check.summary)}</p>']
    features = _features(check)
    if features:
        body.append(_feature_table(features))
    stages = _get(check.details, "stages")
    if isinstance(stages, Mapping) and stages:
        body.append(_stage_table(stages))
    rendered = to_jsonable(check.details)
    figures = _scalars(rendered) if isinstance(rendered, Mapping) else []
    if figures:
        items = "".join(f"<li>{_e(k)} <b>{_e(v)}</b></li>" for k, v in figures[:10])
        body.append(f'<ul class="kv">{items}</ul>')
    return (
        f'<article class="card" id="check-{_e(name)}" data-check="{_e(name)}" data-status="{_e(status.value)}"'
        f' style="--c:{STATUS_COLOURS[status]}"><header><h3>{_e(name)}</h3>{_badge(status)}</header>{"".join(body)}</article>'
    )


def _get(value: Any, key: str) -> Any:
    """A field of typed details (a dataclass), or the key of details given as a mapping (a user's own check)."""
    return value.get(key) if isinstance(value, Mapping) else getattr(value, key, None)


def _features(check: CheckResult) -> Mapping[str, Any]:
    """A check's verdict per feature (drift, quality, joint: each entry has a ``status``), or nothing."""
    features = _get(check.details, "features")
    return features if isinstance(features, Mapping) else {}


def _status_of(value: Any) -> Status:
    try:
        return value if isinstance(value, Status) else Status.parse(str(value))
    except ValueError:
        return Status.INSUFFICIENT_DATA


def _feature_table(features: Mapping[str, Any]) -> str:
    flagged = [(n, f) for n, f in features.items() if _status_of(_get(f, "status")) is not Status.OK]
    if not flagged:
        return f'<p class="kv">All {len(features)} judged: ok.</p>'
    flagged.sort(key=lambda item: -_status_of(_get(item[1], "status")).rank)
    rows = []
    for name, f in flagged[:8]:
        reason = _get(f, "reason") or "; ".join(str(p) for p in _get(f, "problems") or ()) or ""
        rows.append(f"<tr><td>{_name(name)}</td><td>{_badge(_status_of(_get(f, 'status')))}</td><td>{_e(reason)}</td></tr>")
    more = f'<p class="kv">and {len(flagged) - 8} more</p>' if len(flagged) > 8 else ""
    head = "<tr><th>feature</th><th>status</th><th>why</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>{more}"


def _stage_table(stages: Mapping[str, Any]) -> str:
    rows = []
    for name, s in stages.items():
        cells = "".join(
            f'<td class="n">{_e(number_text(_get(s, k)))}</td>' for k in ("count", "errors", "p50_ms", "p95_ms", "p99_ms")
        )
        rows.append(f"<tr><td>{_name(name)}</td>{cells}</tr>")
    head = '<tr><th>stage</th><th class="n">n</th><th class="n">failed</th><th class="n">p50 ms</th><th class="n">p95 ms</th>'
    return f"<table>{head}<th class='n'>p99 ms</th></tr>{''.join(rows)}</table>"


def _scalars(rendered: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The check's own figures (not status, summary, features or stages), flattened one level."""
    out: list[tuple[str, str]] = []
    for key, value in rendered.items():
        if key in ("status", "summary", "features", "stages") or value is None:
            continue
        if isinstance(value, Mapping):
            out.extend(
                (f"{key}.{k}", _short(v)) for k, v in value.items() if v is not None and not isinstance(v, (Mapping, list))
            )
        elif isinstance(value, list) and 0 < len(value) <= 4 and all(isinstance(v, (int, float)) for v in value):
            out.append((key, "[" + ", ".join(_short(v) for v in value) + "]"))
        elif isinstance(value, list):
            out.append((key, f"{len(value)} item{'s' if len(value) != 1 else ''}"))
        else:
            out.append((key, _short(value)))
    return out


def _short(value: Any) -> str:
    text = number_text(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- time axis ----------------------------------------------------------------------------------


def _clock(ts: float, span: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC)
    if span > 86400:
        return moment.strftime("%m-%d %H:%M UTC")
    if span < 60:
        return moment.strftime("%H:%M:%S.%f")[:-4] + " UTC"
    return moment.strftime("%H:%M:%S UTC")


def _spans(history: Sequence[Snapshot], until: float | None = None) -> list[tuple[float, float]]:
    """The time each snapshot stands for: until the next one, or one usual step when the next is far (a gap);
    the last one no later than ``until`` (when the page was generated)."""
    times = [s.ts for s in history]
    steps = np.diff(times) if len(times) > 1 else np.array([1.0])
    step = float(np.median(steps)) if len(steps) else 1.0
    step = step if step > 0 else 1.0
    spans = []
    for i, t in enumerate(times):
        end = min(times[i + 1] if i + 1 < len(times) else t + step, t + 1.5 * step)
        spans.append((t, max(min(end, until), t) if until is not None else end))
    return spans


def _time_axis(t0: float, t1: float, x0: float, width: float, y: float) -> str:
    span = max(t1 - t0, 1e-9)
    ticks = []
    for k in range(5):
        t = t0 + span * k / 4
        x = x0 + width * k / 4
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        ticks.append(
            f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#9aa5b1"/>'
            f'<text x="{x:.1f}" y="{y + 13:.1f}" font-size="11" fill="#5b6675" text-anchor="{anchor}">'
            f"{_e(_clock(t, span))}</text>"
        )
    return "".join(ticks)


def _timeline(report: HealthReport, history: Sequence[Snapshot]) -> str:
    title = "<h2>Status timeline</h2>"
    if not history:
        return (
            f'<section id="timeline">{title}<div class="panel"><p class="empty">No health snapshots yet:'
            " one is taken every history interval.</p></div></section>\n"
        )
    names = [c.name for c in report.checks]
    for snapshot in history:
        names.extend(c.name for c in snapshot.checks if c.name not in names)
    rows: list[tuple[str, list[Status | None]]] = [("overall", [s.status for s in history])]
    for name in names:
        rows.append((name, [(c.status if (c := s.check(name)) is not None else None) for s in history]))
    spans = _spans(history, until=_timestamp(report.generated_at))
    t0, t1 = spans[0][0], spans[-1][1]
    t0 = min(t0, t1 - 1.0)  # a lone snapshot taken as the page was made: a one-second axis that ends then
    label_w, width, row_h = 150.0, 1030.0, 22.0
    total_w = label_w + width + 10
    scale = width / max(t1 - t0, 1e-9)
    svg = []
    for r, (name, statuses) in enumerate(rows):
        y = 6 + r * row_h
        weight = ' font-weight="700"' if r == 0 else ""
        svg.append(
            f'<text x="{label_w - 8}" y="{y + 14}" font-size="12" text-anchor="end" fill="#1c2430"{weight}>{_e(name)}</text>'
        )
        svg.append(f'<rect x="{label_w}" y="{y + 2}" width="{width}" height="{row_h - 6}" fill="#eceff3"/>')
        for start, end, status in _runs(spans, statuses):
            x = label_w + (start - t0) * scale
            w = max((end - start) * scale, 1.0)
            tip = f"{name}: {status.value} from {_clock(start, 0)} to {_clock(end, 0)}"
            svg.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{STATUS_COLOURS[status]}"'
                f' data-status="{status.value}"><title>{_e(tip)}</title></rect>'
            )
    height = 6 + len(rows) * row_h + 22
    svg.append(_time_axis(t0, t1, label_w, width, height - 18))
    legend = "".join(
        f'<span><i style="background:{c}"></i>{_e(s.value.replace("_", " "))}</span>' for s, c in STATUS_COLOURS.items()
    )
    note = f"{len(history)} snapshot{'s' if len(history) != 1 else ''}, {_clock(t0, t1 - t0)} to {_clock(t1, t1 - t0)}"
    return (
        f'<section id="timeline">{title}<div class="panel"><div class="legend">{legend}<span>{_e(note)}</span></div>'
        f'<svg viewBox="0 0 {total_w:.0f} {height:.0f}" role="img" aria-label="status timeline">{"".join(svg)}</svg>'
        "</div></section>\n"
    )


def _runs(spans: list[tuple[float, float]], statuses: list[Status | None]) -> list[tuple[float, float, Status]]:
    """Consecutive snapshots of one status, merged into one bar (a gap in time breaks a bar)."""
    runs: list[tuple[float, float, Status]] = []
    for (start, end), status in zip(spans, statuses, strict=True):
        if status is None:
            continue
        if runs and runs[-1][2] is status and abs(runs[-1][1] - start) < 1e-6:
            runs[-1] = (runs[-1][0], end, status)
        else:
            runs.append((start, end, status))
    return runs


# -- latency over time --------------------------------------------------------------------------


def _latency(history: Sequence[Snapshot]) -> str:
    title = "<h2>Stage latency over time</h2>"
    names: list[str] = []
    for snapshot in history:
        names.extend(s.name for s in snapshot.stages if s.name not in names)
    if len(history) < 2 or not names:
        return (
            f'<section id="latency">{title}<div class="panel"><p class="empty">Not enough snapshots with requests yet'
            " to draw stage latencies.</p></div></section>\n"
        )
    t0, t1 = history[0].ts, history[-1].ts
    left, width, top, height = 60.0, 1110.0, 10.0, 220.0
    values = [v for snap in history for s in snap.stages for v in (s.p50_ms, s.p95_ms) if v > 0 and math.isfinite(v)]
    peak = max(values, default=0.0)
    # Stages differ by orders of magnitude, and one slow moment would flatten every other line: a log scale then.
    logarithmic = bool(values) and peak > 20 * float(np.median(values))
    if logarithmic:
        low = math.floor(math.log10(min(values)))
        high = max(math.ceil(math.log10(peak)), low + 1)
        ticks = [10.0**k for k in range(low, high + 1)]

        def y(ms: float) -> float:
            position = (math.log10(max(ms, ticks[0])) - low) / (high - low)
            return top + height - position * height
    else:
        peak = _nice(peak)
        ticks = [peak * k / 4 for k in range(5)]

        def y(ms: float) -> float:
            return top + height - ms / peak * height

    xs = [left + (s.ts - t0) / max(t1 - t0, 1e-9) * width for s in history]
    svg = []
    for value in ticks:
        yy = y(value)
        svg.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + width}" y2="{yy:.1f}" stroke="#e6e9ee"/>')
        shown = _e(number_text(value))
        svg.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" font-size="11" fill="#5b6675" text-anchor="end">{shown}</text>')
    svg.append(
        f'<text x="12" y="{top + height / 2:.0f}" font-size="11" fill="#5b6675" transform="rotate(-90 12 {top + height / 2:.0f})"'
        f' text-anchor="middle">{"ms (log scale)" if logarithmic else "ms"}</text>'
    )
    legend = []
    for i, name in enumerate(names):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        for field, dash in (("p50_ms", ""), ("p95_ms", ' stroke-dasharray="5 4"')):
            points = []
            for x, snapshot in zip(xs, history, strict=True):
                stage = next((s for s in snapshot.stages if s.name == name), None)
                if stage is not None:
                    points.append(f"{x:.1f},{y(getattr(stage, field)):.1f}")
            if points:
                svg.append(
                    f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"{dash}'
                    f' data-stage="{_e(name)}"><title>{_e(name)} {field[:3]}</title></polyline>'
                )
        legend.append(f'<span><i style="background:{colour}"></i>{_e(name)}</span>')
    svg.append(_time_axis(t0, t1, left, width, top + height + 20))
    legend.append("<span>solid: p50, dashed: p95</span>")
    return (
        f'<section id="latency">{title}<div class="panel"><div class="legend">{"".join(legend)}</div>'
        f'<svg viewBox="0 0 {left + width + 20:.0f} {top + height + 40:.0f}" role="img" aria-label="stage latency">'
        f"{''.join(svg)}</svg></div></section>\n"
    )


def _nice(peak: float) -> float:
    """A round axis maximum at or above ``peak``."""
    if not peak > 0 or not math.isfinite(peak):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(peak))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= peak:
            return float(step * magnitude)
    return float(10 * magnitude)


# -- histograms ---------------------------------------------------------------------------------


def _histograms(section: str, title: str, histograms: Sequence[FeatureHistogram], report: HealthReport, check: str) -> str:
    if not histograms:
        return (
            f'<section id="{section}"><h2>{_e(title)}</h2><div class="panel"><p class="empty">No histograms'
            " to show.</p></div></section>\n"
        )
    statuses = _feature_statuses(report, check)
    legend = (
        f'<div class="legend"><span><i style="background:{REFERENCE_COLOUR}"></i>reference</span>'
        f'<span><i style="background:{CURRENT_COLOUR}"></i>current window</span>'
        "<span>share of present values per reference bin (numeric: reference deciles)</span></div>"
    )
    figures = "".join(_histogram(h, statuses.get(h.name)) for h in histograms)
    return f'<section id="{section}"><h2>{_e(title)}</h2>{legend}<div class="hists">{figures}</div></section>\n'


def _feature_statuses(report: HealthReport, check: str) -> dict[str, Status]:
    for c in report.checks:
        if c.name == check:
            return {str(n): _status_of(_get(f, "status")) for n, f in _features(c).items()}
    return {}


def _histogram(h: FeatureHistogram, status: Status | None) -> str:
    current = h.current_shares
    n = len(h.reference)
    left, width, top, height = 34.0, 330.0, 8.0, 120.0
    peak = max([*h.reference, *current, 0.01])
    peak = _nice(peak)
    slot = width / max(n, 1)
    bar = slot * 0.4
    svg = []
    for k in range(3):
        value = peak * k / 2
        yy = top + height - value / peak * height
        svg.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + width}" y2="{yy:.1f}" stroke="#e6e9ee"/>')
        svg.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" font-size="9" fill="#5b6675" text-anchor="end">{value:.0%}</text>')
    for i in range(n):
        x = left + i * slot + slot * 0.1
        for offset, share, colour, what in (
            (0.0, h.reference[i], REFERENCE_COLOUR, "reference"),
            (bar, current[i], CURRENT_COLOUR, "current"),
        ):
            bar_h = share / peak * height
            tip = f"{h.labels[i]}: {what} {share:.1%}" + (f" ({h.current[i]} rows)" if what == "current" else "")
            svg.append(
                f'<rect x="{x + offset:.1f}" y="{top + height - bar_h:.1f}" width="{bar:.1f}" height="{max(bar_h, 0):.1f}"'
                f' fill="{colour}"><title>{_e(tip)}</title></rect>'
            )
    base = top + height
    svg.append(f'<line x1="{left}" y1="{base}" x2="{left + width}" y2="{base}" stroke="#9aa5b1"/>')
    if h.kind == "numeric":
        step = 1 if len(h.edges) <= 5 else 2
        for i, edge in enumerate(h.edges):
            if i % step:
                continue
            x = left + (i + 1) * slot
            svg.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" stroke="#9aa5b1"/>')
            shown = _e(number_text(edge))
            svg.append(f'<text x="{x:.1f}" y="{base + 15}" font-size="9" fill="#5b6675" text-anchor="middle">{shown}</text>')
    else:
        for i, label in enumerate(h.labels):
            x = left + (i + 0.5) * slot
            text = label if len(label) <= 12 else label[:11] + "…"
            svg.append(
                f'<text x="{x:.1f}" y="{base + 10}" font-size="9" fill="#5b6675" text-anchor="end"'
                f' transform="rotate(-35 {x:.1f} {base + 10})">{_e(text)}</text>'
            )
    extra = 20 if h.kind == "numeric" else 52
    rows = sum(h.current)
    total = rows + h.missing_current
    missing_now = f"{h.missing_current / total:.1%}" if total else "n/a"
    note = f"{rows:,} present values in the window · missing: reference {h.missing_reference:.1%}, now {missing_now}"
    badge = _badge(status) if status is not None else ""
    return (
        f'<figure class="hist" data-feature="{_e(h.name)}" data-role="{h.role}">'
        f"<figcaption>{_name(h.name)}{badge}</figcaption>"
        f'<p class="note">{_e(note)}</p>'
        f'<svg viewBox="0 0 {left + width + 6:.0f} {base + extra:.0f}" role="img" aria-label="{_e(h.name)} histogram">'
        f"{''.join(svg)}</svg></figure>"
    )
