"""The drift window in the store: chunks survive the blob encoding, merge per flush, are pruned, and are shared by workers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from guarded_serving import Monitor, Reference
from guarded_serving.drift import Chunk
from guarded_serving.store import RequestRecord, Store, StoreOptions
from guarded_serving.store.sqlite import SqliteStore
from tests.fixtures.data import gaussian

MODEL = "m"


def record(request_id: str, window: Chunk, model: str = MODEL) -> RequestRecord:
    return RequestRecord(
        request_id=request_id,
        ts=1_700_000_000.0,
        model=model,
        version=None,
        status="ok",
        rows=window.rows,
        latency_ms=1.0,
        window=window,
    )


def numbered_chunk(first: int, rows: int, width: int = 2) -> Chunk:
    """Rows first, first + 1, ... in every column, so that a row's origin can be read back."""
    values = np.repeat(np.arange(first, first + rows, dtype=float)[:, None], width, axis=1)
    return Chunk(values, None)


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "window.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with SqliteStore(db_path, StoreOptions(flush_interval=0.01)) as s:
        yield s


@pytest.fixture
def rich_chunk() -> Chunk:
    """Inputs with NaN and -1 codes, two outputs, unseen names and type errors."""
    inputs = np.array([[1.5, np.nan, 2.0], [-3.25, 0.0, -1.0], [1e300, 7.0, np.nan]])
    outputs = np.array([[0.1, 0.9], [np.nan, 0.5], [0.3, 0.7]])
    return Chunk(inputs, outputs, unseen={2: {"zulu": 1, "yankee": 3}}, type_errors={0: 2, 1: 1})


def test_a_chunk_survives_the_round_trip_through_the_store(store: Store, rich_chunk: Chunk) -> None:
    store.put(record("r1", rich_chunk))
    assert store.flush()

    [back] = list(store.window_chunks(MODEL))

    np.testing.assert_array_equal(back.inputs, rich_chunk.inputs)
    assert back.outputs is not None
    np.testing.assert_array_equal(back.outputs, rich_chunk.outputs)
    assert back.unseen == {2: {"zulu": 1, "yankee": 3}}
    assert back.type_errors == {0: 2, 1: 1}


def test_a_chunk_without_outputs_comes_back_without_outputs(store: Store) -> None:
    store.put(record("r1", numbered_chunk(0, 4)))
    assert store.flush()

    [back] = list(store.window_chunks(MODEL))

    assert back.outputs is None
    assert back.inputs[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_window_chunks_come_back_newest_first(store: Store) -> None:
    for i in range(3):
        store.put(record(f"r{i}", numbered_chunk(10 * i, 2)))
        assert store.flush()

    firsts = [chunk.inputs[0, 0] for chunk in store.window_chunks(MODEL)]

    assert firsts == [20.0, 10.0, 0.0]


def test_window_chunks_are_kept_per_model(store: Store) -> None:
    store.put(record("r1", numbered_chunk(0, 2), model="a"))
    store.put(record("r2", numbered_chunk(5, 3), model="b"))
    assert store.flush()

    assert [c.rows for c in store.window_chunks("a")] == [2]
    assert [c.rows for c in store.window_chunks("b")] == [3]


def test_the_chunks_of_one_flush_are_merged_into_one_row(db_path: Path) -> None:
    store = SqliteStore(db_path, StoreOptions(flush_interval=0.01))
    store.put(record("r1", Chunk(np.array([[1.0], [2.0]]), None, {0: {"x": 1}}, {0: 1})))
    store.put(record("r2", Chunk(np.array([[3.0]]), None, {0: {"x": 2, "y": 1}}, {0: 4})))
    store.put(record("r3", Chunk(np.array([[4.0], [5.0]]), None)))
    with store:  # the writer starts with all three queued, so they land in one transaction
        assert store.flush()
        chunks = list(store.window_chunks(MODEL))

    assert query(db_path, "SELECT rows FROM window") == [(5,)]
    [merged] = chunks
    assert merged.inputs[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert merged.unseen == {0: {"x": 3, "y": 1}}
    assert merged.type_errors == {0: 5}


def test_pruning_keeps_the_newest_window_capacity_rows_and_deletes_older_chunks(db_path: Path) -> None:
    with SqliteStore(db_path, StoreOptions(flush_interval=0.01, window=500)) as store:
        for i in range(60):
            store.put(record(f"r{i}", numbered_chunk(50 * i, 50)))
            assert store.flush()

    [(total,)] = query(db_path, "SELECT SUM(rows) FROM window")
    kept = [chunk_id for (chunk_id,) in query(db_path, "SELECT id FROM window ORDER BY id")]
    assert total == 1_000
    # pruned every 25 flushes: after flush 50 the newest ten chunks (ids 41-50) hold 500 rows; 51-60 came after
    assert kept == list(range(41, 61))


def test_the_window_never_loses_the_newest_rows_to_pruning(db_path: Path) -> None:
    with SqliteStore(db_path, StoreOptions(flush_interval=0.01, window=500)) as store:
        for i in range(60):
            store.put(record(f"r{i}", numbered_chunk(50 * i, 50)))
            assert store.flush()
        newest = [chunk.inputs[0, 0] for chunk in store.window_chunks(MODEL)]

    assert newest[:10] == [50.0 * i for i in range(59, 49, -1)]


def test_two_workers_on_one_file_see_each_others_window(db_path: Path) -> None:
    reference = Reference.from_data(gaussian(500, 2, seed=1), feature_names=["a", "b"])
    rows_a = [[1.0, 1.0]] * 30
    rows_b = [[2.0, 2.0]] * 20
    with (
        Monitor(reference, db=db_path, flush_interval=0.01) as worker_a,
        Monitor(reference, db=db_path, flush_interval=0.01) as worker_b,
    ):
        worker_a.observe(rows_a, [0] * 30)
        assert worker_a.flush()
        worker_b.observe(rows_b, [0] * 20)
        assert worker_b.flush()

        seen_by_a = worker_a.window_data()
        seen_by_b = worker_b.window_data()

    expected = [1.0] * 30 + [2.0] * 20
    assert seen_by_a.inputs[:, 0].tolist() == expected
    assert seen_by_b.inputs[:, 0].tolist() == expected
