"""A feature that went constant is a quality problem as soon as its newest values repeat one value too long for
chance, not once the whole window holds it (drift/quality.py, ``_stuck``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from guarded_serving import Monitor

WINDOW = 1_000


def _rows(rng: np.random.Generator, count: int) -> pd.DataFrame:
    """A continuous, a skewed, a small count, a 30 % flag, a near-constant flag and a five-level category."""
    return pd.DataFrame(
        {
            "normal": rng.normal(size=count),
            "amount": rng.lognormal(3.0, 1.0, count),
            "count": rng.poisson(2.0, count).astype(float),
            "flag": (rng.random(count) < 0.3).astype(float),
            "rare": (rng.random(count) < 0.01).astype(float),
            "plan": rng.choice(["a", "b", "c", "d", "e"], size=count, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
        }
    )


def _quality(monitor: Monitor, rows: pd.DataFrame) -> str:
    monitor.observe(rows, np.zeros(len(rows)))
    return monitor.health().check("data_quality").summary


@pytest.mark.parametrize(("feature", "value"), [("normal", 0.37), ("amount", 20.0), ("count", 2.0), ("plan", "a")], ids=str)
def test_a_feature_stuck_on_one_value_is_flagged_within_tens_of_rows(feature: str, value: object) -> None:
    rng = np.random.default_rng(7)
    with Monitor(_rows(rng, 2_000), window=WINDOW) as monitor:
        before = _quality(monitor, _rows(rng, 800))
        stuck = _rows(rng, 100)
        stuck[feature] = value
        said = [_quality(monitor, stuck.iloc[k : k + 10]) for k in range(0, 100, 10)]

    assert before.startswith("No quality problem"), before
    flagged = [k for k, text in enumerate(said) if "went constant" in text]
    assert flagged, said[-1]
    assert 10 * (flagged[0] + 1) <= 60, said[flagged[0]]  # 1,000 rows when the whole window had to hold it
    assert flagged == list(range(flagged[0], 10))
    assert f"{feature}: the feature went constant (its newest " in said[-1]


def test_healthy_discrete_features_repeating_by_chance_are_not_flagged() -> None:
    # the flag is 0 on 70 % of rows, the near-constant one on 99 %: runs of 20 zeros and more are common in both
    rng = np.random.default_rng(8)
    with Monitor(_rows(rng, 2_000), window=WINDOW) as monitor:
        said = [_quality(monitor, _rows(rng, 50)) for _ in range(120)]

    assert [text for text in said[2:] if not text.startswith("No quality problem")] == []


def test_a_new_category_on_every_row_is_an_unseen_category_not_a_constant_feature() -> None:
    rng = np.random.default_rng(9)
    with Monitor(_rows(rng, 2_000), window=WINDOW) as monitor:
        _quality(monitor, _rows(rng, 800))
        new = _rows(rng, 60)
        new["plan"] = "z"
        said = _quality(monitor, new)

    assert "plan: 1 unseen category" in said
    assert "constant" not in said
