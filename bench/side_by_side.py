"""This tree's health computation against another commit's, in one process, health by health.

    .venv/bin/python bench/side_by_side.py [--ref main] [--calls 120]

Separate runs of ``bench/health.py --breakdown`` on a shared machine move by more than most changes save (the load
changes between them). Here the other commit's package is extracted from git into a temporary directory under
another name and imported beside this tree's; two monitors are fed the same traffic (bench/health.py's breakdown
world: 64 features, a 2,000-row window, every check on, a label for every row) and asked for a health in turn,
after each new labelled 100-row request. Printed: the median CPU time (``time.process_time``) of the input lay-out
(``WindowColumns.of``), data drift, prediction drift (its own lay-out included) and the whole health, for both;
and how many of the reports differed (times and delays left out), which should be none.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import health as breakdown  # bench/health.py: the breakdown's world

PARTS = ("layout", "data_drift", "prediction_drift")


def extract(ref: str, into: Path) -> str:
    """The package at ``ref`` as ``guarded_serving_<ref>`` under ``into`` (its imports are relative)."""
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", ref, "guarded_serving"], capture_output=True, check=True, cwd=root).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    name = "guarded_serving_" + "".join(c if c.isalnum() else "_" for c in ref)
    (into / "guarded_serving").rename(into / name)
    return name


def world(package: str, calls: int) -> dict[str, Any]:
    pkg = importlib.import_module(package)
    evaluation = importlib.import_module(package + ".monitor.evaluation")
    judged = importlib.import_module(package + ".monitor.judged")
    columns = importlib.import_module(package + ".drift.columns")
    rng = np.random.default_rng(15)
    X, P, y = breakdown.labelled_world(breakdown.REFERENCE_ROWS, rng)
    monitor = pkg.Monitor(pkg.Reference.from_data(X, y=y, predictions=P), window=breakdown.BREAKDOWN_WINDOW, name="side")
    monitor.start()
    X, P, y = breakdown.labelled_world(breakdown.BREAKDOWN_WINDOW + 100 * (calls + 1), rng)
    for start in range(0, breakdown.BREAKDOWN_WINDOW, 100):
        monitor.feedback(monitor.observe(X[start : start + 100], P[start : start + 100]), y[start : start + 100].tolist())
    monitor.flush()
    monitor.health()
    spent: dict[str, list[float]] = {part: [] for part in (*PARTS, "total")}
    inputs = monitor.baseline

    def wrap(owner: Any, name: str, part: Callable[..., str]) -> None:
        func = getattr(owner, name)

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return func(*args, **kwargs)
            finally:
                spent[part(*args)][-1] += time.process_time() - start

        setattr(owner, name, timed)

    wrap(columns.WindowColumns, "of", lambda matrix, base, *a: "layout" if base is inputs else "prediction_drift")
    for module in (evaluation, judged):
        wrap(module, "drift_check", lambda name, *a: "data_drift" if name == "data_drift" else "prediction_drift")
    return {"monitor": monitor, "X": X, "P": P, "y": y, "next": breakdown.BREAKDOWN_WINDOW, "spent": spent}


def _scrubbed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items() if "delay" not in k and "latency" not in k and k != "generated_at"}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def step(state: dict[str, Any]) -> str:
    monitor, start = state["monitor"], state["next"]
    state["next"] += 100
    monitor.feedback(
        monitor.observe(state["X"][start : start + 100], state["P"][start : start + 100]),
        state["y"][start : start + 100].tolist(),
    )
    monitor.flush()
    for values in state["spent"].values():
        values.append(0.0)
    begin = time.process_time()
    report = monitor.health()
    state["spent"]["total"][-1] = time.process_time() - begin
    return json.dumps(_scrubbed(report.to_json()), sort_keys=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default="main", help="the commit to compare with (default main)")
    parser.add_argument("--calls", type=int, default=120, help="healths of each (default 120)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        sys.path.insert(0, tmp)
        other = extract(args.ref, Path(tmp))
        theirs, ours = world(other, args.calls), world("guarded_serving", args.calls)
        load = Path("/proc/loadavg").read_text().split()[0]
        differing = sum(step(theirs) != step(ours) for _ in range(args.calls))
        load += " -> " + Path("/proc/loadavg").read_text().split()[0]
        for state in (theirs, ours):
            state["monitor"].close()
    print(f"{args.calls} healths each, {differing} reports differing; load {load}; ms of CPU, medians")
    for part in (*PARTS, "total"):
        a, b = (statistics.median(s["spent"][part]) * 1e3 for s in (theirs, ours))
        print(f"  {part:18s} {args.ref} {a:6.3f}  this tree {b:6.3f}")
    a, b = (statistics.median(map(sum, zip(*(s["spent"][p] for p in PARTS), strict=True))) * 1e3 for s in (theirs, ours))
    print(f"  {'the three':18s} {args.ref} {a:6.3f}  this tree {b:6.3f}")


if __name__ == "__main__":
    main()
