"""Text for a terminal, apart from the commands that compute it: the offline report as a table, the
request log's lines (``tail``), and the progress bar on stderr. Every piece of logged text goes through
:func:`printable`, so that control characters from client input are shown escaped, never obeyed.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .offline import OfflineReport
from .reference import Reference

__all__ = ["ProgressBar", "print_requests", "printable", "profile_summary", "render_table", "tail_header"]


def printable(text: object) -> str:
    """Text safe for a terminal: control characters (from logged client input) are shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


class ProgressBar:
    """A one-line bar on stderr. ``auto`` draws only on a terminal and only once a run has lasted 0.5 s."""

    WIDTH = 30

    def __init__(self, label: str, mode: str, unit: str = "rows", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.unit = unit
        self.enabled = mode == "always" or (mode == "auto" and self.stream.isatty())
        self.delay = 0.0 if mode == "always" else 0.5
        self.started = time.monotonic()
        self.drawn_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < self.delay or (self.drawn_at is not None and now - self.drawn_at < 0.1 and done < total):
            return
        self.drawn_at = now
        share = done / total if total else 1.0
        filled = round(share * self.WIDTH)
        amounts = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if self.unit == "bytes" else f"{done:,}/{total:,} {self.unit}"
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%} {amounts}")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()


def profile_summary(reference: Reference, data: str, saved: Path) -> str:
    categorical = [f.name for f in reference.features if f.kind == "categorical"]
    parts = [
        f"Profiled {reference.rows} rows of {data}: {len(reference.features)} features"
        + (f" ({len(categorical)} categorical: {', '.join(categorical)})" if categorical else " (all numeric)")
    ]
    if reference.target is not None:
        parts.append("the target")
    held = " on the held-out rows" if reference.provenance.outputs == "holdout" else ""
    if reference.outputs:
        parts.append(f"{len(reference.outputs)} model output{'s' if len(reference.outputs) != 1 else ''}{held}")
    if reference.performance is not None:
        p = reference.performance
        parts.append(f"{p.task} performance ({p.metric} {p.metric_value(p.error_mean):.3f}){held}")
    return printable(", ".join(parts) + f". Wrote {saved}.")


def render_table(offline: OfflineReport, width: int | None = None) -> str:
    """The report as a person reads it: the overall status, one line per check, then the drifted features."""
    report = offline.report
    lines = [
        f"Model {report.model_name!r}"
        + (f" version {report.model_version!r}" if report.model_version else "")
        + f", from {offline.db}",
        f"status     {report.status.value.upper()}",
        f"window     {_window_text(offline)}",
        f"totals     {report.requests} requests{_since_text(offline)}: {report.rows} rows answered,"
        f" {report.rejected} rejected, {report.errors} errors",
        f"reference  {'saved in the log store' if offline.reference == 'the store' else offline.reference}",
        "",
    ]
    checks = [(c.name, c.status.value, c.summary) for c in report.checks]
    lines += _columns(("CHECK", "STATUS", "SUMMARY"), checks, width)
    drifted = []
    for check in report.checks:
        features = getattr(check.details, "features", None)
        for feature, entry in (features or {}).items():
            if getattr(entry, "drifted", False):
                drifted.append((check.name, feature, entry.status.value, _figures(entry)))
    if drifted:
        lines += ["", "Drifted features:"]
        lines += _columns(("CHECK", "FEATURE", "STATUS", "FIGURES"), drifted, width)
    return printable_lines("\n".join(lines))


def _window_text(offline: OfflineReport) -> str:
    window = offline.report
    replay = offline.replay
    if replay is None:
        return f"{window.window_rows} of {window.window_capacity} rows: the stored window, as the live endpoint judges it"
    text = f"{replay.rows_judged} rows re-encoded from the logged inputs"
    if replay.rows_judged < replay.rows_with_inputs:
        text += f" (the newest of {replay.rows_with_inputs})"
    if offline.since:
        text += f", logged since {offline.since}"
    if replay.rows_without_inputs:
        text += (
            f"; {replay.rows_without_inputs} answered rows have no stored inputs"
            " (log_inputs=False, sampled out or pruned) and are not judged"
        )
    return text


