"""The guard's own work on the paths a request takes besides the common one, side by side in one run.

    .venv/bin/python bench/paths.py                 # 3 interleaved rounds (~1 minute)

bench/overhead.py times the common path: a model taking an array of numbers, rows sent as lists, every value
logged. Users also send rows as objects, serve tables with categories, keep inputs off disk, sample what is
logged or redact a feature. Each of those is timed here the way ``overhead.py --micro`` times the common
one: ``GuardedModel.handle_predict`` on the same 64-row JSON body over and over, a stand-in model returning a
precomputed answer (the model's cost is not the guard's), a real SQLite store, the process's CPU time until the
store has flushed (the writer thread included) and the request thread's alone; the median of 5 batches of 300
requests. The paths take turns round by round, each in a new GuardedModel started and warmed up first (its
calibration in the background not timed), so that a slower stretch of this shared machine falls on all of them
alike. Printed: µs per request and the ratio to the common path measured in the same round (median over the
rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from guarded_serving import GuardedModel

ROWS = 64
NUMBERS = 20  # features of the numeric table; the mixed one has 18 numbers and 2 categories
REFERENCE_ROWS = 5_000
BATCHES, PER_BATCH = 5, 300


def tables() -> tuple[list[list[Any]], list[str], list[list[Any]], list[str]]:
    """A numeric reference (20 features) and a mixed one (18 numbers, a 4-level and a 2-level category)."""
    rng = np.random.default_rng(0)
    numeric = rng.normal(size=(REFERENCE_ROWS, NUMBERS)).round(6).tolist()
    regions = rng.choice(["north", "south", "east", "west"], REFERENCE_ROWS).tolist()
    plans = rng.choice(["basic", "premium"], REFERENCE_ROWS).tolist()
    mixed = [[*row[:18], r, p] for row, r, p in zip(numeric, regions, plans, strict=True)]
    return numeric, [f"x{j}" for j in range(NUMBERS)], mixed, [f"x{j}" for j in range(18)] + ["region", "plan"]


def paths() -> dict[str, tuple[list[list[Any]], list[str], bytes, dict[str, Any]]]:
    """Each path: the reference rows, their names, the body sent, and guard()'s keywords."""
    numeric, names, mixed, mixed_names = tables()

    def body(rows: list[list[Any]], by_name: list[str] | None = None) -> bytes:
        sent: list[Any] = rows if by_name is None else [dict(zip(by_name, r, strict=True)) for r in rows]
        return json.dumps({"rows": sent}).encode()

    common = body(numeric[:ROWS])
    return {
        "numbers as lists (the common path)": (numeric, names, common, {}),
        "log_inputs=False": (numeric, names, common, {"log_inputs": False}),
        "sample_rate=0.5": (numeric, names, common, {"sample_rate": 0.5}),
        "redact one feature": (numeric, names, common, {"redact": ["x3"]}),
        "numbers as objects (by name)": (numeric, names, body(numeric[:ROWS], names), {}),
        "18 numbers + 2 categories as lists": (mixed, mixed_names, body(mixed[:ROWS]), {}),
        "18 numbers + 2 categories as objects": (mixed, mixed_names, body(mixed[:ROWS], mixed_names), {}),
    }


def guard_work(reference: list[list[Any]], names: list[str], payload: bytes, keywords: dict[str, Any]) -> tuple[float, float]:
    """The guard's CPU per request in µs: (the process, store writer included; the request thread alone)."""
    answer = np.zeros(ROWS)
    tmp = tempfile.mkdtemp(prefix="guarded-paths-")
    try:
        guarded = GuardedModel(
            lambda x: np.zeros(len(x)), reference=reference, feature_names=names, name="paths", db=Path(tmp) / "p.db", **keywords
        )
        stand_in: Callable[[Any], Any] = lambda _x: answer  # noqa: E731
        guarded.call = stand_in
        guarded.start()
        try:
            for _ in range(200):
                reply = guarded.handle_predict(payload, "application/json")
                if reply.status != 200:
                    raise SystemExit(f"{keywords}: {reply.status} {reply.body[:300]!r}")
            monitor = guarded.monitor
            assert monitor is not None
            monitor.calibration()  # once per worker at start, in a thread of its own: not a request's work
            monitor.joint_baseline()
            assert monitor.flush(30)
            process, thread = [], []
            for _ in range(BATCHES):
                cpu0, thread0 = time.process_time(), time.thread_time()
                for _ in range(PER_BATCH):
                    guarded.handle_predict(payload, "application/json")
                spent = time.thread_time() - thread0
                assert monitor.flush(60)
                process.append((time.process_time() - cpu0) / PER_BATCH * 1e6)
                thread.append(spent / PER_BATCH * 1e6)
        finally:
            guarded.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return statistics.median(process), statistics.median(thread)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    cases = paths()
    common = next(iter(cases))
    measured: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for round_ in range(args.rounds):
        order = list(cases)[round_ % len(cases) :] + list(cases)[: round_ % len(cases)]  # who goes first rotates
        got = {name: guard_work(*cases[name]) for name in order}
        for name, (process, thread) in got.items():
            measured[name].append((process, thread, process / got[common][0]))
    rows = [
        {
            "path": name,
            "us": statistics.median(m[0] for m in runs),
            "thread_us": statistics.median(m[1] for m in runs),
            "vs_common": statistics.median(m[2] for m in runs),
        }
        for name, runs in measured.items()
    ]
    print(f"\nThe guard's own CPU per {ROWS}-row request, store writer included (median of {args.rounds} rounds)")
    print(f"{'path':40s} {'µs':>8s} {'thread':>8s} {'x common':>9s}")
    for r in rows:
        print(f"{r['path']:40s} {r['us']:8.0f} {r['thread_us']:8.0f} {r['vs_common']:8.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"rows": ROWS, "rounds": args.rounds, "paths": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
