"""How often joint_drift fires on healthy heavy-tailed amounts: references with a window flagged, and windows flagged.

    .venv/bin/python bench/joint_tails.py [--law log-normal] [--shape 2.0] [--rho 0.5] [--features 20]
        [--reference 2000] [--window 2000] [--references 30] [--windows 5]
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/joint_tails.py ...   # another commit's package

Each reference draws its rows from a Gaussian copula: the features' latent normals independent, except that each odd
one is related to the even one before it by ``--rho``; a feature is ``exp(shape * z)`` (log-normal amounts), Pareto
amounts of tail index ``shape`` (from 100) or ``z`` itself (normal). The reference's joint baseline is fitted as a
monitor fits it, then ``--windows`` fresh windows of the same world are judged by ``joint_check``. Its budget is
0.05 % of checks. Not part of bench/run.py: it measures a rate, not a speed (~10 s per 150 windows of 20 features).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

if not any(Path(p, "guarded_serving").is_dir() for p in sys.path[1:] if p):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's package, unless PYTHONPATH names one

from guarded_serving import Reference
from guarded_serving.drift.baseline import Baseline
from guarded_serving.drift.columns import WindowColumns
from guarded_serving.drift.joint import JointBaseline, joint_check


def draw(rng: np.random.Generator, rows: int, args: argparse.Namespace) -> np.ndarray:
    z = rng.normal(size=(rows, args.features))
    z[:, 1::2] = args.rho * z[:, 0::2] + np.sqrt(1 - args.rho**2) * z[:, 1::2]
    if args.law == "log-normal":
        return np.exp(args.shape * z)
    if args.law == "pareto":
        return 100.0 * norm.sf(z) ** (-1 / args.shape)
    return z


def main(argv: list[str] | None = None) -> tuple[int, int]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--law", choices=("log-normal", "pareto", "normal"), default="log-normal")
    parser.add_argument("--shape", type=float, default=2.0)
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--reference", type=int, default=2000)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--references", type=int, default=30)
    parser.add_argument("--windows", type=int, default=5)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    references = windows = 0
    for seed in range(args.references):
        rng = np.random.default_rng((seed, 77))
        reference = Reference.from_data(draw(rng, args.reference, args))
        base = Baseline.from_profiles(reference.features)
        joint = JointBaseline.fit(reference.row_sample, base, args.window)
        found = 0
        for _ in range(args.windows):
            matrix = draw(rng, args.window, args)
            result = joint_check(joint, matrix, WindowColumns.of(matrix, base), base, 100)
            if result.status.value in ("warn", "alert"):
                found += 1
                print(f"  reference {seed}: {result.summary}")
        references += found > 0
        windows += found
    total = args.references * args.windows
    print(
        f"{args.law} {args.shape:g}, rho {args.rho:g}, {args.features} features, reference {args.reference}, window"
        f" {args.window}: {references} of {args.references} references and {windows} of {total} windows flagged"
        f" ({time.perf_counter() - started:.0f} s)"
    )
    return references, windows


if __name__ == "__main__":
    main()
