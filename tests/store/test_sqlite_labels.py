"""The SQLite backend's label join answers what the plain join (one row's output extracted by SQLite, each
output, label and ISO time decoded in Python) answers, also on damaged rows, only faster."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving.chain import BAD
from guarded_serving.performance import plain_matrix
from guarded_serving.store import LabelledRows, RequestRecord, StoreOptions
from guarded_serving.store.sqlite import SCHEMA_VERSION, SqliteStore, joined, retention

T0 = 1_700_000_000.0

# The join as it was written first: SQLite extracts each row's output, Python decodes everything row by row.
PLAIN = (
    "SELECT CASE WHEN typeof(q.outputs) = 'text' AND json_valid(q.outputs) AND typeof(f.row) = 'integer'"
    " THEN q.outputs -> f.row END AS output, f.label, q.ts, f.ts FROM feedback f"
    " JOIN requests q ON q.id = (SELECT max(r.id) FROM requests r"
    " WHERE r.request_id = f.request_id AND r.model = f.model AND r.version IS nullif(f.version, '') AND r.status = 'ok')"
    " WHERE f.model = ? AND f.version = ? AND output IS NOT NULL ORDER BY q.id DESC, f.row DESC LIMIT ?"
)


def plain_join(path: Path, limit: int) -> tuple[list[Any], list[Any], list[float]]:
    with sqlite3.connect(path) as conn:
        stored = conn.execute(PLAIN, ["m", "", limit]).fetchall()[::-1]
    outputs, labels, delays = [], [], []
    for output, label, predicted_at, labelled_at in stored:
        try:
            decoded = json.loads(output), json.loads(label)
        except (TypeError, ValueError):
            continue
        outputs.append(decoded[0])
        labels.append(decoded[1])
        with contextlib.suppress(TypeError, ValueError):
            start, end = dt.datetime.fromisoformat(predicted_at), dt.datetime.fromisoformat(labelled_at)
            delays.append(end.timestamp() - start.timestamp())
    return outputs, labels, delays


def same(found: LabelledRows, expected: tuple[list[Any], list[Any], list[float]]) -> bool:
    """Equal values, NaN equal to NaN, and the very same delays (not approximately); the outputs' matrix, when
    the answer keeps one, is theirs as plain_matrix reads them."""
    as_text = json.dumps([found.outputs, found.labels]), json.dumps([expected[0], expected[1]])
    matrix = plain_matrix(found.outputs)
    kept = found.matrix is None or (matrix is not None and np.array_equal(found.matrix, matrix))
    return as_text[0] == as_text[1] and np.array_equal(found.delays, np.array(expected[2])) and kept


@pytest.fixture
def labelled_store(tmp_path: Path) -> Iterator[SqliteStore]:
    """100 requests of 1 to 30 rows (two probabilities each, some ids sent twice, a few rejected), a label
    for most rows given in several calls (some replaced), as a health check reads them."""
    rng = np.random.default_rng(13)
    with SqliteStore(tmp_path / "log.db", StoreOptions(flush_interval=0.02)) as store:
        ids = []
        for i in range(100):
            rows = int(rng.integers(1, 31))
            request_id = f"r{i % 90}"  # the last ten send an id again
            status = "rejected" if i % 17 == 5 else "ok"
            p = rng.random(rows).round(6)
            outputs = np.column_stack([1 - p, p]).tolist() if status == "ok" else None
            ts = T0 + i * 1.237 + rng.random()
            inputs = [[float(j)] for j in range(rows)] if status == "ok" else None
            store.put(
                RequestRecord(
                    request_id, ts, "m", None, status, rows if status == "ok" else 0, 1.0, inputs=inputs, outputs=outputs
                )
            )  # type: ignore[arg-type]
            ids.append((request_id, rows))
        assert store.flush()
        for start in range(0, 100, 10):
            items = [
                (rid, row, json.dumps(int(rng.integers(0, 2)))) for rid, rows in ids[start : start + 10] for row in range(rows)
            ]
            store.write_feedback("m", [item for item in items if rng.random() < 0.9])
        yield store


@pytest.mark.parametrize("limit", [1, 50, 700, 5000], ids=["one", "fifty", "some", "all"])
def test_the_label_join_answers_as_the_plain_join(labelled_store: SqliteStore, limit: int) -> None:
    expected = plain_join(Path(labelled_store.path), limit)

    found = labelled_store.labelled("m", limit)

    assert len(found.outputs) == min(limit, len(expected[0])) > 0
    assert same(found, expected)


DAMAGE = {
    "outputs-not-json": "UPDATE requests SET outputs = '[[0.5, 0.5]' WHERE id = 95",
    "outputs-an-object": "UPDATE requests SET outputs = '{\"0\": [0.5, 0.5]}' WHERE id = 96",
    "outputs-shorter": "UPDATE requests SET outputs = '[[0.25, 0.75]]' WHERE id = 97",
    "outputs-a-blob": "UPDATE requests SET outputs = CAST(outputs AS BLOB) WHERE id = 98",
    "label-not-json": "UPDATE feedback SET label = 'yes' WHERE rowid % 7 = 0",
    "label-nan": "UPDATE feedback SET label = 'NaN' WHERE rowid % 11 = 0",
    "label-with-a-comma": "UPDATE feedback SET label = '1, 2' WHERE rowid % 7 = 0",
    # two labels that are not JSON alone, but whose texts joined by a comma would read as two strings
    "labels-that-join-into-json": "UPDATE feedback SET label = CASE WHEN rowid % 2 THEN '1,\"a' ELSE 'b\"' END",
    "label-a-string-with-a-comma": "UPDATE feedback SET label = '\"a, b\"' WHERE rowid % 3 = 0",
    "label-a-number": "UPDATE feedback SET label = 1 WHERE rowid % 13 = 0",
    "label-null": "UPDATE feedback SET label = NULL WHERE rowid % 19 = 0",
    "row-as-text": "UPDATE feedback SET row = CAST(row AS TEXT) WHERE rowid % 5 = 0",
    "request-time-damaged": "UPDATE requests SET ts = 'yesterday' WHERE id = 99",
    "label-time-a-number": "UPDATE feedback SET ts = 2460000.5 WHERE rowid % 3 = 0",
    "label-time-in-another-form": "UPDATE feedback SET ts = replace(replace(ts, 'T', ' '), '+00:00', 'Z') WHERE rowid % 2 = 0",
    "label-time-of-a-day-that-does-not-exist": "UPDATE feedback SET ts = '2023-02-31T10:00:00.000+00:00' WHERE rowid % 4 = 0",
    "request-time-with-an-offset": "UPDATE requests SET ts = replace(ts, '+00:00', '+02:00') WHERE id % 3 = 0",
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_rows_are_left_out_as_the_plain_join_leaves_them_out(labelled_store: SqliteStore, damage: str) -> None:
    with sqlite3.connect(labelled_store.path) as conn:
        conn.execute(DAMAGE[damage])
    expected = plain_join(Path(labelled_store.path), 300)

    found = labelled_store.labelled("m", 300)

    assert same(found, expected)


LABEL_TEXTS = ['0', '1', ' 2 ', '-3.5e2', 'NaN', 'true', 'null', '"cat"', '"a, b"', '"a\\"b"', '[1, 2]', '{"a": 1}', '', 'yes',
               '1, 2', '1,"a', 'b"', '[1', '2]', '"x', '1 2']  # fmt: skip


@pytest.mark.parametrize("seed", range(5))
def test_labels_decode_as_each_text_alone_decodes(seed: int) -> None:
    """The join decodes a request's labels as one JSON array when that reads each text as it reads alone: random
    runs of numbers, strings (with commas and escapes), texts that are not JSON and texts that join into JSON."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        texts = [LABEL_TEXTS[k] for k in rng.integers(0, len(LABEL_TEXTS), int(rng.integers(1, 6)))]
        expected = [joined._loads(text) for text in texts]

        found = joined._decode(texts)

        assert json.dumps([None if v is BAD else v for v in found]) == json.dumps([None if v is BAD else v for v in expected])
        assert [v is BAD for v in found] == [v is BAD for v in expected], texts


