"""How often the collection of a served performance baseline adopts only its older rows: on healthy labels (a false
adoption, and the later checks it makes fail), and after a change (kept out of the baseline, and how soon).

    .venv/bin/python bench/split_null.py [--collections 600] [--extra 20000] [--streams 300] [--monitor 20]
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/split_null.py ...   # another commit's package

A one-liner (no held-out labels) collects its performance baseline from the first ADOPT_ROWS (2,000) labelled rows
and, while it collects, adopts the older rows alone when the newer ones perform worse. Side by side on the same
streams: the OLD rule (commit 0994989: at every health check from 200 labels on, the newer half against the older
half by concept drift's own bound and change detector, each at its budget of a check; copied here) and the NEW one
(``guarded_serving.monitor.judged._before_a_change``: fixed checkpoints, split points every eighth, one budget).

The world is a calibrated binary classifier: ``x ~ N(0, 1)``, ``P(y = 1) = sigmoid(a x)`` and the model answers
those probabilities, ``a`` chosen for an accuracy of 0.7, 0.8 or 0.9. Health is asked every ``--looks`` labels.

* healthy: ``--collections`` collections per accuracy and look interval, each rule asked at every look as the
  monitor asks it; then 20 later checks, each on a fresh window of 200 labelled rows, judged by ``concept_check``
  against the adopted baseline (a flag is a false alert). The new rule's answer depends on the rows only, not on
  how often it is asked (checked here on every collection: asked at every look and once at 2,000 rows, the same
  answer), so ``--extra`` more collections per accuracy are asked once, for a tighter interval on its rate.
* power: labels 30 % (or 15 %) flipped from row 250, 500, 1,000 or 1,500 of the collection, ``--streams`` streams
  each at accuracy 0.8 (and 0.7, the tests' toy model's ~0.68), health every 50 labels: the share where the
  baseline keeps the change out (older rows up to the change adopted), the share adopted whole (the change
  missed), and, of the streams whose older rows were adopted, the median rows from the change to the look that
  adopted them and the median rows adopted.
* ``--monitor``: so many of the healthy streams (accuracy 0.8, a look every 50) also go through a real ``Monitor``
  (the one-liner reference of tests/test_baselines.py, observe + feedback + health): its adopted rows must be the
  direct call's.

The direct calls stand in for the monitor because a monitor's collection costs ~0.15 s against ~0.02 s. Not part
of bench/run.py: it measures rates, not speeds (~6 minutes at the defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta

if not any(Path(p, "guarded_serving").is_dir() for p in sys.path[1:] if p):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's package, unless PYTHONPATH names one
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from guarded_serving.baselines import served_performance
from guarded_serving.concept import concept_check
from guarded_serving.health import Status
from guarded_serving.monitor import ADOPT_ROWS
from guarded_serving.monitor.feedback import Labelled
from guarded_serving.monitor.judged import _before_a_change
from guarded_serving.performance import Performance, row_losses

Rule = Callable[[Labelled], int | None]
WINDOW = 200
LATER = 20  # later checks per collection, each on a fresh window
NO_DELAYS = np.zeros(0)


def old_rule(labelled: Labelled) -> int | None:
    """The rule before: from 200 labelled rows, the newer half against the older by ``concept_check``."""
    if len(labelled.labels) < 200:
        return None
    half = len(labelled.labels) // 2
    older = served_performance(None, labelled.outputs[:half], labelled.labels[:half])
    if older is None:
        return None
    newer = row_losses(older.task, older.classes, labelled.outputs[half:], labelled.labels[half:])
    verdict = concept_check(older, newer.error, newer.loss, NO_DELAYS, len(newer.error), 0, None)
    return half if verdict.status.rank >= Status.WARN.rank else None


def new_rule(labelled: Labelled) -> int | None:
    return _before_a_change(None, labelled, ADOPT_ROWS)


def slope_for(accuracy: float) -> float:
    """The ``a`` of ``sigmoid(a x)`` whose calibrated accuracy, ``E[max(p, 1 - p)]``, is ``accuracy``."""
    x = np.abs(np.random.default_rng(0).normal(size=200_000))
    lo, hi = 0.01, 50.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(np.mean(1 / (1 + np.exp(-mid * x)))) < accuracy else (lo, mid)
    return (lo + hi) / 2


def stream(rng: np.random.Generator, rows: int, a: float, flip: float = 0.0, start: int = 0) -> tuple[list[Any], list[int]]:
    """Outputs (class probabilities) and labels; labels flipped with probability ``flip`` from row ``start``."""
    p = 1 / (1 + np.exp(-a * rng.normal(size=rows)))
    y = (rng.random(rows) < p).astype(int)
    flipped = (np.arange(rows) >= start) & (rng.random(rows) < flip)
    y = np.where(flipped, 1 - y, y)
    return np.column_stack([1 - p, p]).tolist(), y.tolist()


def collect(rule: Rule, outputs: list[Any], labels: list[int], looks: int) -> tuple[int, int]:
    """Ask ``rule`` at every look as the monitor does while it collects: (rows adopted, labels at adoption)."""
    for n in range(looks, ADOPT_ROWS + 1, looks):
        found = rule(Labelled(outputs[:n], labels[:n], NO_DELAYS, n, 0))
        if found is not None:
            return found, n
    return ADOPT_ROWS, ADOPT_ROWS


def later_alerts(adopted: Performance, rng: np.random.Generator, a: float) -> int:
    flagged = 0
    for _ in range(LATER):
        outputs, labels = stream(rng, WINDOW, a)
        scored = row_losses(adopted.task, adopted.classes, outputs, labels)
        check = concept_check(adopted, scored.error, scored.loss, NO_DELAYS, WINDOW, 0, None)
        flagged += check.status.rank >= Status.WARN.rank
    return flagged


def interval(k: int, n: int) -> str:
    """The share and its exact (Clopper-Pearson) 95 % interval."""
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return f"{k}/{n} = {k / n:.3%} [{lo:.3%}, {hi:.3%}]"


def healthy(args: argparse.Namespace) -> None:
    print(f"Healthy collections ({args.collections} per row; later checks: {LATER} fresh windows of {WINDOW} each)")
    print(
        "| accuracy | look every | OLD: partial adoptions | OLD: later checks flagged"
        " | NEW: partial adoptions | NEW: later checks flagged |"
    )
    print("|---:|---:|---|---|---|---|")
    totals = {"old": [0, 0], "new": [0, 0]}
    for accuracy in args.accuracies:
        a = slope_for(accuracy)
        for looks in args.looks:
            counts = {"old": [0, 0], "new": [0, 0]}
            for k in range(args.collections):
                rng = np.random.default_rng((int(accuracy * 100), looks, k))
                outputs, labels = stream(rng, ADOPT_ROWS, a)
                once = new_rule(Labelled(outputs, labels, NO_DELAYS, ADOPT_ROWS, 0))
                for name, rule in (("old", old_rule), ("new", new_rule)):
                    rows, _ = collect(rule, outputs, labels, looks)
                    if name == "new" and rows != (once if once is not None else ADOPT_ROWS):
                        raise SystemExit(f"the new rule asked at every look adopted {rows} rows, asked once {once}")
                    counts[name][0] += rows < ADOPT_ROWS
                    adopted = served_performance(None, outputs[:rows], labels[:rows])
                    assert adopted is not None
                    counts[name][1] += later_alerts(adopted, np.random.default_rng((7, int(accuracy * 100), looks, k)), a)
            n = args.collections
            for name in counts:
                totals[name][0] += counts[name][0]
            cells = [
                f"{interval(counts[r][0], n)} | {counts[r][1]}/{n * LATER} = {counts[r][1] / (n * LATER):.3%}" for r in counts
            ]
            print(f"| {accuracy} | {looks} | {cells[0]} | {cells[1]} |", flush=True)
    judged = args.collections * len(args.accuracies) * len(args.looks)
    print(f"All: OLD {interval(totals['old'][0], judged)}; NEW {interval(totals['new'][0], judged)}")
    if args.extra:
        extra = 0
        for accuracy in args.accuracies:
            a = slope_for(accuracy)
            rng = np.random.default_rng((99, int(accuracy * 100)))
            for _ in range(args.extra):
                outputs, labels = stream(rng, ADOPT_ROWS, a)
                extra += new_rule(Labelled(outputs, labels, NO_DELAYS, ADOPT_ROWS, 0)) is not None
        n = args.extra * len(args.accuracies)
        print(f"NEW, {args.extra} more healthy collections per accuracy (asked once): {interval(extra, n)}")
        print(f"NEW, all healthy collections: {interval(extra + totals['new'][0], n + judged)}")


def power(args: argparse.Namespace) -> None:
    print(f"\nA change while the baseline is collected ({args.streams} streams per row, health every 50 labels)")
    print(
        "| accuracy | flipped | from row | OLD: kept out | OLD: adopted whole | OLD: rows to flag | OLD: rows adopted "
        "| NEW: kept out | NEW: adopted whole | NEW: rows to flag | NEW: rows adopted |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for accuracy in (0.8, 0.7):
        a = slope_for(accuracy)
        for flip in (0.3, 0.15):
            for start in (250, 500, 1000, 1500):
                cells = []
                for rule in (old_rule, new_rule):
                    kept = whole = 0
                    delays, partial = [], []
                    for k in range(args.streams):
                        outputs, labels = stream(
                            np.random.default_rng((start, int(flip * 100), int(accuracy * 100), k)), ADOPT_ROWS, a, flip, start
                        )
                        rows, at = collect(rule, outputs, labels, 50)
                        kept += rows <= start
                        whole += rows == ADOPT_ROWS
                        if rows < ADOPT_ROWS:
                            delays.append(at - start)
                            partial.append(rows)
                    median = f"{np.median(delays):.0f} | {np.median(partial):.0f}" if delays else "- | -"
                    cells.append(f"{kept / args.streams:.0%} | {whole / args.streams:.0%} | {median}")
                print(f"| {accuracy} | {flip:.0%} | {start} | {' | '.join(cells)} |", flush=True)


def through_monitor(args: argparse.Namespace) -> None:
    """The new rule through a Monitor: the rows it adopts are the direct call's."""
    from guarded_serving import Monitor, Reference
    from guarded_serving.reference import Provenance

    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 2))
    p = 1 / (1 + np.exp(-8 * X[:, 0]))
    built = Reference.from_data(X, predictions=np.column_stack([1 - p, p]), feature_names=["a", "b"])
    reference = dataclasses.replace(built, provenance=Provenance(features="training", outputs="training"))
    a = slope_for(0.8)
    same = unjudged = 0
    for k in range(args.monitor):
        outputs, labels = stream(np.random.default_rng((80, 50, k)), ADOPT_ROWS, a)
        direct = collect(new_rule, outputs, labels, 50)[0]
        with Monitor(reference, window=WINDOW) as monitor:
            inputs = np.random.default_rng(k).normal(size=(ADOPT_ROWS, 2))
            for s in range(0, ADOPT_ROWS, 50):
                monitor.feedback(monitor.observe(inputs[s : s + 50], np.array(outputs[s : s + 50])), labels[s : s + 50])
                monitor.health()
            concept = monitor.health().to_json()["checks"]["concept_drift"]
        if "baseline" not in concept:  # the inputs judged drifted at 2,000 rows: nothing adopted yet
            unjudged += 1
        else:
            same += concept["baseline"]["rows"] == direct
    print(
        f"\nThrough a Monitor: {same} of {args.monitor} healthy streams adopted the rows the direct call adopts"
        f" ({unjudged} not yet adopted: their inputs were judged drifted)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collections", type=int, default=600, help="healthy collections per accuracy and look interval")
    parser.add_argument("--extra", type=int, default=20_000, help="more healthy collections per accuracy, new rule only")
    parser.add_argument("--streams", type=int, default=300, help="streams per change scenario")
    parser.add_argument("--monitor", type=int, default=20, help="healthy streams also run through a Monitor")
    parser.add_argument("--accuracies", type=float, nargs="+", default=[0.7, 0.8, 0.9])
    parser.add_argument("--looks", type=int, nargs="+", default=[50, 100], help="labels between health checks")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    healthy(args)
    power(args)
    if args.monitor:
        through_monitor(args)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
