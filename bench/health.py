"""What a health check costs, and what observing a request adds, measured side by side in one run.

    .venv/bin/python bench/health.py

1. ``Monitor.health()`` on a full window of normal data (8, 64 and 256 features x windows of 1,000 and 10,000
   rows), next to a loop of ``scipy.stats.ks_2samp`` over the same window columns against the reference columns.
   The first health call may include one-off calibration, so it is timed apart (``warm-up``); the figure compared
   is the median of 5 calls after it, each after a new 100-row request (a health check asked again on the same
   window reuses what was computed on it, which would compare nothing). Goal: health at least 10x faster than
   the scipy loop. alibi-detect's KSDrift and Evidently's data drift report (one run) are timed too when they
   are installed (goal: 50x faster than Evidently); bench/run.py installs Evidently in its own environment.
2. The per-row cost of ``Monitor.observe`` (batches of 1 and of 64 rows, median per row), next to one
   ``predict_proba`` call of the example iris classifier (trained inline, as examples/classifier/train.py does).
3. Where one health computation's time goes with every check on: 64 features, a 2,000-row window, a classifier's
   two probabilities, a reference with labels and predictions (so joint drift, estimated performance and concept
   drift are all judged) and a label fed back for every row; in memory and with a log store. Each part is timed
   by wrapping the function ``Monitor.health`` calls for it (median over the calls); "the rest" is the median
   total less the parts' medians: the report's assembly and its listeners (history, status log). The total is
   what ``GET /health/model`` spends on its answer: ``Monitor.health()`` and then the report rendered as the JSON
   body it sends (``healthjson.report_bytes``), timed as a part of its own. Three cases:
   health asked again on the same window (a dashboard refreshing, a probe: what was computed on the window's
   contents is reused); a window of 100-row requests moved by one more, labelled, since the last health (every
   check computed again); and a window of one-row requests (a service answering one row at a time: 2,000
   requests in the window, 1,000 recent ones judged by the pipeline check) moved by one more. Every request is
   observed with the latency and stage timings a guarded service records (validate, predict, serialize), which
   the pipeline check summarises. Run whole, the script measures this part in a process of its own (see
   ``breakdown_apart``). Goal (issue 15): 5 ms in all.

Seeded data, ``time.perf_counter``; numbers are for the machine they run on, only the ratios travel. On a
shared machine, ``--clock cpu`` times everything by the process's CPU time instead (``time.process_time``,
every thread's: a BLAS call that split its work over threads is counted whole): what a health computation
costs without the time it waited for a core. The new request of the second case is written and flushed
before its health is timed.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import ks_2samp
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from guarded_serving import Monitor, Reference
from guarded_serving.drift.columns import WindowColumns
from guarded_serving.healthjson import report_bytes
from guarded_serving.monitor import evaluation, judged, stored

FEATURES = (8, 64, 256)
WINDOWS = (1_000, 10_000)
REFERENCE_ROWS = 10_000
REPEATS = 5
GOAL = 10.0
EVIDENTLY_GOAL = 50.0
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK_NAMES = {time.perf_counter: "wall clock", time.process_time: "the process's CPU time"}
clock = CLOCKS["wall"]  # what seconds() and the breakdown's parts are timed by (--clock)


def seconds(func: Callable[[], Any]) -> float:
    start = clock()
    func()
    return clock() - start


def median_seconds(func: Callable[[], Any], repeats: int = REPEATS) -> float:
    return statistics.median(seconds(func) for _ in range(repeats))


def per_call(func: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        func()
    return (time.perf_counter() - start) / calls


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.1f} ms"


# -- optional third-party detectors -----------------------------------------------------------------------------


def alibi_seconds(reference: np.ndarray, window: np.ndarray) -> float | str:
    try:
        from alibi_detect.cd import KSDrift  # type: ignore[import-not-found]
    except ImportError:
        return "not installed"
    detector = KSDrift(reference, p_val=0.05)
    return median_seconds(lambda: detector.predict(window), repeats=3)


def evidently_seconds(reference: np.ndarray, window: np.ndarray) -> float | str:
    try:
        import pandas as pd
    except ImportError:
        return "not installed (needs pandas)"
    columns = [f"f{j}" for j in range(reference.shape[1])]
    ref, cur = pd.DataFrame(reference, columns=columns), pd.DataFrame(window, columns=columns)
    try:
        from evidently import Report  # type: ignore[import-not-found]  # evidently >= 0.7
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

        def run() -> Any:
            return Report([DataDriftPreset()]).run(cur, ref)
    except ImportError:
        try:
            from evidently.metric_preset import DataDriftPreset  # type: ignore[import-not-found]  # evidently 0.4
            from evidently.report import Report  # type: ignore[import-not-found]
        except ImportError:
            return "not installed"

        def run() -> Any:
            report = Report(metrics=[DataDriftPreset()])
            report.run(reference_data=ref, current_data=cur)
            return report

    try:
        return seconds(run)  # one call: a report takes long enough
    except Exception as exc:  # an API this script does not know; say so rather than stop the benchmark
        return f"failed ({type(exc).__name__})"


def shown(value: float | str) -> str:
    return ms(value) if isinstance(value, float) else value


# -- 1. health() against a scipy loop ---------------------------------------------------------------------------


def health_row(n_features: int, window: int) -> dict[str, Any]:
    rng = np.random.default_rng((n_features, window))
    reference_rows = rng.normal(size=(REFERENCE_ROWS, n_features))
    reference = Reference.from_data(reference_rows, predictions=reference_rows.sum(axis=1))
    traffic = rng.normal(size=(window, n_features))
    monitor = Monitor(reference, window=window)
    for start in range(0, window, 1_000):
        batch = traffic[start : start + 1_000]
        monitor.observe(batch, batch.sum(axis=1))

    warm_up = seconds(monitor.health)
    fresh = rng.normal(size=(REPEATS, 100, n_features))
    timed_calls = []
    for batch in fresh:  # a new request before each call: every check judged again, nothing reused
        monitor.observe(batch, batch.sum(axis=1))
        timed_calls.append(seconds(monitor.health))
    health = statistics.median(timed_calls)
    window_columns = [traffic[:, j] for j in range(n_features)]
    reference_columns = [reference_rows[:, j] for j in range(n_features)]
    scipy_loop = median_seconds(lambda: [ks_2samp(w, r) for w, r in zip(window_columns, reference_columns, strict=True)])
    alibi = alibi_seconds(reference_rows, traffic)
    evidently = evidently_seconds(reference_rows, traffic)
    return {
        "features": n_features,
        "window": window,
        "warm_up_s": warm_up,
        "health_s": health,
        "scipy_s": scipy_loop,
        "vs_scipy": scipy_loop / health,
        "alibi_s": alibi,
        "vs_alibi": alibi / health if isinstance(alibi, float) else None,
        "evidently_s": evidently,
        "vs_evidently": evidently / health if isinstance(evidently, float) else None,
    }


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)), flush=True)


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}x"


def bench_health() -> list[dict[str, Any]]:
    print(f"Monitor.health() on a full window vs a scipy.stats.ks_2samp loop ({REFERENCE_ROWS:,} reference rows)")
    print(f"goals: scipy loop / health >= {GOAL:.0f}x, Evidently / health >= {EVIDENTLY_GOAL:.0f}x;")
    print(
        f"health = median of {REPEATS} calls after the warm-up call (which includes the one-off calibration),"
        " each after a new 100-row request\n"
    )
    header = ["features", "window", "warm-up", "health", "scipy KS loop", "vs scipy", "alibi KSDrift", "vs alibi"]
    header += ["Evidently", "vs Evidently"]
    results = [health_row(f, w) for f in FEATURES for w in WINDOWS]
    table = [
        [
            f"{r['features']}",
            f"{r['window']:,}",
            ms(r["warm_up_s"]),
            ms(r["health_s"]),
            ms(r["scipy_s"]),
            ratio(r["vs_scipy"]),
            shown(r["alibi_s"]),
            ratio(r["vs_alibi"]),
            shown(r["evidently_s"]),
            ratio(r["vs_evidently"]),
        ]
        for r in results
    ]
    print_table(header, table)
    return results


# -- 2. observe() per row against one predict_proba -------------------------------------------------------------


def bench_observe() -> dict[str, float]:
    X, y = load_iris(return_X_y=True)
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=500))]).fit(X, y)
    reference = Reference.from_data(X, y=y, predictions=model.predict_proba(X), feature_names=IRIS_FEATURES)
    monitor = Monitor(reference, window=1_000)
    rng = np.random.default_rng(7)
    rows = X[rng.integers(0, len(X), 1_000)]
    monitor.observe(rows.tolist(), model.predict_proba(rows))  # a full window: the steady state
    one, batch = rows[:1], rows[:64]
    one_rows, one_out = one.tolist(), model.predict_proba(one)
    batch_rows, batch_out = batch.tolist(), model.predict_proba(batch)

    predict, single, batched = [], [], []
    for _ in range(7):  # interleaved rounds
        predict.append(per_call(lambda: model.predict_proba(one), 500))
        single.append(per_call(lambda: monitor.observe(one_rows, one_out), 500))
        batched.append(per_call(lambda: monitor.observe(batch_rows, batch_out), 50) / 64)
    p = statistics.median(predict)
    print("\nMonitor.observe per row vs one predict_proba call of the iris classifier (1 row)")
    for label, cost in (("batch of 1 row", statistics.median(single)), ("batch of 64 rows", statistics.median(batched))):
        print(f"  observe, {label:>16}: {cost * 1e6:8.1f} us/row | predict_proba {p * 1e6:8.1f} us | ratio {cost / p:.2f}")
    return {"predict_s": p, "observe_1_s": statistics.median(single), "observe_64_per_row_s": statistics.median(batched)}


# -- 3. where the time of one health computation goes -----------------------------------------------------------

BREAKDOWN_FEATURES = 64
BREAKDOWN_WINDOW = 2_000
BREAKDOWN_CALLS = 30
# What Monitor.health calls for each part: functions by the name guarded_serving.monitor calls them under, methods
# of the monitor, and Columns.of (which lays out the inputs for the per-feature and joint checks, and the outputs
# for prediction drift). None of these calls another of them, so the parts add up.
PARTS = (
    "window (read, assemble)",
    "lay-out of the inputs (Columns.of, .moved)",
    "data_drift",
    "prediction_drift",
    "concept_drift (labels joined)",
    "data_quality",
    "joint_drift",
    "estimated_performance",
    "pipeline, store, environment",
    "recent requests (from the store)",
)
BODY = "the answer's JSON body (report_bytes)"  # /health/model's own part, after Monitor.health()


def labelled_world(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated normal features, a logistic model's two probabilities and labels drawn from them."""
    X = rng.normal(size=(rows, BREAKDOWN_FEATURES))
    X[:, 1::2] = 0.6 * X[:, ::2] + 0.8 * X[:, 1::2]
    p = 1 / (1 + np.exp(-(X[:, 0] - X[:, 2])))
    return X, np.column_stack([1 - p, p]), (rng.random(rows) < p).astype(int)