def test_a_read_after_more_labels_arrive_sees_them(labelled_store: SqliteStore) -> None:
    first = labelled_store.labelled("m", 5000)
    labelled_store.put(
        RequestRecord("late", T0 + 500, "m", None, "ok", 2, 1.0, inputs=[[0.0], [1.0]], outputs=[[0.9, 0.1], [0.2, 0.8]])
    )
    assert labelled_store.flush()
    labelled_store.write_feedback("m", [("late", 1, "1"), ("late", 0, "0")])

    found = labelled_store.labelled("m", 5000)

    assert (found.outputs[-2:], found.labels[-2:]) == ([[0.9, 0.1], [0.2, 0.8]], [0, 1])
    assert len(found.outputs) == len(first.outputs) + 2
    assert same(found, plain_join(Path(labelled_store.path), 5000))


def test_a_replaced_file_is_read_afresh_though_its_request_ids_are_the_same(tmp_path: Path) -> None:
    def logged(name: str, outputs: list[Any]) -> Path:
        with SqliteStore(tmp_path / name, StoreOptions(flush_interval=0.02)) as store:
            store.put(RequestRecord("a", T0, "m", None, "ok", 2, 1.0, inputs=[[0.0], [1.0]], outputs=outputs))
            assert store.flush()
            store.write_feedback("m", [("a", 0, "0"), ("a", 1, "1")])
        return tmp_path / name

    first, second = logged("first.db", [[0.9, 0.1], [0.8, 0.2]]), logged("second.db", [[0.3, 0.7], [0.4, 0.6]])
    with SqliteStore(first) as store:
        before = store.labelled("m", 10).outputs
        second.replace(first)
        store.connections.reconnect()  # as the store does when it finds its file replaced
        after = store.labelled("m", 10).outputs

    assert (before, after) == ([[0.9, 0.1], [0.8, 0.2]], [[0.3, 0.7], [0.4, 0.6]])


