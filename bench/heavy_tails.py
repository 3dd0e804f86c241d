"""How often data drift fires on healthy heavy-tailed features: this tree against another commit, on the same data.

    .venv/bin/python bench/heavy_tails.py [--law log-normal] [--shape 1.5] [--reference 1000] [--window 1000]
        [--features 20] [--references 60] [--windows 5] [--seed 0] [--ref main]

Fresh references drawn from one law (tests/fixtures/data.py's ``heavy_tailed``: log-normal, Pareto amounts or Zipf
counts; or ``normal``), each calibrated for the window as a monitor is, and fresh windows from the same law judged by
``drift_check``; the other commit's package is extracted from git beside this tree's (as bench/side_by_side.py does)
and judges the same references and windows. Printed: the checks flagged by each, which test fired, the first few
reasons, and Calibration.fit's CPU time. Data drift's budget is 0.4 % of checks. Not part of bench/run.py: it
measures a rate, not a speed (a minute or two per 300 checks of 20 features).
"""

from __future__ import annotations

import argparse
import collections
import importlib
import re
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from side_by_side import extract

from tests.fixtures.data import heavy_tailed


def draw(law: str, shape: float, rows: int, features: int, seed: int) -> np.ndarray:
    if law == "normal":
        return np.random.default_rng(seed).normal(size=(rows, features))
    return heavy_tailed(rows, features, seed=seed, law=law, shape=shape)


def package(name: str) -> dict[str, ModuleType]:
    return {part: importlib.import_module(f"{name}{part}") for part in ("", ".drift", ".drift.checks", ".drift.columns")}


def judge(tree: dict[str, ModuleType], X: np.ndarray, windows: list[np.ndarray]) -> tuple[list[list[str]], float]:
    """The reasons of the features each window's data drift flags, and the CPU seconds of Calibration.fit."""
    top, drift, checks, columns = tree[""], tree[".drift"], tree[".drift.checks"], tree[".drift.columns"]
    names = [f"f{j}" for j in range(X.shape[1])]
    base = drift.Baseline.from_profiles(top.Reference.from_data(X, feature_names=names).features)
    start = time.process_time()
    cal = drift.Calibration.fit(base, len(windows[0]), checks.ALPHA_DATA)
    fit = time.process_time() - start
    out = []
    for rows in windows:
        matrix = drift.Encoder(base).encode(rows.tolist(), {}, {})
        data = drift.assemble([drift.Chunk(matrix, None, {}, {})], len(matrix), base.width, None)
        result = checks.drift_check("data_drift", base, cal, columns.WindowColumns.of(data.inputs, base), 100)
        out.append([f"{n}: {f.reason}" for n, f in result.details.features.items() if f.drifted])
    return out, fit


def tests_fired(reasons: list[str]) -> collections.Counter[str]:
    fired: collections.Counter[str] = collections.Counter()
    for reason in reasons:
        for part in reason.split(": ", 1)[1].split(";")[0].split(", "):
            fired[re.sub(r"[ x+\-0-9.>%]+.*", "", part)] += 1
    return fired


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--law", default="log-normal", choices=["log-normal", "pareto", "zipf", "normal"])
    parser.add_argument("--shape", type=float, default=1.5, help="sigma, tail index or Zipf exponent")
    parser.add_argument("--reference", type=int, default=1000, help="reference rows")
    parser.add_argument("--window", type=int, default=1000, help="window rows")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--references", type=int, default=60)
    parser.add_argument("--windows", type=int, default=5, help="fresh windows per reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref", default="main", help="the commit to compare with (default main)")
    args = parser.parse_args(argv)
    into = Path(tempfile.mkdtemp())
    sys.path.insert(0, str(into))
    trees = {"this tree": package("guarded_serving"), args.ref: package(extract(args.ref, into))}
    flagged: dict[str, list[Any]] = {name: [] for name in trees}
    fits: dict[str, float] = dict.fromkeys(trees, 0.0)
    for r in range(args.references):
        seed = args.seed + 10_000 * r
        X = draw(args.law, args.shape, args.reference, args.features, seed)
        windows = [draw(args.law, args.shape, args.window, args.features, seed + w + 1) for w in range(args.windows)]
        for name, tree in trees.items():
            reasons, fit = judge(tree, X, windows)
            fits[name] += fit
            flagged[name] += [(r, w, found) for w, found in enumerate(reasons) if found]
    checks = args.references * args.windows
    print(f"{args.law} {args.shape:g}, {args.features} features, {args.reference} reference rows, windows of {args.window}:")
    for name in trees:
        fired = sum((tests_fired(found) for _, _, found in flagged[name]), collections.Counter())
        print(
            f"  {name}: {len(flagged[name])} of {checks} checks flagged ({args.references} references x {args.windows}"
            f" windows; tests fired {dict(fired)}); Calibration.fit {fits[name] / args.references * 1000:.0f} ms CPU"
        )
        for r, w, found in flagged[name][:5]:
            print(f"    reference {r}, window {w}: {'; '.join(found)}")


if __name__ == "__main__":
    main()