def timed(func: Callable[..., Any], part: Callable[..., str], spent: dict[str, list[float]]) -> Callable[..., Any]:
    """``func``, adding the seconds of each call to ``spent[part(*args)]``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return func(*args, **kwargs)
        finally:
            spent[part(*args)][-1] += clock() - start

    return wrapper


def served(rng: np.random.Generator) -> dict[str, Any]:
    """A guarded service's latency and stage timings (ms) for one request, as its handler records them."""
    stages = {name: float(rng.gamma(2.0, scale)) for name, scale in (("validate", 0.02), ("predict", 0.2), ("serialize", 0.01))}
    return {"latency_ms": sum(stages.values()) + 0.05, "stages": stages}


def breakdown(db: str | None, moving: bool, per_request: int = 100) -> dict[str, float]:
    """Median seconds per part of one Monitor.health() (see PARTS), the total, and the rest; the window filled by
    labelled requests of ``per_request`` rows; ``moving``: one more before each call."""
    rng = np.random.default_rng(15)
    X, P, y = labelled_world(REFERENCE_ROWS, rng)
    monitor = Monitor(Reference.from_data(X, y=y, predictions=P), window=BREAKDOWN_WINDOW, db=db, name="breakdown")
    monitor.start()
    n = per_request
    X, P, y = labelled_world(BREAKDOWN_WINDOW + n * (BREAKDOWN_CALLS + 1), rng)
    timings = np.random.default_rng(16)
    for start in range(0, BREAKDOWN_WINDOW, n):
        request_id = monitor.observe(X[start : start + n], P[start : start + n], **served(timings))
        monitor.feedback(request_id, y[start : start + n].tolist())
    monitor.flush()
    monitor.health()  # the one-off calibrations
    fresh = iter(range(BREAKDOWN_WINDOW, len(X), n))
    spent: dict[str, list[float]] = {part: [] for part in PARTS}
    inputs = monitor.baseline
    evaluator = monitor._evaluator
    wrapped: list[tuple[Any, str, Any]] = [
        (evaluator, "window_data", lambda *a: PARTS[0]),
        (WindowColumns, "of", lambda matrix, base: PARTS[1] if base is inputs else PARTS[3]),
        (WindowColumns, "moved", lambda columns, matrix, left, arrived, base: PARTS[1] if base is inputs else PARTS[3]),
        (evaluation, "drift_check", lambda name, *a: PARTS[2] if name == "data_drift" else PARTS[3]),
        (judged, "drift_check", lambda name, *a: PARTS[2] if name == "data_drift" else PARTS[3]),
        (evaluator.judged, "concept", lambda *a: PARTS[4]),
        (evaluation, "quality_check", lambda *a: PARTS[5]),
        (evaluation, "joint_check", lambda *a: PARTS[6]),
        (judged, "estimate_check", lambda *a: PARTS[7]),  # judged.py asks it, with the profile it judges against
        (evaluator, "_pipeline_check", lambda *a: PARTS[8]),  # the recent requests' summary included
        *((evaluation, name, lambda *a: PARTS[8]) for name in ("store_check", "environment_check")),
        (stored.StoredRecent, "read", lambda *a: PARTS[9]),
    ]
    saved = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in wrapped]
    for owner, name, part in wrapped:
        setattr(owner, name, timed(getattr(owner, name), part, spent))
    total: list[float] = []
    body: list[float] = []
    try:
        for _ in range(BREAKDOWN_CALLS):
            if moving:
                start = next(fresh)
                request_id = monitor.observe(X[start : start + n], P[start : start + n], **served(timings))
                monitor.feedback(request_id, y[start : start + n].tolist())
                monitor.flush()
            for values in spent.values():
                values.append(0.0)
            started = clock()
            report = monitor.health()
            computed = clock()
            report_bytes(report)  # what GET /health/model answers: the report as JSON text
            total.append(clock() - started)
            body.append(clock() - computed)
    finally:
        for owner, name, original in saved:
            if original is None:
                delattr(owner, name)  # an instance's own attribute: back to the class's method
            else:
                setattr(owner, name, original)
        monitor.close()
    out = {part: statistics.median(values) for part, values in spent.items()}
    out[BODY] = statistics.median(body)
    out["the rest (report, history, listeners)"] = max(statistics.median(total) - sum(out.values()), 0.0)
    out["total"] = statistics.median(total)
    return out


