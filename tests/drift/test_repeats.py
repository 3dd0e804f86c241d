"""Repeated rows (drift.repeats): a stream that serves a small set of rows again and again is judged as the
independent rows it is worth, chance repeats of discrete rows are not taken for replays, and faults in a replayed
stream are still found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.drift import Baseline, Encoder
from guarded_serving.drift.repeats import MIN_EFFECTIVE, RowKeys

NAMES = ["normal", "skewed", "count", "flag", "wide", "ratio"]


def _world(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Six features of mixed kinds, two of them correlated."""
    base = rng.normal(size=rows)
    return np.column_stack(
        [
            base,
            rng.lognormal(0.0, 1.0, rows),
            rng.poisson(3.0, rows).astype(float),
            (rng.random(rows) < 0.3).astype(float),
            0.7 * base + rng.normal(0.0, 0.7, rows),
            rng.gamma(2.0, 1.0, rows),
        ]
    )


def _keys(reference: np.ndarray | pd.DataFrame, names: list[str] = NAMES) -> RowKeys:
    built = Reference.from_data(reference, feature_names=None if isinstance(reference, pd.DataFrame) else names)
    keys = RowKeys.of(built.row_sample, Baseline.from_profiles(built.features))
    assert keys is not None
    return keys


def _replayed(seed: int, pool: int, rows: int = 1_000) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """A reference of 1,000 rows and ``rows`` served rows drawn with replacement from ``pool`` held-out rows."""
    rng = np.random.default_rng([15, seed])
    reference, held_out = _world(rng, 1_000), _world(rng, pool)
    return reference, held_out[rng.integers(0, pool, size=rows)], rng


def test_fresh_rows_are_judged_as_they_are() -> None:
    rng = np.random.default_rng(1)
    keys = _keys(_world(rng, 1_000))

    found = keys.repeats(keys.fingerprints(_world(rng, 2_000)))

    assert (found.rows, found.distinct, found.effective, found.replayed) == (2_000, 2_000, 2_000, False)


@pytest.mark.parametrize("pool", [60, 200, 600])
def test_a_replayed_pool_is_worth_about_as_many_rows_as_the_pool_and_the_window_together(pool: int) -> None:
    reference, served, _ = _replayed(0, pool)
    keys = _keys(reference)

    found = keys.repeats(keys.fingerprints(served))

    independent = 1 / (1 / 1_000 + 1 / pool)  # the window's noise and the pool's own
    assert found.replayed
    assert 0.8 * independent <= found.effective <= 1.1 * independent


def test_rows_that_repeat_by_chance_as_the_reference_s_do_are_not_taken_for_a_replay() -> None:
    # three flags and a five-level count: 80 possible rows, ~2 % of pairs equal in the reference and in the window
    rng = np.random.default_rng(2)

    def rows(count: int) -> np.ndarray:
        return np.column_stack([(rng.random((count, 3)) < 0.4).astype(float), rng.integers(0, 5, count).astype(float)])

    names = ["a", "b", "c", "level"]
    keys = _keys(rows(1_000), names)

    assert keys.pair_rate > 0.01
    assert [keys.repeats(keys.fingerprints(rows(2_000))).replayed for _ in range(20)] == [False] * 20


def test_one_row_served_over_and_over_is_still_judged_as_some_rows() -> None:
    reference, served, _ = _replayed(1, 1)
    keys = _keys(reference)

    found = keys.repeats(keys.fingerprints(served))

    assert (found.distinct, found.effective) == (1, MIN_EFFECTIVE)


def test_equal_rows_have_equal_fingerprints_whatever_their_zeros_and_missing_values() -> None:
    keys = _keys(_world(np.random.default_rng(3), 500))
    rows = np.array([[0.0, 1.0, np.nan, 1.0, 2.0, 3.0], [-0.0, 1.0, -np.nan, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 1.0, 2.0, 3.0]])

    prints = keys.fingerprints(rows)

    assert prints[0] == prints[1] != prints[2]


def _health(reference: np.ndarray, served: np.ndarray) -> dict[str, str]:
    monitor = Monitor(reference, feature_names=NAMES, window=1_000)
    try:
        monitor.observe(served, np.zeros(len(served)))
        report = monitor.health()
        return {name: report.check(name).summary for name in ("data_drift", "data_quality", "joint_drift")}
    finally:
        monitor.close()


def test_a_small_held_out_set_replayed_is_healthy() -> None:
    # each of these pools, judged as 1,000 independent rows, was flagged (data drift for a spread or a share, the
    # joint check for the two correlated features, out-of-range values: the pool's own sampling noise)
    said = [_health(*_replayed(seed, 40)[:2]) for seed in range(6)]

    assert [s for s in said if any(not text.startswith(("No ", "No quality")) for text in s.values())] == []
    assert all("1000 rows but " in s["data_drift"] and "judged as" in s["data_drift"] for s in said)


def test_a_fault_in_a_replayed_stream_is_still_found() -> None:
    reference, served, _ = _replayed(0, 60)
    served[:, 5] *= 3.0  # a unit changed upstream
    served[:, 4] = -served[:, 4]  # a sign flipped: the relation to "normal" reversed, the marginal nearly kept

    said = _health(reference, served)

    assert said["data_drift"].startswith("1 of 6 features drifted: ratio: mean ")
    assert "judged as" in said["data_drift"]
    assert "normal" in said["joint_drift"]
    assert "wide" in said["joint_drift"]


def test_a_user_id_new_on_every_row_is_not_fingerprinted() -> None:
    # each fresh id encodes as an unseen category: fingerprinted, fresh rows alike in their other, discrete, features
    # would have looked like a replay
    rng = np.random.default_rng(5)

    def rows(count: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user": [f"u{k}" for k in rng.integers(0, 10**9, count)],
                "plan": rng.choice(["a", "b", "c"], size=count),
                "country": rng.choice(["fr", "de", "it", "es"], size=count),
            }
        )

    reference = rows(1_000)
    keys = _keys(reference)
    window = Baseline.from_profiles(Reference.from_data(reference).features)
    encoded = Encoder(window).encode(rows(1_000).values.tolist(), {}, {})

    assert not keys.repeats(keys.fingerprints(encoded)).replayed


def test_rows_of_a_stuck_feed_are_worth_as_many_independent_rows_as_its_window() -> None:
    reference, served, _ = _replayed(1, 1)
    keys = _keys(reference)

    found = keys.repeats(keys.fingerprints(served))

    assert (found.worth(250), found.worth(20)) == (MIN_EFFECTIVE, 20)
    assert 85 < _replayed_worth(150, 250) < 100  # about 1 / (1/250 + 1/150) = 94


def _replayed_worth(pool: int, rows: int) -> float:
    reference, served, _ = _replayed(2, pool)
    keys = _keys(reference)
    return keys.repeats(keys.fingerprints(served)).worth(rows)
