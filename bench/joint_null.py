"""How often joint_drift fires on healthy traffic: its false-alarm rate, over many independent windows.

    .venv/bin/python bench/joint_null.py [--windows 200]

The acceptance tests check every 250 rows, so their windows overlap and 480 checks hold few independent
chances to fire; here each window is fresh. Nine correlated worlds (tests/apps/copula.py: 8, 30 and 64 features,
three structures each, with categorical features and missing values), windows of 500 and 2,000 rows, ``--windows``
windows each, judged by ``joint_check`` at its own budget (0.05 % of checks) and, to see the tail's shape at levels
a few thousand windows resolve, at 1 % and 10 %. A rate is a count over windows: a rate at its budget or below is
the goal. Not part of bench/run.py: it measures a rate, not a speed (about 5 minutes at 200 windows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = (0.0005, 0.01, 0.1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=200, help="fresh windows per world and window size")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from guarded_serving.drift.baseline import Baseline
    from guarded_serving.drift.columns import WindowColumns
    from guarded_serving.drift.encoder import Encoder
    from guarded_serving.drift.joint import JointBaseline, joint_check
    from tests.apps.copula import grouped, reference_of

    flagged = dict.fromkeys(ALPHAS, 0)
    judged = 0
    started = time.perf_counter()
    print(f"joint_drift on fresh healthy windows ({args.windows} per world and window size); flagged so far per alpha")
    for n_features in (8, 30, 64):
        for seed in (n_features, n_features + 8, n_features + 16):  # same shapes, other structures
            world = grouped(n_features, seed)
            reference = reference_of(world, seed)
            base = Baseline.from_profiles(reference.features)
            encoder = Encoder(base)
            for window in (500, 2000):
                rng = np.random.default_rng((seed, window))
                rows = encoder.encode(world.observe(world.latent(window * args.windows, rng), rng).tolist(), {}, {})
                fitted = JointBaseline.fit(reference.row_sample, base, window)
                pairs = len(fitted.left)  # the same fit at other levels: only the Bonferroni bound differs
                fits = {a: dataclasses.replace(fitted, alpha=a, threshold=float(norm.isf(a / (2 * pairs)))) for a in ALPHAS}
                for k in range(args.windows):
                    matrix = rows[k * window : (k + 1) * window]
                    columns = WindowColumns.of(matrix, base)
                    for alpha, joint in fits.items():
                        flagged[alpha] += joint_check(joint, matrix, columns, base, 100).status.value in ("warn", "alert")
                    judged += 1
                shown = ", ".join(f"{alpha:g}: {count}" for alpha, count in flagged.items())
                where = f"{n_features:>2} features, seed {seed:>2}, window {window:>4}"
                print(f"  {where}: {judged} windows, {shown} ({time.perf_counter() - started:.0f} s)")
    rates = {alpha: count / judged for alpha, count in flagged.items()}
    for alpha, rate in rates.items():
        print(f"alpha {alpha:g}: {flagged[alpha]} of {judged} windows flagged ({rate:.3%})")
    result = {
        "windows": judged,
        "flagged": {str(a): c for a, c in flagged.items()},
        "rates": {str(a): r for a, r in rates.items()},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
