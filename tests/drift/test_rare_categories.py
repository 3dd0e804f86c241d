"""Long-tailed categorical features (product ids, zip codes, user agents): healthy windows are not flagged, new
categories and moved shares still are.

A reference holds only some of such a feature's categories, many of them once or twice. What fresh values do with
those is not what the reference's own values did (Good-Turing): the drift check once counted the reference's own
"rare or unseen" share (N1 / m) and flagged every healthy window of 2,000 Zipf categories; the quality check took
the chance of an unseen category as exact and flagged one healthy window in six for a 150-row reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.health import HealthReport

CHECKS = ("data_drift", "data_quality")


def _law(categories: int, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    names = np.array([f"c{k}" for k in range(categories)], dtype=object)
    weights = 1 / np.arange(1, categories + 1) ** exponent
    return names, weights / weights.sum()


def _rows(rng: np.random.Generator, names: np.ndarray, p: np.ndarray, count: int) -> list[list[object]]:
    return [[str(c), float(x)] for c, x in zip(rng.choice(names, count, p=p), rng.normal(size=count), strict=True)]


def _report(reference: list[list[object]], window: list[list[object]]) -> HealthReport:
    monitor = Monitor(Reference.from_data(reference, feature_names=["product", "x"], categorical=["product"]), window=len(window))
    monitor.observe(window, np.zeros((len(window), 1)))
    return monitor.health()


def _flagged(report: HealthReport) -> list[str]:
    return [c.name for c in report.checks if c.name in CHECKS and c.status.value in ("warn", "alert")]


@pytest.mark.parametrize(
    ("reference_rows", "categories", "exponent", "repeats"),
    [(150, 30, 1.1, 30), (150, 200, 1.0, 30), (1_000, 2_000, 1.0, 20), (10_000, 2_000, 1.0, 8)],
)
def test_healthy_windows_of_a_long_tailed_feature_are_not_flagged(
    reference_rows: int, categories: int, exponent: float, repeats: int
) -> None:
    rng = np.random.default_rng(categories + reference_rows)
    names, p = _law(categories, exponent)
    flagged = [_flagged(_report(_rows(rng, names, p, reference_rows), _rows(rng, names, p, 1_000))) for _ in range(repeats)]
    assert sum(bool(f) for f in flagged) <= 1, flagged


def test_the_rare_bin_expects_what_fresh_values_do() -> None:
    rng = np.random.default_rng(5)
    names, p = _law(2_000, 1.0)
    reference = _rows(rng, names, p, 10_000)
    counts = dict(zip(*np.unique([str(c) for c, _ in reference], return_counts=True), strict=True))
    in_last_bin = [k for k, name in enumerate(names) if counts.get(name, 0) <= 1]  # seen once or never
    truth = float(p[in_last_bin].sum())  # the share of fresh values the "rare or unseen" bin will get
    base = Monitor(Reference.from_data(reference, feature_names=["product", "x"], categorical=["product"])).baseline
    expected = float(base.cat_props[0][-1])
    seen_once = sum(v == 1 for v in counts.values()) / 10_000
    assert abs(expected - truth) < abs(seen_once - truth) / 3, (expected, seen_once, truth)


def test_new_categories_and_a_moved_share_are_still_flagged() -> None:
    rng = np.random.default_rng(9)
    names, p = _law(200, 1.0)
    reference = _rows(rng, names, p, 2_000)
    window = _rows(rng, names, p, 1_000)
    for row in window[:80]:  # 8 % of the window: a category never seen before
        row[0] = "brand-new"
    assert _flagged(_report(reference, window)) == ["data_drift", "data_quality"]
    moved = _rows(rng, names, p, 1_000)
    for row in moved[:150]:  # the most common category's share up by ~15 points
        row[0] = "c0"
    assert _flagged(_report(reference, moved)) == ["data_drift"]
