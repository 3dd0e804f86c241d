"""Does a guarded model's memory stay flat however long it serves? RSS before and after 1,000,000 rows.

    .venv/bin/python bench/memory.py               # 1,000,000 rows in 64-row requests (about a minute)
    .venv/bin/python bench/memory.py --rows 200000

In one process: a GuardedModel over the 20-feature logistic regression of bench/apps.py, with a
real SQLite store, answers JSON requests through ``handle_predict`` (the path a served request
takes), with a health evaluation every 50,000 rows as a scraper or dashboard would cause. Every
100 requests the loop waits for the store to catch up, as a served process never outruns its writer
(bench/store.py: the writer sustains several times the service's peak): an unpaced in-process flood
would instead measure the store's buffer filling up to ``store_capacity``, a bound, not growth. The
process's resident set size (psutil) is read after start-up, after the first 50,000 rows (every
bounded structure full: the window, the predictions kept for label joins, recent requests, SQLite's
page caches) and at the end, each after the store has flushed and a garbage collection.
Goal: less than 10 MB of growth over the 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
GOAL_MB = 10.0


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ["BENCH_MODEL"] = "logreg"
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="guarded-memory-") as tmp:
        os.environ["GUARDED_SERVING_DB"] = os.path.join(tmp, "unused.db")
        import bench.apps as apps
        from guarded_serving import GuardedModel

        guarded = GuardedModel(apps.predict, reference=apps.X_TRAIN, name="memory", db=os.path.join(tmp, "memory.db"))
        monitor = guarded.start()
        monitor.calibration()  # the one-off calibrations are start-up, not growth
        monitor.joint_baseline()
        rng = np.random.default_rng(3)
        bodies = [json.dumps({"rows": rng.normal(size=(args.batch, 20)).tolist()}).encode() for _ in range(50)]
        started = rss_mb()
        marks = {"after start-up": started}
        served = 0
        requests = 0
        while served < args.rows:
            reply = guarded.handle_predict(bodies[requests % len(bodies)], "application/json")
            if reply.status != 200:
                raise SystemExit(f"request {requests} failed: {reply.body[:200]!r}")
            requests += 1
            served += args.batch
            if requests % 100 == 0:
                assert monitor.flush(60)
            if served == 1024:  # first calls: lazy imports and caches in numpy, scikit-learn, pydantic-core
                assert monitor.flush(60)
                marks["after 1,024 rows"] = rss_mb()
            if served % 50_000 < args.batch:
                monitor.health()
                if "after 50,000 rows" not in marks:
                    assert monitor.flush(60)
                    marks["after 50,000 rows"] = rss_mb()
            if served % 100_000 < args.batch and served < args.rows:  # the curve: a bound reached, or a leak
                assert monitor.flush(60)
                gc.collect()
                marks[f"after {served - served % 100_000:,} rows"] = rss_mb()
        assert monitor.flush(120)
        monitor.health()
        marks[f"after {served:,} rows"] = rss_mb()
        stats = monitor.store.stats() if monitor.store is not None else None
        guarded.close()
    growth = marks[f"after {served:,} rows"] - started
    steady = marks[f"after {served:,} rows"] - marks["after 50,000 rows"]
    half = f"after {served // 2 - served // 2 % 100_000:,} rows"
    second_half = marks[f"after {served:,} rows"] - marks.get(half, marks["after 50,000 rows"])
    for label, value in marks.items():
        print(f"  RSS {label:>22}: {value:7.1f} MB")
    print(f"growth over {served:,} rows: {growth:.1f} MB from start-up, {steady:.1f} MB once every bound is reached")
    print(f"growth over the second half ({half} to the end): {second_half:.1f} MB")
    print(f"goal: less than {GOAL_MB:.0f} MB; the store dropped {stats.dropped if stats else 0} rows")
    result = {
        "rows": served,
        "rss_start_mb": started,
        "growth_mb": growth,
        "steady_growth_mb": steady,
        "second_half_growth_mb": second_half,
        "marks": marks,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
