"""A health check asked again on the same window reuses what was computed on it, and nothing else: a new
request, a new label or a replaced one is judged by the next check, in memory and with a store."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.concept import ConceptDetails
from guarded_serving.drift.window import WindowData
from guarded_serving.health import HealthReport, Status
from guarded_serving.monitor.feedback import Labels
from guarded_serving.monitor.memo import WindowMemo
from tests.fixtures.data import gaussian, logistic_probabilities, logistic_reference


@pytest.fixture
def logistic_reference_2000() -> Reference:
    """The logistic world's reference of 2,000 rows: labels as noisy as the model says, not its argmax."""
    return logistic_reference(2000, seed=7)


@pytest.fixture(params=["in-memory", "sqlite-store"])
def monitor(request: pytest.FixtureRequest, logistic_reference_2000: Reference, tmp_path: Path) -> Iterator[Monitor]:
    db = tmp_path / "memo.db" if request.param == "sqlite-store" else None
    with Monitor(logistic_reference_2000, name="churn", db=db, window=500) as monitor:
        yield monitor


def observe(monitor: Monitor, seed: int, shift: float = 0.0) -> tuple[str, np.ndarray]:
    X = gaussian(100, 3, seed=seed) + shift
    return monitor.observe(X, logistic_probabilities(X)), X


def health(monitor: Monitor) -> HealthReport:
    monitor.flush()
    return monitor.health()


def concept(report: HealthReport) -> ConceptDetails:
    details = report.check("concept_drift").details
    assert isinstance(details, ConceptDetails)
    return details


@pytest.fixture
def labelled(monitor: Monitor) -> Monitor:
    """A full window, every row labelled by the model's own argmax."""
    for seed in range(5):
        request_id, X = observe(monitor, seed)
        monitor.feedback(request_id, logistic_probabilities(X).argmax(axis=1).tolist())
    return monitor


def test_a_health_check_on_the_same_window_reuses_every_check_computed_on_it(labelled: Monitor) -> None:
    first = health(labelled)

    again = health(labelled)

    for name in ("data_drift", "prediction_drift", "concept_drift", "data_quality", "joint_drift", "estimated_performance"):
        assert again.check(name) is first.check(name), name
    assert again.generated_at >= first.generated_at


def test_a_new_request_is_judged_by_the_next_health_check(labelled: Monitor) -> None:
    first = health(labelled)

    for seed in range(10, 15):
        observe(labelled, seed, shift=3.0)
    after = health(labelled)

    assert first.check("data_drift").status is Status.OK
    assert after.check("data_drift").status is Status.ALERT
    assert after.check("joint_drift") is not first.check("joint_drift")


def test_a_new_label_is_judged_by_the_next_health_check(labelled: Monitor) -> None:
    before = concept(health(labelled))
    request_id, X = observe(labelled, 20)

    labelled.feedback(request_id, (1 - logistic_probabilities(X).argmax(axis=1)).tolist())  # every one wrong
    after = concept(health(labelled))

    assert after.labels_received == before.labels_received + 100
    assert after.current is not None
    assert before.current is not None
    assert after.current < before.current


def test_a_replaced_label_is_judged_by_the_next_health_check(labelled: Monitor) -> None:
    request_id, X = observe(labelled, 30)
    right = logistic_probabilities(X).argmax(axis=1)
    labelled.feedback(request_id, right.tolist())
    before = concept(health(labelled))

    labelled.feedback_items([(request_id, row, int(1 - right[row])) for row in range(50)])
    after = concept(health(labelled))

    assert after.labels_replaced == before.labels_replaced + 50
    assert after.current is not None
    assert before.current is not None
    assert after.current == pytest.approx(before.current - 50 / after.labelled_rows)


def test_the_memo_starts_a_new_generation_only_when_the_contents_change() -> None:
    memo = WindowMemo()
    inputs = np.array([[1.0, np.nan], [2.0, 3.0]])
    first = memo.of(WindowData(inputs, None, {}, {}))

    same = memo.of(WindowData(inputs.copy(), None, {}, {}))  # equal contents in another array, NaN included
    changed = memo.of(WindowData(inputs + 1, None, {}, {}))
    with_outputs = memo.of(WindowData(inputs + 1, np.zeros((2, 1)), {}, {}))

    assert same is first
    assert changed is not first
    assert with_outputs is not changed


def joined_as_before(labels: Labels, limit: int) -> tuple[list[Any], list[Any], list[float]]:
    """The in-memory join as it was first written: every label kept, joined to its request, sorted, the newest kept."""
    joined = []
    for rid, rows in labels._labels.items():
        for row, (label, labelled_at) in rows.items():
            kept = labels._predictions.get(rid)
            if kept is not None and row < kept[2]:
                seq, ts, _, outs = kept
                joined.append((seq, row, outs[row], label, labelled_at - ts))
    joined.sort(key=lambda item: (item[0], item[1]))
    joined = joined[-limit:]
    return [j[2] for j in joined], [j[3] for j in joined], [j[4] for j in joined]


@pytest.mark.parametrize("seed", range(3))
def test_the_memory_join_walking_back_from_the_newest_request_is_the_sort_of_every_label(
    logistic_reference_2000: Reference, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    with Monitor(logistic_reference_2000, name="churn", window=300) as monitor:
        labels = monitor._evaluator.judged.labels
        ids: list[tuple[str, int]] = []
        for i in range(250):  # more than PREDICTIONS_KEPT rows: the oldest predictions and their labels are forgotten
            rows = int(rng.integers(1, 120))
            reused = ids[int(rng.integers(len(ids)))][0] if ids and rng.random() < 0.1 else None
            X = rng.normal(size=(rows, 3))
            request_id = monitor.observe(X, logistic_probabilities(X), request_id=reused)
            ids = [(r, n) for r, n in ids if r != request_id and r in labels._predictions] + [(request_id, rows)]
            for rid, n in [ids[int(k)] for k in rng.integers(len(ids), size=2)]:  # labels, late and out of order
                picked = sorted({int(r) for r in rng.integers(n, size=int(rng.integers(1, n + 1)))}, reverse=i % 2 == 0)
                monitor.feedback_items([(rid, r, int(rng.integers(2))) for r in picked])
            limit = int(rng.choice([50, 300, 5_000]))

            joined = labels.labelled(False, limit)

            outputs, values, delays = joined_as_before(labels, limit)
            assert (joined.outputs, joined.labels) == (outputs, values)
            np.testing.assert_array_equal(joined.delays, delays)
            assert joined.matrix is not None  # probability rows: their matrix is kept with them
            np.testing.assert_array_equal(joined.matrix, np.array(outputs, dtype=float))


def test_a_window_found_unchanged_is_kept_as_the_newest_so_the_older_one_s_arrays_can_go() -> None:
    # the same rows read again as new arrays (a store read again, or rows repeated): the older arrays, which may be
    # views of a buffer the assembler let go, are not held by the memo
    memo = WindowMemo()
    rows = np.arange(12.0).reshape(6, 2)
    first = WindowData(rows.copy(), None, {}, {})
    generation = memo.of(first)
    gone = weakref.ref(first.inputs)
    again = WindowData(rows.copy(), None, {}, {})
    del first

    assert memo.of(again) is generation  # the same contents: what was computed on them is reused
    assert gone() is None
