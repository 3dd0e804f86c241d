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

from collections.abc import Mapping, Sequence
from typing import Any

from .charts import CURRENT_COLOUR, REFERENCE_COLOUR, STATUS_COLOURS, badge, escape, latency, name_tag, nice_peak, timeline
from .errors import shortened
from .health import CheckResult, HealthReport, Status, to_jsonable
from .histograms import FeatureHistogram, number_text
from .history import Snapshot
from .times import seconds_of

__all__ = ["render_dashboard"]

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
    generated = seconds_of(report.generated_at)
    if generated is not None:  # the page shows nothing later than itself: time axes end when it was generated
        history = [s for s in history if s.ts <= generated]
    if detail:
        parts.append(_figures(report))
        parts.append(_cards(report))
        parts.append(timeline(report, history))
        parts.append(latency(history))
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
        f"{refresh}<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body data-status="{escape(report.status.value)}">\n<main>\n'
    )


def _top(report: HealthReport, refresh_seconds: int | None) -> str:
    version = f' <span class="version">{escape(report.model_version)}</span>' if report.model_version else ""
    refresh = f" · refreshes every {int(refresh_seconds)} s" if refresh_seconds else ""
    colour = STATUS_COLOURS[report.status]
    return (
        f'<header class="top" id="overall" style="--c:{colour}">'
        f"<div><h1>{escape(report.model_name)}{version}</h1>"
        f'<p class="meta">Model health · generated {escape(report.generated_at)}{escape(refresh)}</p></div>'
        f"{badge(report.status, big=True)}</header>\n"
    )


def _figures(report: HealthReport) -> str:
    items = [
        ("requests", number_text(report.requests)),
        ("rows", number_text(report.rows)),
        ("rejected", number_text(report.rejected)),
        ("errors", number_text(report.errors)),
        ("window", f"{number_text(report.window_rows)} / {number_text(report.window_capacity)}"),
    ]
    cells = "".join(f'<div class="figure"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for k, v in items)
    return f'<section class="figures">{cells}</section>\n'


# -- cards --------------------------------------------------------------------------------------


def _cards(report: HealthReport) -> str:
    cards = [_card(c) for c in report.checks]
    return f'<section id="checks"><h2>Checks</h2><div class="cards">{"".join(cards)}</div></section>\n'


def _card(check: CheckResult) -> str:
    name, status = check.name, check.status
    body = [f'<p class="summary">{escape(check.summary)}</p>']
    features = _features(check)
    if features:
        body.append(_feature_table(features))
    stages = _get(check.details, "stages")
    if isinstance(stages, Mapping) and stages:
        body.append(_stage_table(stages))
    rendered = to_jsonable(check.details)
    figures = _scalars(rendered) if isinstance(rendered, Mapping) else []
    if figures:
        items = "".join(f"<li>{escape(k)} <b>{escape(v)}</b></li>" for k, v in figures[:10])
        body.append(f'<ul class="kv">{items}</ul>')
    return (
        f'<article class="card" id="check-{escape(name)}" data-check="{escape(name)}" data-status="{escape(status.value)}"'
        f' style="--c:{STATUS_COLOURS[status]}"><header><h3>{escape(name)}</h3>{badge(status)}</header>{"".join(body)}</article>'
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
        rows.append(f"<tr><td>{name_tag(name)}</td><td>{badge(_status_of(_get(f, 'status')))}</td><td>{escape(reason)}</td></tr>")
    more = f'<p class="kv">and {len(flagged) - 8} more</p>' if len(flagged) > 8 else ""
    head = "<tr><th>feature</th><th>status</th><th>why</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>{more}"


def _stage_table(stages: Mapping[str, Any]) -> str:
    rows = []
    for name, s in stages.items():
        cells = "".join(
            f'<td class="n">{escape(number_text(_get(s, k)))}</td>' for k in ("count", "errors", "p50_ms", "p95_ms", "p99_ms")
        )
        rows.append(f"<tr><td>{name_tag(name)}</td>{cells}</tr>")
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
    return shortened(text)


# -- histograms ---------------------------------------------------------------------------------


def _histograms(section: str, title: str, histograms: Sequence[FeatureHistogram], report: HealthReport, check: str) -> str:
    if not histograms:
        return (
            f'<section id="{section}"><h2>{escape(title)}</h2><div class="panel"><p class="empty">No histograms'
            " to show.</p></div></section>\n"
        )
    statuses = _feature_statuses(report, check)
    legend = (
        f'<div class="legend"><span><i style="background:{REFERENCE_COLOUR}"></i>reference</span>'
        f'<span><i style="background:{CURRENT_COLOUR}"></i>current window</span>'
        "<span>share of present values per reference bin (numeric: reference deciles)</span></div>"
    )
    figures = "".join(_histogram(h, statuses.get(h.name)) for h in histograms)
    return f'<section id="{section}"><h2>{escape(title)}</h2>{legend}<div class="hists">{figures}</div></section>\n'


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
    peak = nice_peak(peak)
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
                f' fill="{colour}"><title>{escape(tip)}</title></rect>'
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
            shown = escape(number_text(edge))
            svg.append(f'<text x="{x:.1f}" y="{base + 15}" font-size="9" fill="#5b6675" text-anchor="middle">{shown}</text>')
    else:
        for i, label in enumerate(h.labels):
            x = left + (i + 0.5) * slot
            text = label if len(label) <= 12 else label[:11] + "…"
            svg.append(
                f'<text x="{x:.1f}" y="{base + 10}" font-size="9" fill="#5b6675" text-anchor="end"'
                f' transform="rotate(-35 {x:.1f} {base + 10})">{escape(text)}</text>'
            )
    extra = 20 if h.kind == "numeric" else 52
    rows = sum(h.current)
    total = rows + h.missing_current
    missing_now = f"{h.missing_current / total:.1%}" if total else "n/a"
    note = f"{rows:,} present values in the window · missing: reference {h.missing_reference:.1%}, now {missing_now}"
    tag = badge(status) if status is not None else ""
    return (
        f'<figure class="hist" data-feature="{escape(h.name)}" data-role="{h.role}">'
        f"<figcaption>{name_tag(h.name)}{tag}</figcaption>"
        f'<p class="note">{escape(note)}</p>'
        f'<svg viewBox="0 0 {left + width + 6:.0f} {base + extra:.0f}" role="img" aria-label="{escape(h.name)} histogram">'
        f"{''.join(svg)}</svg></figure>"
    )