def bench_breakdown() -> dict[str, dict[str, float]]:
    print(
        f"\nWhere one /health/model answer goes: {BREAKDOWN_FEATURES} features, a {BREAKDOWN_WINDOW:,}-row window, every check"
        f" on, a label for every row (median of {BREAKDOWN_CALLS} calls per part, {CLOCK_NAMES[clock]}; goal 5 ms in all)"
    )
    with tempfile.TemporaryDirectory(prefix="guarded-health-") as tmp:
        results = {
            "memory, same window": breakdown(None, moving=False),
            "store, same window": breakdown(f"{tmp}/same.db", moving=False),
            "memory, one new request": breakdown(None, moving=True),
            "store, one new request": breakdown(f"{tmp}/moving.db", moving=True),
            "memory, one-row requests": breakdown(None, moving=True, per_request=1),
            "store, one-row requests": breakdown(f"{tmp}/one-row.db", moving=True, per_request=1),
        }
    parts = list(results["memory, same window"])
    rows = [[part, *(ms(r[part]) for r in results.values())] for part in parts]
    print_table(["part", *results], rows)
    return results


def breakdown_apart(clock_name: str) -> dict[str, dict[str, float]]:
    """Part 3 in a process of its own: after Evidently's reports in this one (pandas, its caches, a heap they
    spread), the same breakdown measured 13.2 ms in memory after a 100-row request against 8.0 ms alone."""
    with tempfile.TemporaryDirectory(prefix="guarded-health-") as tmp:
        out = Path(tmp) / "breakdown.json"
        subprocess.run([sys.executable, __file__, "--breakdown", "--clock", clock_name, "--json", str(out)], check=True)
        return dict(json.loads(out.read_text())["breakdown"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--breakdown", action="store_true", help="only part 3: where one health computation's time goes")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall", help="time by the wall clock (default) or the thread's CPU time"
    )
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    if args.breakdown:
        result: dict[str, Any] = {"breakdown": bench_breakdown()}
    else:
        result = {"health": bench_health(), "observe": bench_observe(), "breakdown": breakdown_apart(args.clock)}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