def put_request(store: SqliteStore, request_id: str, ts: float, status: Any, rows: int, outputs: Any) -> None:
    """Log one request of ``rows`` rows (none unless answered) and wait until it is in the file."""
    answered = status == "ok"
    record = RequestRecord(
        request_id,
        ts,
        "m",
        None,
        status,
        rows if answered else 0,
        1.0,
        inputs=[[0.0]] * rows if answered else None,
        outputs=outputs if answered else None,
    )
    store.put(record)
    assert store.flush()


def label_some(store: SqliteStore, rng: np.random.Generator, sent: list[tuple[str, int]]) -> None:
    """Label random rows of two random requests sent so far (new labels, late ones, replaced ones)."""
    for rid, n in [sent[int(k)] for k in rng.integers(len(sent), size=2)] if sent else []:
        labelled_rows = sorted({int(r) for r in rng.integers(n, size=int(rng.integers(1, n + 1)))})
        store.write_feedback("m", [(rid, row, json.dumps(int(rng.integers(0, 2)))) for row in labelled_rows])


@pytest.mark.parametrize("seed", range(3))
def test_reads_between_new_requests_new_labels_and_replaced_ones_answer_as_the_plain_join(tmp_path: Path, seed: int) -> None:
    """A long sequence: each read reuses the requests' rows joined by the read before (a window moving on)."""
    rng = np.random.default_rng(seed)
    with SqliteStore(tmp_path / "log.db", StoreOptions(flush_interval=0.02)) as store:
        sent: list[tuple[str, int]] = []
        for i in range(60):
            rows = int(rng.integers(1, 12))
            request_id = f"r{i}" if rng.random() > 0.1 or not sent else sent[int(rng.integers(len(sent)))][0]  # ids reused
            p = rng.random(rows).round(6)
            put_request(store, request_id, T0 + i, "ok", rows, np.column_stack([1 - p, p]).tolist())
            sent = [(rid, n) for rid, n in sent if rid != request_id] + [(request_id, rows)]
            label_some(store, rng, sent)  # new labels, late ones, replaced ones
            limit = int(rng.choice([5, 40, 1000]))

            found = store.labelled("m", limit)

            assert same(found, plain_join(Path(store.path), limit))


def edit(path: Path, sql: str, *params: Any) -> None:
    """A hand edit of the file, as a user of ``sqlite-utils`` makes one (another connection)."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


@pytest.mark.parametrize("limit", [7, 60, 1000], ids=["short", "moving", "everything"])
@pytest.mark.parametrize("seed", range(4))
def test_reads_of_only_what_changed_answer_as_the_plain_join_through_every_kind_of_change(
    tmp_path: Path, seed: int, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One limit (as a health check reads), so that each read joins only what changed since the one before:
    new requests, ids sent again (by a request with or without outputs, or a rejected one), labels new, late,
    replaced, given before their request is stored, labels and requests deleted by retention or by hand, labels
    and outputs damaged by hand."""
    monkeypatch.setattr(retention, "RETENTION_EVERY", 10**9)  # the test prunes: the writer's own would race the checks
    rng = np.random.default_rng(seed)
    options = StoreOptions(flush_interval=0.02, max_rows=int(rng.choice([40, 150, 0])) or None)
    path = tmp_path / "log.db"
    with SqliteStore(path, options) as store:
        sent: list[tuple[str, int]] = []
        for i in range(80):
            rows = int(rng.integers(1, 12))
            reused = sent and rng.random() < 0.12
            request_id = sent[int(rng.integers(len(sent)))][0] if reused else f"r{i}"
            if rng.random() < 0.1:  # a label that arrives before its request is stored
                store.write_feedback("m", [(request_id, 0, json.dumps(int(rng.integers(0, 2))))])
            status = "rejected" if rng.random() < 0.05 else "ok"
            p = rng.random(rows).round(6)
            outputs = np.column_stack([1 - p, p]).tolist() if rng.random() > 0.05 else None
            put_request(store, request_id, T0 + i, status, rows, outputs)
            if status == "ok":
                sent = [(rid, n) for rid, n in sent if rid != request_id] + [(request_id, rows)]
            label_some(store, rng, sent)
            change = rng.random()
            if change < 0.05:
                store.prune()
            elif change < 0.08:
                edit(path, "DELETE FROM feedback WHERE rowid IN (SELECT rowid FROM feedback ORDER BY random() LIMIT 3)")
            elif change < 0.10:
                edit(path, "DELETE FROM requests WHERE id = (SELECT id FROM requests ORDER BY random() LIMIT 1)")
            elif change < 0.13:
                edit(path, "UPDATE feedback SET label = 'yes' WHERE rowid = (SELECT max(rowid) FROM feedback)")
            elif change < 0.15:
                edit(path, "UPDATE OR IGNORE feedback SET row = row + 1 WHERE rowid = (SELECT min(rowid) FROM feedback)")

            found = store.labelled("m", limit)

            assert same(found, plain_join(path, limit)), f"read {i}"


