"""The window assembled by appending the rows that came to a buffer: the window plain concatenation gives, bit for
bit, and no window handed out changes afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from guarded_serving.drift.assembler import WindowAssembler
from guarded_serving.drift.window import Chunk, MemoryWindow, WindowData, assemble
from guarded_serving.store import RequestRecord, StoreOptions
from guarded_serving.store.sqlite import SqliteStore

CAPACITY = 300


def chunk(rng: np.random.Generator, rows: int, given: int, odd: bool = False) -> Chunk:
    inputs = np.arange(given, given + rows, dtype=float)[:, None] + rng.normal(size=(rows, 3))
    inputs[rng.random(inputs.shape) < 0.05] = np.nan
    outputs = rng.random((rows, 2))
    if odd:  # a chunk with an unseen category and a type error: counted whole, never merged
        return Chunk(inputs, outputs, {1: {"new": rows}}, {2: 1})
    return Chunk(inputs, outputs, {}, {})


def same(a: WindowData, b: WindowData) -> bool:
    assert a.outputs is not None
    assert b.outputs is not None
    return (
        np.array_equal(a.inputs.view(np.uint64), b.inputs.view(np.uint64))
        and np.array_equal(a.outputs.view(np.uint64), b.outputs.view(np.uint64))
        and a.unseen == b.unseen
        and a.type_errors == b.type_errors
        and a.parts == b.parts
    )


def test_a_memory_window_assembled_again_and_again_is_the_window_concatenation_gives() -> None:
    rng = np.random.default_rng(1)
    memory, assembler = MemoryWindow(CAPACITY), WindowAssembler()
    given = 0
    handed: list[tuple[WindowData, np.ndarray]] = []
    for step in range(300):
        for _ in range(int(rng.choice([1, 1, 3]))):
            size = int(rng.choice([1, 2, 40, 90, 160]))
            memory.add(chunk(rng, size, given, odd=step % 37 == 5))
            given += size
        chunks = memory.newest_first()
        built = assembler.assemble(iter(chunks), CAPACITY, 3, 2)

        assert same(built, assemble(iter(chunks), CAPACITY, 3, 2)), step
        assert not built.inputs.flags.writeable
        handed.append((built, built.inputs.copy()))
    for window, copy in handed:  # rows once handed out are never written again
        assert np.array_equal(window.inputs, copy, equal_nan=True)
    assert assembler._inputs is not None
    assert len(assembler._inputs) <= 2 * CAPACITY + 3 * 160  # bounded by the window, not by the rows seen


def test_a_stored_window_assembled_again_and_again_is_the_window_concatenation_gives(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    assembler = WindowAssembler()
    given = 0
    with SqliteStore(tmp_path / "assembled.db", StoreOptions(flush_interval=0.01)) as store:
        for k in range(80):
            size = int(rng.choice([1, 3, 40, 70]))
            window = chunk(rng, size, given, odd=k % 11 == 3)
            store.put(RequestRecord(f"r{k}", 1.7e9, "m", None, "ok", size, 1.0, window=window))  # type: ignore[arg-type]
            given += size
            assert store.flush()

            built = assembler.assemble(store.window_chunks("m"), 250, 3, 2)

            assert same(built, assemble(store.window_chunks("m"), 250, 3, 2)), k


@pytest.mark.parametrize("marked", [True, False])
def test_chunks_without_marks_or_outputs_are_concatenated_as_before(marked: bool) -> None:
    rng = np.random.default_rng(3)
    first, second = chunk(rng, 5, 0), chunk(rng, 4, 5)
    if marked:  # marked, but one has no outputs: the window has none
        first = Chunk(first.inputs, None, {}, {}, ("a", 5))
        second = second.marked(("b", 4))
    chunks = [second, first]

    built = WindowAssembler().assemble(iter(chunks), 20, 3, 2)
    plain = assemble(iter(chunks), 20, 3, 2)

    assert np.array_equal(built.inputs, plain.inputs, equal_nan=True)
    assert built.outputs is not None
    assert plain.outputs is not None
    assert np.array_equal(built.outputs, plain.outputs)
    assert built.outputs.shape == ((0, 2) if marked else (9, 2))
    assert built.parts == plain.parts
