"""The in-memory label join moved on from the last one answers what joining every labelled request again answers."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from guarded_serving import InputError, Monitor, Reference
from guarded_serving.chain import Chain
from guarded_serving.errors import UnknownRequestError
from guarded_serving.monitor import feedback
from guarded_serving.monitor.feedback import Labelled, Labels
from tests.fixtures.data import gaussian, logistic_probabilities


def walked_afresh(labels: Labels, limit: int | None = None) -> Labelled:
    """The join with nothing kept from earlier joins (no chain, no blocks), the labels' state put back afterwards."""
    kept = labels._chain, labels._touched, labels._blocks, labels._joined
    labels._chain, labels._touched, labels._blocks, labels._joined = None, [], {}, None
    try:
        return labels.labelled(False, limit)
    finally:
        labels._chain, labels._touched, labels._blocks, labels._joined = kept


def assert_same(moved: Labelled, fresh: Labelled, step: int) -> None:
    assert moved.outputs == fresh.outputs, step
    assert moved.labels == fresh.labels, step
    assert moved.delays.tobytes() == fresh.delays.tobytes(), step
    assert (moved.received, moved.replaced) == (fresh.received, fresh.replaced), step
    if fresh.matrix is None:
        assert moved.matrix is None, step
    else:
        assert moved.matrix is not None, step
        assert moved.matrix.tobytes() == fresh.matrix.tobytes(), step


def test_every_join_moved_on_equals_the_join_walked_afresh(logistic_reference_500: Reference, monkeypatch: Any) -> None:
    monkeypatch.setattr(feedback, "PREDICTIONS_KEPT", 120)  # requests are forgotten within the run
    monkeypatch.setattr(feedback, "LABELLED_KEPT", 0)  # labelled ones too, beyond a window of labelled rows
    rng = np.random.default_rng(5)
    moves: list[int] = []
    real_moved = Chain.moved
    monkeypatch.setattr(Chain, "moved", lambda chain, *args: moves.append(1) or real_moved(chain, *args))
    with Monitor(logistic_reference_500, name="chain", window=60) as monitor:
        labels = monitor._labels
        sent: list[tuple[str, int]] = []
        for step in range(400):
            size = int(rng.choice([1, 1, 1, 2, 5, 30, 70]))  # one-row requests mostly; 70: more than the window
            X = gaussian(size, 3, seed=step)
            outputs: Any = logistic_probabilities(X).tolist()
            if rng.random() < 0.05:  # outputs that are not one plain matrix
                outputs = [[0.5, 0.5, 0.0], *outputs[1:]] if size > 1 else [None]
            reused = sent[int(rng.integers(len(sent)))][0] if sent and rng.random() < 0.03 else None
            request_id = monitor.observe(X, outputs, request_id=reused)
            sent.append((request_id, size))
            action = rng.random()
            if action < 0.6:  # the newest request labelled at once
                monitor.feedback(request_id, rng.integers(0, 2, size).tolist())
            elif action < 0.85 and len(sent) > 1:  # a late label for an earlier request, perhaps relabelled
                rid, rows = sent[-int(rng.integers(1, min(len(sent), 40) + 1))]
                with contextlib.suppress(UnknownRequestError, InputError):  # forgotten, or its id reused since
                    monitor.feedback_items([(rid, int(rng.integers(rows)), int(rng.integers(2)))])
            if rng.random() < 0.7:
                limit = None if rng.random() < 0.9 else 90
                assert_same(labels.labelled(False, limit), walked_afresh(labels, limit), step)
    assert len(moves) >= 100  # the moved-on join was exercised, not only the walk


def test_a_chain_moved_by_blocks_holding_more_than_its_limit_keeps_only_them() -> None:
    def block(rows: int, start: float) -> Any:
        values = np.arange(rows, dtype=float) + start
        return [[v] for v in values], list(range(rows)), values, values.reshape(-1, 1)

    chain = Chain.of(5, 0, ["a", "b"], [1, 2], [block(3, 0), block(3, 10)])
    moved = chain.moved(1, [("c", 3, block(2, 20)), ("d", 4, block(6, 30))])
    fresh = Chain.of(5, 1, ["d"], [4], [block(6, 30)])
    assert (moved.ids, moved.sequences, moved.rows, moved.outputs) == (fresh.ids, fresh.sequences, fresh.rows, fresh.outputs)
    assert moved.matrix is not None
    assert fresh.matrix is not None
    assert moved.matrix.tobytes() == fresh.matrix.tobytes()
    assert moved.delays.tobytes() == fresh.delays.tobytes()