def test_a_hand_edit_of_a_label_is_numbered_and_read(labelled_store: SqliteStore) -> None:
    """sqlite-utils or a script edits the file without knowing the change numbers: the triggers number it."""
    labelled_store.labelled("m", 300)
    edit(Path(labelled_store.path), "UPDATE feedback SET label = '7' WHERE rowid = (SELECT max(rowid) FROM feedback)")
    edit(
        Path(labelled_store.path),
        "INSERT OR REPLACE INTO feedback (model, version, request_id, row, label, ts)"
        " SELECT model, version, request_id, row, '8', ts FROM feedback ORDER BY rowid DESC LIMIT 1 OFFSET 1",
    )

    found = labelled_store.labelled("m", 300)

    assert same(found, plain_join(Path(labelled_store.path), 300))
    assert {7, 8} <= set(found.labels)


def test_a_schema_4_file_gains_change_numbers_and_keeps_its_labels(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SqliteStore(path, StoreOptions(flush_interval=0.02)) as store:
        store.put(RequestRecord("a", T0, "m", None, "ok", 2, 1.0, inputs=[[0.0], [1.0]], outputs=[[0.9, 0.1], [0.2, 0.8]]))
        assert store.flush()
        store.write_feedback("m", [("a", 0, "0"), ("a", 1, "1")])
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:  # the file as schema 4 left it
        for trigger in (
            "feedback_inserted",
            "feedback_updated",
            "feedback_deleted",
            "requests_deleted",
            "requests_edited",
            "requests_removed",
        ):
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("DROP TABLE changes")
        conn.execute("DROP INDEX idx_feedback_model_version_changed")
        conn.execute("ALTER TABLE feedback DROP COLUMN changed")
        conn.execute("PRAGMA user_version = 4")

    with SqliteStore(path, StoreOptions(flush_interval=0.02)) as store:
        store.put(RequestRecord("b", T0 + 1, "m", None, "ok", 1, 1.0, inputs=[[2.0]], outputs=[[0.5, 0.5]]))
        assert store.flush()
        before = store.labelled("m", 10)
        store.write_feedback("m", [("b", 0, "1"), ("a", 0, "1")])
        after = store.labelled("m", 10)

    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        numbered = conn.execute("SELECT request_id, row, changed FROM feedback ORDER BY changed, request_id").fetchall()
        assert numbered == [("a", 1, 0), ("a", 0, 1), ("b", 0, 1)]  # one number per call that stored labels
    assert (before.labels, after.labels) == ([0, 1], [1, 1, 1])


def test_the_join_keeps_the_outputs_matrix_read_once_per_request(labelled_store: SqliteStore) -> None:
    """Scoring the labelled rows reads their outputs as a matrix: the join hands it back (each request's rows
    converted when first joined), not 2,000 outputs converted again at every health check."""
    found = labelled_store.labelled("m", 500)
    labelled_store.put(RequestRecord("new", T0 + 999, "m", None, "ok", 1, 1.0, inputs=[[0.0]], outputs=[[0.25, 0.75]]))
    assert labelled_store.flush()
    labelled_store.write_feedback("m", [("new", 0, "1")])
    moved = labelled_store.labelled("m", 500)

    assert found.matrix is not None
    assert moved.matrix is not None
    assert np.array_equal(moved.matrix, plain_matrix(moved.outputs))
    assert np.array_equal(moved.matrix[:-1], found.matrix[1:])