def _since_text(offline: OfflineReport) -> str:
    return f" since {offline.since}" if offline.since else ""


def _figures(entry: Any) -> str:
    """Why a feature drifted, with its figures (method, score against threshold, shift); or its quality problems."""
    problems = getattr(entry, "problems", ())
    if problems:
        return "; ".join(problems)
    reason = getattr(entry, "reason", None)
    if reason:
        return str(reason)
    parts = []
    score, threshold = getattr(entry, "score", None), getattr(entry, "threshold", None)
    if score is not None:
        parts.append(f"{entry.method} {score:.3g} > {threshold:.3g}")
    shift = getattr(entry, "mean_shift_std", None)
    if shift is not None:
        parts.append(f"mean {shift:+.2f} std")
    spread = getattr(entry, "spread_ratio", None)
    if spread is not None:
        parts.append(f"spread x{spread:.2f}")
    return ", ".join(parts)


def _columns(header: tuple[str, ...], rows: Sequence[tuple[Any, ...]], width: int | None) -> list[str]:
    """Left-aligned columns; the last one is wrapped to ``width`` (when printing to a terminal)."""
    texts = [tuple(printable(cell) for cell in row) for row in [header, *rows]]
    widths = [max(len(row[k]) for row in texts) for k in range(len(header) - 1)]
    indent = sum(widths) + 2 * len(widths)
    out = []
    for row in texts:
        lead = "".join(cell.ljust(w + 2) for cell, w in zip(row, widths, strict=False))
        last = row[-1]
        if width and width - indent >= 30 and len(last) > width - indent:
            wrapped = textwrap.wrap(last, width - indent) or [""]
            out.append(lead + wrapped[0])
            out += [" " * indent + more for more in wrapped[1:]]
        else:
            out.append(lead + last)
    return out


def printable_lines(text: str) -> str:
    return "\n".join(printable(line) for line in text.split("\n"))


TAIL_COLUMNS = (("TIME (UTC)", 23), ("REQUEST ID", 32), ("STATUS", 8), ("ROWS", 6), ("LATENCY", 10))


def tail_header(show_model: bool, show_version: bool = False) -> str:
    cells = [name.ljust(w) for name, w in TAIL_COLUMNS]
    if show_version:
        cells.insert(1, "VERSION".ljust(12))
    if show_model:
        cells.insert(1, "MODEL".ljust(16))
    return "  ".join([*cells, "FAILED STAGE: ERROR"])


def print_requests(found: list[dict[str, Any]], as_json: bool, show_model: bool, show_version: bool = False) -> None:
    for r in found:
        if as_json:
            print(json.dumps({k: _cell(v) for k, v in r.items() if k != "id"}), flush=True)
            continue
        r = {k: _cell(v) for k, v in r.items()}
        when = str(r["ts"]).replace("T", " ").removesuffix("+00:00")
        number = isinstance(r["latency_ms"], (int, float)) and not isinstance(r["latency_ms"], bool)
        latency = f"{r['latency_ms']:.1f} ms" if number else "-"
        cells = [when.ljust(23), str(r["request_id"]).ljust(32), str(r["status"]).ljust(8), str(r["rows"]).rjust(6)]
        cells.append(latency.rjust(10))
        if show_version:
            cells.insert(1, ("-" if r.get("version") is None else str(r["version"])).ljust(12))
        if show_model:
            cells.insert(1, str(r["model"]).ljust(16))
        problem = ": ".join(str(x) for x in (r["failed_stage"], r["error"]) if x)
        print(printable("  ".join([*cells, problem[:300]]).rstrip()), flush=True)


def _cell(value: Any) -> Any:
    """A logged value as text or JSON can show it: bytes (a damaged row) as their length."""
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else value
