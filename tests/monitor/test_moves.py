"""A moved window: found exactly from the two windows' contents, and every check updated from the move gives the
report a health check computed afresh on the same window gives (in memory and with a store, every feature kind,
labels arriving late)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import Monitor
from guarded_serving.drift import columns
from guarded_serving.drift.moves import departed_by_parts, departed_rows, move_between
from guarded_serving.drift.window import WindowData
from guarded_serving.health import HealthReport
from guarded_serving.monitor.memo import WindowMemo
from guarded_serving.monitor.realized import RealizedRows
from tests.fixtures.data import mixed_probabilities, mixed_reference, mixed_rows


def window(inputs: np.ndarray, outputs: np.ndarray | None = None) -> WindowData:
    return WindowData(inputs, outputs, {}, {})


def numbered(rows: int, start: int = 0, width: int = 3) -> np.ndarray:
    return np.arange(start, start + rows, dtype=float)[:, None] * np.ones(width)


def test_a_window_whose_oldest_rows_left_and_new_ones_came_is_a_move_naming_both() -> None:
    old, new = numbered(10), numbered(10, start=3)

    move = move_between(window(old, old[:, :1]), window(new, new[:, :1]))

    assert move is not None
    assert (move.departed, move.arrived) == (3, 3)
    assert np.array_equal(move.left_inputs, old[:3])
    assert np.array_equal(move.arrived_inputs, new[7:])
    assert move.left_outputs is not None
    assert np.array_equal(move.left_outputs, old[:3, :1])
    assert move.arrived_outputs is not None
    assert np.array_equal(move.arrived_outputs, new[7:, :1])


def test_a_growing_window_is_a_move_with_nothing_left() -> None:
    move = move_between(window(numbered(4)), window(numbered(6)))

    assert move is not None
    assert (move.departed, move.arrived) == (0, 2)


def test_missing_values_are_compared_as_values() -> None:
    old = numbered(6)
    old[2, 1] = np.nan
    new = np.vstack([old[1:], numbered(1, start=50)])

    move = move_between(window(old), window(new))

    assert move is not None
    assert (move.departed, move.arrived) == (1, 1)


def test_repeated_rows_find_the_move_that_reproduces_the_new_window() -> None:
    old = np.zeros((6, 2))
    new = np.vstack([np.zeros((5, 2)), np.ones((1, 2))])

    move = move_between(window(old), window(new))

    assert move is not None
    assert np.array_equal(np.vstack([old[move.departed :], move.arrived_inputs]), new)


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(numbered(10, start=100), id="all-rows-new"),
        pytest.param(np.vstack([numbered(3, start=2), numbered(1, start=90), numbered(6, start=6)]), id="a-row-replaced"),
        pytest.param(numbered(10, start=6), id="more-than-half-new"),
        pytest.param(numbered(10, start=2, width=4), id="another-width"),
    ],
)
def test_anything_but_old_rows_leaving_and_new_ones_coming_is_no_move(new: np.ndarray) -> None:
    assert move_between(window(numbered(10)), window(new)) is None


def test_outputs_that_differ_on_the_kept_rows_make_no_move() -> None:
    old, new = numbered(10), numbered(10, start=2)
    outputs = new[:, :1].copy()
    outputs[0] = -1

    assert move_between(window(old, old[:, :1]), window(new, outputs)) is None


# --- every check updated from a move equals the check computed afresh ---------------------------------------------


@pytest.fixture(params=["in-memory", "sqlite-store"])
def mixed_monitor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Monitor]:
    db = tmp_path / "moves.db" if request.param == "sqlite-store" else None
    with Monitor(mixed_reference(3000, seed=3), name="mixed", db=db, window=400) as monitor:
        yield monitor


def comparable(report: HealthReport) -> dict[str, Any]:
    """The report without the moment it was made."""
    document = report.to_json()
    document.pop("generated_at")
    return document


def afresh(monitor: Monitor) -> HealthReport:
    """The health check computed with nothing reused: a memo of its own, and concept drift's labelled rows scored
    and run through the change detector anew, put back afterwards."""
    evaluator = monitor._evaluator
    judged = evaluator.judged
    kept = evaluator.memo, judged._realized, judged._concept
    evaluator.memo, judged._realized, judged._concept = WindowMemo(), RealizedRows(), None
    try:
        return monitor.health()
    finally:
        evaluator.memo, judged._realized, judged._concept = kept


def test_every_check_updated_from_moves_equals_the_check_computed_afresh(
    mixed_monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the inputs' lay-out moved too (drift/columns.py does that for large windows and small moves only)
    monkeypatch.setattr(columns, "SMALL", 0)
    monkeypatch.setattr(columns, "MOVED_AT_MOST", 1.0)
    merged: list[int] = []
    merge = columns._merged
    monkeypatch.setattr(columns, "_merged", lambda kept, came: merged.append(came.shape[1]) or merge(kept, came))
    rng = np.random.default_rng(11)
    unlabelled: list[tuple[str, int]] = []
    moves = judged = 0
    for step in range(45):
        size = int(rng.choice([1, 7, 60, 130, 250]))  # 250 of 400: more than half new, computed afresh
        shift = 1.5 if 20 <= step < 30 else 0.0
        rows = mixed_rows(size, seed=1000 + step, shift=shift)
        request_id = mixed_monitor.observe(rows, mixed_probabilities(rows))
        unlabelled.append((request_id, size))
        if rng.random() < 0.7:  # labels arrive late, for a random earlier request
            labelled_id, labelled_size = unlabelled.pop(int(rng.integers(len(unlabelled))))
            mixed_monitor.feedback(labelled_id, rng.integers(0, 2, labelled_size).tolist())
        mixed_monitor.flush()

        updated = mixed_monitor.health()
        moves += mixed_monitor._evaluator.memo.latest().move is not None

        assert comparable(updated) == comparable(afresh(mixed_monitor)), f"step {step}"
        judged += updated.check("concept_drift").details.labelled_rows >= 100
    assert moves >= 20  # the updates were exercised, not only the fresh computations
    assert len(merged) >= 20  # the inputs' lay-out among them
    assert judged >= 20  # concept drift too: judged from its labelled rows


def test_departed_rows_allows_any_share_of_new_rows_unless_told() -> None:
    old, new = numbered(4, width=2), numbered(6, start=3, width=2)

    assert departed_rows(old, new) == 3
    assert departed_rows(old, new, max_new_share=0.5) is None
    assert departed_rows(old, new[1:]) is None  # starts with a row the old ones never had


# --- the chunks' marks tell the move the values tell ----------------------------------------------------------------


def distinct_rows(rows: int, start: int) -> np.ndarray:
    """Rows no other row equals, so that the values tell exactly one move."""
    return numbered(rows, start=start, width=2) + 0.5


def test_a_memory_window_s_marks_tell_the_move_its_values_tell_as_it_moves_by_requests_of_any_size() -> None:
    from guarded_serving.drift.window import Chunk, MemoryWindow, assemble

    rng = np.random.default_rng(5)
    memory = MemoryWindow(300)
    given = 0
    last: WindowData | None = None
    told = moved = 0
    for _ in range(400):
        for _ in range(int(rng.choice([1, 1, 2, 5]))):  # one-row requests merge into the newest block between reads
            size = int(rng.choice([1, 3, 40, 70, 120]))
            memory.add(Chunk(distinct_rows(size, given), None, {}, {}))
            given += size
        now = assemble(memory.newest_first(), 300, 2, None)
        if last is not None:
            by_marks = departed_by_parts(last, now)
            by_values = departed_rows(last.inputs, now.inputs)
            assert by_marks == by_values  # None too: every row new
            moved += by_values is not None
            told += by_marks is not None
        assert departed_by_parts(now, now) == 0
        last = now
    assert told == moved > 300


def test_stored_chunks_marks_tell_the_move_their_values_tell(tmp_path: Path) -> None:
    from guarded_serving.drift.window import Chunk, assemble
    from guarded_serving.store import RequestRecord, StoreOptions
    from guarded_serving.store.sqlite import SqliteStore

    rng = np.random.default_rng(6)
    given = 0
    last: WindowData | None = None
    with SqliteStore(tmp_path / "marks.db", StoreOptions(flush_interval=0.01)) as store:
        for k in range(120):
            size = int(rng.choice([1, 3, 40, 70]))
            chunk = Chunk(distinct_rows(size, given), None, {}, {})
            store.put(RequestRecord(f"r{k}", 1.7e9, "m", None, "ok", size, 1.0, window=chunk))  # type: ignore[arg-type]
            given += size
            assert store.flush()
            now = assemble(store.window_chunks("m"), 250, 2, None)
            if last is not None:
                by_marks = departed_by_parts(last, now)
                assert by_marks is not None
                assert by_marks == departed_rows(last.inputs, now.inputs)
            last = now
        unchanged = assemble(store.window_chunks("m"), 250, 2, None)
        assert last is not None
        assert departed_by_parts(last, unchanged) == 0


def test_windows_whose_marks_do_not_follow_are_told_by_their_values() -> None:
    from guarded_serving.drift.window import StreamRows

    source = object()
    old = WindowData(distinct_rows(4, 0), None, {}, {}, ((StreamRows(source, 0, 4), 4),))
    elsewhere = WindowData(distinct_rows(4, 2), None, {}, {}, ((StreamRows(object(), 2, 4), 4),))  # another window's
    unmarked = WindowData(distinct_rows(4, 2), None, {}, {})

    assert departed_by_parts(old, elsewhere) is None
    assert departed_by_parts(old, unmarked) is None
    move = move_between(old, unmarked)
    assert move is not None
    assert move.departed == 2  # from the values
