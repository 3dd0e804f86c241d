"""The PostgreSQL backend's label join, moved on from the last read, answers what the plain join (every label joined
to its request's newest answered one, decoded row by row in Python) answers: through new requests, late labels,
relabels, ids sent again, damaged rows, and a request that a replica commits after a newer one was read."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from guarded_serving.chain import Chain
from guarded_serving.performance import plain_matrix
from guarded_serving.store import LabelledRows, RequestRecord, Store, StoreOptions, open_store

T0 = 1_700_000_000.0

# The join as it was first written: each label joined to the newest answered request with its id, newest first.
PLAIN = """
    SELECT q.outputs, f.row, f.label, q.ts, f.ts FROM feedback f
    JOIN requests q ON q.id = (SELECT max(r.id) FROM requests r WHERE r.request_id = f.request_id
                               AND r.model = f.model AND r.version = f.version AND r.status = 'ok')
    WHERE f.model = 'm' AND f.version = '' AND f.row >= 0 AND q.outputs IS NOT NULL
    ORDER BY q.id DESC, f.row DESC
"""


def plain_join(url: str, limit: int) -> tuple[list[Any], list[Any], list[float]]:
    with psycopg.connect(url) as conn:
        stored = conn.execute(PLAIN).fetchall()
    joined = []
    for outputs, row, label, predicted_at, labelled_at in stored:
        with contextlib.suppress(TypeError, ValueError):
            decoded = json.loads(outputs)
            if isinstance(decoded, list) and row < len(decoded):
                joined.append((decoded[row], label, predicted_at, labelled_at))
    rows = []
    for output, label, predicted_at, labelled_at in joined[:limit]:
        with contextlib.suppress(TypeError, ValueError):
            delay = dt.datetime.fromisoformat(labelled_at).timestamp() - dt.datetime.fromisoformat(predicted_at).timestamp()
            rows.append((output, json.loads(label), delay))
    rows.reverse()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def assert_plain(found: LabelledRows, url: str, limit: int, step: object = None) -> None:
    outputs, labels, delays = plain_join(url, limit)
    assert json.dumps([found.outputs, found.labels]) == json.dumps([outputs, labels]), step
    assert np.array_equal(found.delays, np.array(delays, dtype=float)), step
    expected = plain_matrix(found.outputs)
    if expected is None:
        assert found.matrix is None, step
    else:
        assert found.matrix is not None, step
        assert found.matrix.tobytes() == expected.tobytes(), step


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    opened = open_store(postgres_url, StoreOptions(flush_interval=0.02))
    assert opened is not None
    with opened.open() as store:
        yield store


def request(request_id: str, rows: int, ts: float, rng: np.random.Generator, status: str = "ok") -> RequestRecord:
    p = rng.random(rows).round(6)
    outputs: Any = np.column_stack([1 - p, p]).tolist() if status == "ok" else None
    if status == "ok" and rng.random() < 0.05:  # outputs that are not one plain matrix
        outputs = [[0.5, 0.5, 0.0], *outputs[1:]] if rows > 1 else ["yes"]
    inputs = [[float(i)] for i in range(rows)] if status == "ok" else None
    return RequestRecord(request_id, ts, "m", None, status, rows if status == "ok" else 0, 1.0, inputs=inputs, outputs=outputs)  # type: ignore[arg-type]


def test_every_read_moved_on_answers_as_the_plain_join(store: Store, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    moves: list[int] = []
    real_moved = Chain.moved
    monkeypatch.setattr(Chain, "moved", lambda chain, *args: moves.append(1) or real_moved(chain, *args))
    rng = np.random.default_rng(21)
    sent: list[tuple[str, int]] = []
    for step in range(150):
        size = int(rng.choice([1, 1, 1, 2, 5, 12]))
        reused = sent[-int(rng.integers(1, min(len(sent), 10) + 1))][0] if sent and rng.random() < 0.05 else None
        request_id = reused or f"r{step}"
        status = "rejected" if rng.random() < 0.05 else "ok"
        assert store.put(request(request_id, size, T0 + step, rng, status))
        assert store.flush()
        sent.append((request_id, size))
        action = rng.random()
        if action < 0.6:  # the newest request labelled at once
            labels = [json.dumps(int(rng.integers(2))) for _ in range(size)]
            if rng.random() < 0.03:
                labels[0] = "not json"  # a label that does not decode: left out
            store.write_feedback("m", [(request_id, row, label) for row, label in enumerate(labels)])
        elif action < 0.85:  # a late label for an earlier request, perhaps relabelled
            rid, rows = sent[-int(rng.integers(1, min(len(sent), 40) + 1))]
            store.write_feedback("m", [(rid, int(rng.integers(rows)), json.dumps(int(rng.integers(2))))])
        limit = 30 if rng.random() < 0.9 else 45
        assert_plain(store.labelled("m", limit), postgres_url, limit, step)
    assert len(moves) >= 40  # the moved-on read was exercised, not only the whole join


def test_a_request_committed_after_a_newer_one_was_read_is_joined(store: Store, postgres_url: str) -> None:
    """Replicas commit out of order: a request whose id was taken first, committed after a newer one (and its labels)
    was read, is below that read's newest id; the next read still joins its labels."""
    rng = np.random.default_rng(3)
    assert store.put(request("a", 2, T0, rng))
    assert store.flush()
    store.write_feedback("m", [("a", 0, "1"), ("a", 1, "0")])
    assert_plain(store.labelled("m", 10), postgres_url, 10, "first read")
    with psycopg.connect(postgres_url) as late:  # another replica's batch: the request copied, not yet committed
        late.execute(
            "INSERT INTO requests (request_id, ts, model, version, status, rows, outputs)"
            " VALUES ('late', '2023-11-14T22:13:21.000+00:00', 'm', '', 'ok', 1, '[[0.25, 0.75]]')"
        )
        assert store.put(request("b", 1, T0 + 2, rng))
        assert store.flush()
        store.write_feedback("m", [("b", 0, "1"), ("late", 0, "0")])  # its label before its request is committed
        assert_plain(store.labelled("m", 10), postgres_url, 10, "moved on by b")
        late.execute("UPDATE totals SET requests = requests + 1 WHERE model = 'm' AND version = ''")
    found = store.labelled("m", 10)

    assert [0.25, 0.75] in found.outputs
    assert_plain(found, postgres_url, 10, "after the late commit")
