"""The dashboard's charts over time, drawn as inline SVG: the status timeline (overall and per check) and the
pipeline stages' latencies, from the health history's snapshots. Also the small HTML pieces every part of
the page uses: escaping, names kept on one line, status badges and colours."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .health import HealthReport, Status
from .histograms import number_text
from .history import Snapshot
from .times import seconds_of

__all__ = ["STATUS_COLOURS", "badge", "escape", "latency", "name_tag", "nice_peak", "timeline"]

STATUS_COLOURS = {
    Status.OK: "#2e7d32",
    Status.INSUFFICIENT_DATA: "#78909c",
    Status.WARN: "#ef8f00",
    Status.ALERT: "#c62828",
}
REFERENCE_COLOUR = "#b0bec5"
CURRENT_COLOUR = "#1565c0"
SERIES_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593", "#ef6c00", "#37474f")


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def name_tag(name: str) -> str:
    """A feature or stage name on one line, never broken inside a word: cut with an ellipsis when it is too
    long for its column, whole in its tooltip."""
    return f'<code class="name" title="{escape(name)}">{escape(name)}</code>'


def badge(status: Status, big: bool = False) -> str:
    size = " big" if big else ""
    return f'<span class="badge {status.value}{size}">{escape(status.value.replace("_", " "))}</span>'


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
            f"{escape(_clock(t, span))}</text>"
        )
    return "".join(ticks)


def timeline(report: HealthReport, history: Sequence[Snapshot]) -> str:
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
    spans = _spans(history, until=seconds_of(report.generated_at))
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
            f'<text x="{label_w - 8}" y="{y + 14}" font-size="12" text-anchor="end" fill="#1c2430"{weight}>{escape(name)}</text>'
        )
        svg.append(f'<rect x="{label_w}" y="{y + 2}" width="{width}" height="{row_h - 6}" fill="#eceff3"/>')
        for start, end, status in _runs(spans, statuses):
            x = label_w + (start - t0) * scale
            w = max((end - start) * scale, 1.0)
            tip = f"{name}: {status.value} from {_clock(start, 0)} to {_clock(end, 0)}"
            svg.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{STATUS_COLOURS[status]}"'
                f' data-status="{status.value}"><title>{escape(tip)}</title></rect>'
            )
    height = 6 + len(rows) * row_h + 22
    svg.append(_time_axis(t0, t1, label_w, width, height - 18))
    legend = "".join(
        f'<span><i style="background:{c}"></i>{escape(s.value.replace("_", " "))}</span>' for s, c in STATUS_COLOURS.items()
    )
    note = f"{len(history)} snapshot{'s' if len(history) != 1 else ''}, {_clock(t0, t1 - t0)} to {_clock(t1, t1 - t0)}"
    return (
        f'<section id="timeline">{title}<div class="panel"><div class="legend">{legend}<span>{escape(note)}</span></div>'
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


def latency(history: Sequence[Snapshot]) -> str:
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
        peak = nice_peak(peak)
        ticks = [peak * k / 4 for k in range(5)]

        def y(ms: float) -> float:
            return top + height - ms / peak * height

    xs = [left + (s.ts - t0) / max(t1 - t0, 1e-9) * width for s in history]
    svg = []
    for value in ticks:
        yy = y(value)
        svg.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + width}" y2="{yy:.1f}" stroke="#e6e9ee"/>')
        shown = escape(number_text(value))
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
                    f' data-stage="{escape(name)}"><title>{escape(name)} {field[:3]}</title></polyline>'
                )
        legend.append(f'<span><i style="background:{colour}"></i>{escape(name)}</span>')
    svg.append(_time_axis(t0, t1, left, width, top + height + 20))
    legend.append("<span>solid: p50, dashed: p95</span>")
    return (
        f'<section id="latency">{title}<div class="panel"><div class="legend">{"".join(legend)}</div>'
        f'<svg viewBox="0 0 {left + width + 20:.0f} {top + height + 40:.0f}" role="img" aria-label="stage latency">'
        f"{''.join(svg)}</svg></div></section>\n"
    )


def nice_peak(peak: float) -> float:
    """A round axis maximum at or above ``peak``."""
    if not peak > 0 or not math.isfinite(peak):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(peak))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= peak:
            return float(step * magnitude)
    return float(10 * magnitude)
