"""Labels for a tenth of the rows, without a store: concept drift is judged, and its memory stays bounded.

Without a store, labels join only the predictions kept in memory. Those were the newest 10,000 rows whether
labelled or not, so a stream with 10 % of its rows labelled never held more than ~1,000 labelled rows, and concept
drift, which adopts its served baseline from 2,000, said "collecting a baseline" for ever and missed flipped labels.
"""

from __future__ import annotations

import numpy as np

from guarded_serving import Monitor, Reference
from guarded_serving.monitor import ADOPT_ROWS
from guarded_serving.monitor.feedback import LABELLED_KEPT, LABELLED_KEPT_ROWS


def _stream(monitor: Monitor, rng: np.random.Generator, requests: int, share: float, flipped: bool = False) -> None:
    for _ in range(requests):
        x = rng.normal(size=(100, 3))
        p = 1 / (1 + np.exp(-2 * x[:, 0]))
        y = (rng.random(100) < p).astype(int)
        request_id = monitor.observe(x, np.column_stack([1 - p, p]))
        rows = np.flatnonzero(rng.random(100) < share)
        if len(rows):
            monitor.feedback_items([(request_id, int(k), int(1 - y[k] if flipped else y[k])) for k in rows])


def _concept(monitor: Monitor) -> tuple[str, str]:
    check = next(c for c in monitor.health().checks if c.name == "concept_drift")
    return check.status.value, check.summary


def test_labels_for_a_tenth_of_the_rows_are_enough_for_a_served_baseline_and_catch_flipped_labels() -> None:
    rng = np.random.default_rng(4)
    reference = Reference.from_data(rng.normal(size=(1_000, 3)), predict=lambda x: np.zeros((len(x), 2)) + 0.5)
    monitor = Monitor(reference, window=500)
    _stream(monitor, rng, 250, share=0.1)  # 25,000 rows, ~2,500 labelled
    status, summary = _concept(monitor)
    assert (status, "over the last 500 labelled rows" in summary) == ("ok", True), summary
    _stream(monitor, rng, 60, share=0.1, flipped=True)
    assert _concept(monitor)[0] == "alert"


def test_unlabelled_or_sparsely_labelled_predictions_stay_bounded() -> None:
    rng = np.random.default_rng(5)
    monitor = Monitor(Reference.from_data(rng.normal(size=(200, 3))), window=500)
    labels = monitor._labels
    for k in range(300):  # 300,000 rows, one labelled request in 100
        request_id = monitor.observe(rng.normal(size=(1_000, 3)), np.zeros((1_000, 1)))
        if k % 100 == 0:
            monitor.feedback_items([(request_id, 0, 0.0)])
        assert labels._prediction_rows <= LABELLED_KEPT_ROWS + 1_000
    assert LABELLED_KEPT == ADOPT_ROWS
