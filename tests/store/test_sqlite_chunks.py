"""The SQLite window read keeps the chunks it decoded; a chunk whose row changed is read again."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from guarded_serving.drift.window import Chunk
from guarded_serving.store import RequestRecord, StoreOptions
from guarded_serving.store.sqlite import SqliteStore


def logged(store: SqliteStore, request_id: str, values: list[float]) -> None:
    window = Chunk(np.array([[v] for v in values]), None, {}, {})
    rows = len(values)
    store.put(RequestRecord(request_id, 1_700_000_000.0, "m", None, "ok", rows, 1.0, window=window))  # type: ignore[arg-type]
    assert store.flush()


def read(store: SqliteStore) -> list[list[float]]:
    return [c.inputs[:, 0].tolist() for c in store.window_chunks("m")]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "log.db", StoreOptions(flush_interval=0.02)) as opened:
        yield opened


def test_a_window_read_again_decodes_only_what_it_did_not_read_before_and_answers_the_same(store: SqliteStore) -> None:
    logged(store, "a", [1.0, 2.0])
    first = list(store.window_chunks("m"))
    logged(store, "b", [3.0])

    again = list(store.window_chunks("m"))

    assert [c.inputs[:, 0].tolist() for c in again] == [[3.0], [1.0, 2.0]]
    assert again[1] is first[0]  # the older chunk as decoded by the read before


def test_a_window_chunk_edited_in_place_is_decoded_again(store: SqliteStore) -> None:
    logged(store, "a", [1.0, 2.0])
    assert read(store) == [[1.0, 2.0]]
    with sqlite3.connect(store.path) as conn:  # the same id, another chunk
        conn.execute("UPDATE window SET rows = 3, inputs = ?", (np.array([7.0, 8.0, 9.0]).tobytes(),))

    assert read(store) == [[7.0, 8.0, 9.0]]
