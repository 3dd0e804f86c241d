"""The store contract (guarded_serving/store/contract.py), rule by rule, on every backend of tests.fixtures.backends.BACKENDS."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import numpy as np
import pytest

from guarded_serving.drift.window import Chunk
from guarded_serving.environment import WarningRecord
from guarded_serving.errors import ConfigurationError, StoreError
from guarded_serving.performance import plain_matrix
from guarded_serving.store import ReadOnlyStore, RequestRecord, Store, StoreReader, Totals, iso_time, open_reader
from guarded_serving.store.contract import WARNINGS_KEPT
from tests.fixtures.backends import Backend
from tests.fixtures.waiting import wait_for

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def record(
    request_id: str,
    *,
    model: str = "m",
    version: str | None = None,
    status: str = "ok",
    rows: int = 2,
    ts: float = T0,
    first: float = 0.0,
    inputs: bool = True,
    outputs: bool = True,
    latency_ms: float = 1.5,
    stages: dict[str, float] | None = None,
    **extra: Any,
) -> RequestRecord:
    """A request of ``rows`` rows whose inputs are [first + i] and outputs first + i / 10 (when answered)."""
    answered = status == "ok"
    return RequestRecord(
        request_id,
        ts,
        model,
        version,
        status,  # type: ignore[arg-type]
        rows,
        latency_ms,
        {"predict": 1.0} if stages is None else stages,
        inputs=[[first + i] for i in range(rows)] if answered and inputs else None,
        outputs=[first + i / 10 for i in range(rows)] if answered and outputs else None,
        **extra,
    )


def chunk(first: int, rows: int) -> Chunk:
    return Chunk(np.arange(first, first + rows, dtype=float).reshape(-1, 1), None)


def newest_that_fit(found: list[Any], max_rows: int) -> set[int]:
    """What max_rows keeps of ``found`` (id, rows counted: at least one), newest first: the newest requests while
    their rows fit."""
    kept, total = set(), 0
    for request_id, rows in found:
        if total + rows > max_rows:
            break
        kept.add(request_id)
        total += rows
    return kept


def put_all(store: Store, *records: RequestRecord) -> None:
    for r in records:
        assert store.put(r)
    assert store.flush()


def labels(reader: StoreReader, limit: int = 100, version: str | None = None) -> list[Any]:
    """The labels ``labelled`` joins, oldest first."""
    return reader.labelled("m", limit, version=version).labels


def joined(reader: StoreReader, limit: int = 100, version: str | None = None) -> list[tuple[Any, Any]]:
    """(output, label) of the rows ``labelled`` joins, oldest first."""
    found = reader.labelled("m", limit, version=version)
    assert len(found.outputs) == len(found.labels) >= len(found.delays)
    assert matrix_of(found.outputs, found.matrix)
    return list(zip(found.outputs, found.labels, strict=True))


def matrix_of(outputs: list[Any], matrix: np.ndarray | None) -> bool:
    """A labelled answer's matrix, when it has one, is its outputs as plain_matrix reads them."""
    expected = plain_matrix(outputs)
    return matrix is None or (expected is not None and np.array_equal(matrix, expected) and matrix.dtype == expected.dtype)


# -- keys ----------------------------------------------------------------------------------------


def test_each_model_version_has_its_own_totals(store: Store) -> None:
    put_all(store, record("a", version="1"), record("b", version="2", rows=3), record("c", rows=4), record("d", model="n"))

    assert [store.totals("m", version=v).rows for v in ("1", "2", None)] == [2, 3, 4]
    assert store.totals("n") == Totals(requests=1, rows=2)


def test_a_model_version_never_seen_reads_as_empty(store: Store) -> None:
    put_all(store, record("a", version="1", window=chunk(0, 2)))
    store.write_feedback("m", [("a", 0, "1")], version="1")

    assert store.totals("m") == Totals()
    assert store.label_totals("m") == (0, 0)
    assert store.recent_requests("m", 10) == []
    assert joined(store) == []
    assert store.warnings("m") == ()
    assert list(store.window_chunks("m")) == []
    assert store.snapshots("m", None, 10) == []


# -- requests ------------------------------------------------------------------------------------


def test_totals_count_requests_answered_rows_rejections_and_errors(store: Store) -> None:
    put_all(store, *(record(f"ok{i}", rows=4) for i in range(3)), record("bad", status="rejected", rows=0))
    put_all(store, record("err", status="error", rows=1))

    assert store.totals("m") == Totals(requests=5, rows=12, rejected=1, errors=1)


def test_a_request_id_sent_twice_is_logged_twice(store: Store) -> None:
    put_all(store, record("dup"), record("dup"))

    assert store.totals("m").requests == 2
    assert [r["request_id"] for r in store.recent_requests("m", 10)] == ["dup", "dup"]


def test_recent_requests_are_the_newest_first_with_their_columns_as_stored(store: Store) -> None:
    bad = record(
        "bad", status="rejected", rows=0, problem_features=("age",), missing_features=("city",), range_features=("income",)
    )
    put_all(store, *(record(f"r{i}") for i in range(5)), bad)

    newest = store.recent_requests("m", 3)

    assert [r["request_id"] for r in newest] == ["bad", "r4", "r3"]
    assert set(newest[0]) == {"request_id", "status", "rows", "latency_ms", "stages", "failed_stage", "problem_features"}
    # a value of the wrong type by its feature's name, a refused null as {"missing": name}, a number far beyond
    # the reference's as {"range": name}
    problems = ["age", {"missing": "city"}, {"range": "income"}]
    assert (newest[0]["status"], json.loads(newest[0]["problem_features"])) == ("rejected", problems)
    assert (newest[1]["rows"], newest[1]["latency_ms"], json.loads(newest[1]["stages"])) == (2, 1.5, {"predict": 1.0})


def test_recent_request_marks_name_the_recent_requests_and_fetch_them_by_id(store: Store) -> None:
    put_all(store, *(record(f"r{i}", latency_ms=1.0 + i) for i in range(5)), record("bad", status="rejected", rows=0))

    marks = store.recent_request_marks("m", 3)
    newest = store.recent_requests("m", 3)

    ids = [mark[0] for mark in marks]
    assert ids == sorted(ids, reverse=True)
    assert [mark[1:] for mark in marks] == [(r["status"], r["latency_ms"], r["failed_stage"]) for r in newest]
    assert [r["request_id"] for r in newest] == ["bad", "r4", "r3"]
    assert store.requests_by_id([*ids, ids[0], 10**9]) == dict(zip(ids, newest, strict=True))  # repeats and unknown ids: fine
    assert store.requests_by_id([]) == {}
    assert store.recent_request_marks("m", 3, after=ids[1]) == marks[:1]  # only the newer ones
    assert store.recent_request_marks("m", 3, after=ids[0]) == []


def test_request_edits_are_not_moved_by_requests_logged(backend: Backend, store: Store) -> None:
    """A reader that finds the count as it was reads only the marks of requests logged since (monitor/stored.py).
    PostgreSQL keeps no count: its replicas commit row ids out of order."""
    put_all(store, record("a"))
    edits = store.request_edits()

    put_all(store, record("b"), record("c", status="rejected", rows=0))

    assert store.request_edits() == edits
    assert (edits is None) == (backend.name == "postgresql")


def test_timings_are_kept_to_the_microsecond_and_no_problems_read_as_none(store: Store) -> None:
    put_all(store, record("a", latency_ms=12.3456789, stages={"predict": 2.0004999, "validate": 0.1}))

    [found] = store.recent_requests("m", 1)

    assert (found["latency_ms"], json.loads(found["stages"])) == (12.346, {"predict": 2.0, "validate": 0.1})
    assert (found["failed_stage"], found["problem_features"]) == (None, None)


class GrowsWhileWalked(dict):  # type: ignore[type-arg]
    """Stage timings that gain a stage while they are walked, as the request thread adds ``log`` to a record's
    timings after queuing it, maybe while the writer reads them."""

    def items(self) -> Any:
        for i, item in enumerate(super().items()):
            if i == 0:
                self[f"late-{len(self)}"] = 0.5
            yield item


def test_timings_that_change_while_the_writer_reads_them_never_cost_the_request_its_row(store: Store) -> None:
    put_all(store, record("racing", stages=GrowsWhileWalked(validate=0.1, predict=1.0)))

    [found] = store.recent_requests("m", 1)

    assert found["request_id"] == "racing"
    assert json.loads(found["stages"]) == {"validate": 0.1, "predict": 1.0}
    assert store.stats().dropped == 0


def test_a_record_dropped_for_want_of_room_is_still_counted_in_the_totals(backend: Backend) -> None:
    store = backend.store(capacity=2)  # not opened yet: nothing drains the buffer

    accepted = [store.put(record(f"r{i}", rows=1)) for i in range(3)]
    with store:
        assert store.flush()
        totals, stats = store.totals("m"), store.stats()

    assert accepted == [True, True, False]
    assert totals == Totals(requests=3, rows=3, dropped_requests=1, dropped_rows=1)
    assert (stats.written, stats.dropped) == (2, 1)


def test_stores_on_one_location_add_up_like_workers_and_a_reader_sees_them_all(backend: Backend, store: Store) -> None:
    with backend.store() as other:
        put_all(other, *(record(f"b{i}") for i in range(5)))
        put_all(store, *(record(f"a{i}") for i in range(5)))
        reader = backend.reader()
        try:
            seen = (store.totals("m"), other.totals("m"), reader.totals("m"))
        finally:
            reader.close()

    assert seen == (Totals(requests=10, rows=20),) * 3


def test_stats_say_what_was_written(store: Store) -> None:
    put_all(store, *(record(f"r{i}") for i in range(3)))

    stats = store.stats()

    assert (stats.written, stats.pending, stats.dropped, stats.last_error, stats.opened) == (6, 0, 0, None, True)


def test_outputs_not_given_are_stored_as_one_null_per_row(store: Store) -> None:
    put_all(store, record("a", rows=3, outputs=False))

    [(inputs, outputs)] = list(store.logged_rows("m"))

    assert (json.loads(inputs), json.loads(outputs)) == ([[0.0], [1.0], [2.0]], [None, None, None])


def test_rows_given_as_json_text_are_stored_as_they_were_written(store: Store) -> None:
    put_all(store, record("a", inputs_json='[[1.50, "x"],[2,null]]', outputs_json="[1e0,2]"))

    assert list(store.logged_rows("m")) == [('[[1.50, "x"],[2,null]]', "[1e0,2]")]


def test_a_store_not_yet_opened_holds_what_it_was_given_and_writes_it_once_opened(backend: Backend) -> None:
    store = backend.store()
    store.put(record("early", rows=3))

    waiting = store.stats()
    with store:
        assert store.flush()
        written = (store.stats().written, store.totals("m").rows)

    assert (waiting.pending, waiting.written, waiting.pending_bytes > 0) == (3, 0, True)
    assert written == (3, 3)


def test_closing_writes_what_is_pending_and_a_reader_then_finds_it(backend: Backend) -> None:
    store = backend.store(flush_interval=60.0).open()  # nothing is written before close
    put = [store.put(record(f"r{i}")) for i in range(3)]

    closed = store.close()
    reader = backend.reader()
    try:
        totals = reader.totals("m")
    finally:
        reader.close()

    assert (put, closed, totals) == ([True] * 3, True, Totals(requests=3, rows=6))


# -- labels --------------------------------------------------------------------------------------


def test_labels_are_counted_as_new_then_as_replaced(store: Store) -> None:
    put_all(store, record("a", rows=3))

    assert store.write_feedback("m", [("a", 0, '"x"'), ("a", 1, '"y"')]) == (2, 0)
    assert store.write_feedback("m", [("a", 1, '"z"'), ("a", 2, '"w"')]) == (1, 1)
    assert store.label_totals("m") == (3, 1)
    assert labels(store) == ["x", "z", "w"]


def test_a_row_labelled_twice_in_one_call_counts_as_replaced_and_keeps_the_last(store: Store) -> None:
    put_all(store, record("a"))

    assert store.write_feedback("m", [("a", 0, '"first"'), ("a", 0, '"last"')]) == (1, 1)
    assert labels(store) == ["last"]


def test_a_call_of_thousands_of_labels_stores_each_once_and_a_row_given_again_far_on_keeps_the_last(store: Store) -> None:
    put_all(store, record("a", rows=1500), record("b", rows=3))
    assert store.write_feedback("m", [("a", 1499, '"before"')]) == (1, 0)
    items = [("a", row, f'"{row}"') for row in range(1500)] + [("b", 2, '"b"'), ("a", 0, '"again"')]

    assert store.write_feedback("m", items) == (1500, 2)  # row 1499 labelled before, row 0 twice in the call

    assert store.label_totals("m") == (1501, 2)
    found = labels(store, limit=2000)
    assert len(found) == 1501
    assert found[:2] == ["again", "1"]  # oldest request first, its first row first
    assert found[1499:] == ["1499", "b"]


def test_labelled_rows_are_the_newest_by_prediction_then_row_handed_back_oldest_first(store: Store) -> None:
    put_all(store, record("a", first=0, ts=T0), record("b", first=10, ts=T0 + 5))
    store.write_feedback("m", [("b", 1, '"b1"'), ("a", 0, '"a0"'), ("b", 0, '"b0"'), ("a", 1, '"a1"')])

    assert joined(store, 3) == [(0.1, "a1"), (10.0, "b0"), (10.1, "b1")]


def test_a_label_delay_is_the_label_time_less_the_request_time_in_epoch_seconds(store: Store) -> None:
    put_all(store, record("a", ts=T0 + 0.25), record("b", ts=T0 + 5.5))
    before = time.time()
    store.write_feedback("m", [("a", 0, '"a0"'), ("a", 1, '"a1"'), ("b", 0, '"b0"')])
    after = time.time()

    delays = store.labelled("m", 10).delays

    assert delays.dtype == np.float64
    assert delays[0] == delays[1]  # one call stores its labels at one time
    assert delays[0] - delays[2] == pytest.approx(5.25, abs=1e-6)
    assert before - 0.001 - (T0 + 0.25) <= delays[0] <= after + 0.001 - (T0 + 0.25)


def test_a_label_joins_the_newest_answered_request_with_its_id(store: Store) -> None:
    put_all(store, record("dup", rows=1, first=0), record("dup", rows=3, first=10), record("dup", status="error", rows=1))
    store.write_feedback("m", [("dup", 2, '"label"')])

    assert joined(store) == [(10.2, "label")]
    assert store.request_rows("m", ["dup", "unknown"]) == {"dup": 3}


def test_a_label_of_a_row_whose_output_was_not_stored_is_counted_but_not_joined(store: Store) -> None:
    put_all(store, record("sampled-out", inputs=False, outputs=False))

    assert store.write_feedback("m", [("sampled-out", 0, '"x"')]) == (1, 0)
    assert joined(store) == []
    assert store.label_totals("m") == (1, 0)


def test_request_rows_know_only_answered_requests_with_rows(store: Store) -> None:
    put_all(store, record("ok"), record("bad", status="rejected", rows=0), record("failed", status="error", rows=1))

    assert store.request_rows("m", ["ok", "bad", "failed", "never"]) == {"ok": 2}


def test_request_rows_answer_every_id_asked_however_many(store: Store) -> None:
    put_all(store, *(record(f"r{i}", rows=1 + i % 3) for i in range(1200)))

    found = store.request_rows("m", [f"r{i}" for i in range(1200)] + ["r0", "never"])

    assert found == {f"r{i}": 1 + i % 3 for i in range(1200)}


def test_a_label_of_a_row_the_request_did_not_have_is_not_joined(store: Store) -> None:
    put_all(store, record("a", rows=2))
    store.write_feedback("m", [("a", 0, '"x"'), ("a", 5, '"beyond"')])

    assert labels(store) == ["x"]


def test_labels_are_visible_to_every_reader_as_soon_as_they_are_written(backend: Backend, store: Store) -> None:
    put_all(store, record("a"))
    reader = backend.reader()
    try:
        before = reader.label_totals("m")
        store.write_feedback("m", [("a", 0, '"x"'), ("a", 1, '"y"')])
        after = (reader.label_totals("m"), labels(reader))
    finally:
        reader.close()

    assert before == (0, 0)
    assert after == ((2, 0), ["x", "y"])


def test_a_reader_that_joined_labels_before_sees_every_change_another_replica_made_since(backend: Backend) -> None:
    """A health check reads the join again and again, and a backend may keep what it joined: what another
    replica writes (requests, labels new, late and replaced, an id sent again) and what retention deletes is
    in the next read, as a reader opened afresh reads it."""

    with backend.store(max_rows=12) as serving, backend.store() as other:
        put_all(serving, record("a", first=0), record("b", first=10))
        serving.write_feedback("m", [("a", 0, '"a0"'), ("b", 1, '"b1"')])
        steps = [
            lambda: put_all(other, record("c", first=20)),
            lambda: other.write_feedback("m", [("c", 0, '"c0"'), ("a", 1, '"a1"')]),  # new, and late
            lambda: other.write_feedback("m", [("a", 0, '"A0"')]),  # replaced
            lambda: put_all(other, record("b", first=30)),  # b sent again: its label joins the newer b
            lambda: put_all(other, *(record(f"d{i}", first=40 + i) for i in range(4))),
            lambda: other.write_feedback("m", [("d3", 0, '"d3"')]),
            serving.prune,  # 14 rows: the first a and b go, with a's labels (b is still logged)
        ]
        seen = [joined(serving, 4)]
        for step in steps:
            step()
            seen.append(joined(serving, 4))
        reader = backend.reader()
        try:
            afresh = joined(reader, 4)
        finally:
            reader.close()

    assert seen == [
        [(0.0, "a0"), (10.1, "b1")],
        [(0.0, "a0"), (10.1, "b1")],
        [(0.0, "a0"), (0.1, "a1"), (10.1, "b1"), (20.0, "c0")],
        [(0.0, "A0"), (0.1, "a1"), (10.1, "b1"), (20.0, "c0")],
        [(0.0, "A0"), (0.1, "a1"), (20.0, "c0"), (30.1, "b1")],
        [(0.0, "A0"), (0.1, "a1"), (20.0, "c0"), (30.1, "b1")],
        [(0.1, "a1"), (20.0, "c0"), (30.1, "b1"), (43.0, "d3")],
        [(20.0, "c0"), (30.1, "b1"), (43.0, "d3")],
    ]
    assert afresh == seen[-1]


def test_labels_join_only_their_own_versions_predictions(store: Store) -> None:
    put_all(store, record("shared", version="1"), record("shared", version="2"))
    store.write_feedback("m", [("shared", 0, '"x"')], version="1")

    assert store.request_rows("m", ["shared"], version="1") == {"shared": 2}
    assert labels(store, version="1") == ["x"]
    assert joined(store, version="2") == []
    assert store.label_totals("m", version="2") == (0, 0)


# -- health snapshots ----------------------------------------------------------------------------


def test_a_slot_keeps_the_first_snapshot_written_for_it(store: Store) -> None:
    assert store.write_snapshot("m", 60_000, T0, "ok", '{"n": 1}', keep=10)
    assert not store.write_snapshot("m", 60_000, T0 + 1, "alert", '{"n": 2}', keep=10)
    assert store.snapshots("m", None, 10) == ['{"n": 1}']


def test_snapshots_are_newest_first_since_a_time_and_the_newest_keep_are_kept(store: Store) -> None:
    for i in range(5):
        store.write_snapshot("m", i, T0 + i, "ok", f'{{"n": {i}}}', keep=3)
    store.write_snapshot("m", 0, T0, "ok", '{"other": 0}', keep=3, version="2")

    assert store.snapshots("m", None, 10) == ['{"n": 4}', '{"n": 3}', '{"n": 2}']
    assert store.snapshots("m", T0 + 3, 10) == ['{"n": 4}', '{"n": 3}']
    assert store.snapshots("m", None, 1) == ['{"n": 4}']
    assert store.snapshots("m", None, 10, version="2") == ['{"other": 0}']


# -- saved models --------------------------------------------------------------------------------


def test_a_saved_model_is_read_back_once_written(store: Store) -> None:
    store.save_model("m", "3", '{"format": "x"}', {"window": 500})
    assert store.flush()

    [saved] = store.saved_versions()

    assert (saved.name, saved.version, saved.reference, saved.settings) == ("m", "3", '{"format": "x"}', {"window": 500})
    assert store.saved_model("m", "3") == saved
    assert store.saved_model("m", None) is None


def test_the_last_save_of_a_model_version_wins(store: Store) -> None:
    store.save_model("m", None, '"first"', {})
    store.save_model("m", None, '"last"', {"window": 10})
    assert store.flush()

    assert [(s.reference, s.settings) for s in store.saved_versions()] == [('"last"', {"window": 10})]


def test_saved_models_name_per_model_the_version_saved_last(store: Store) -> None:
    store.save_model("m", "2", '"two"', {})
    assert store.flush()
    wait_for(lambda: False, timeout=0.01)  # saved_at has milliseconds: the next save is later
    store.save_model("m", "1", '"one"', {})
    store.save_model("n", None, '"n"', {})
    assert store.flush()

    assert {name: (s.version, s.reference) for name, s in store.saved_models().items()} == {
        "m": ("1", '"one"'),
        "n": (None, '"n"'),
    }


def test_model_versions_name_every_model_that_logged_a_request_or_saved_a_reference(store: Store) -> None:
    store.save_model("b", None, "{}", {})
    store.save_model("a", "2", "{}", {})
    put_all(store, record("r", model="c", version="1"), record("s", model="a"))

    assert store.model_versions() == [("a", None), ("a", "2"), ("b", None), ("c", "1")]
    assert store.model_names() == ["a", "b", "c"]
    assert [(s.name, s.version) for s in store.saved_versions()] == [("a", "2"), ("b", None)]
    assert set(store.saved_models()) == {"a", "b"}


def test_a_model_version_that_only_received_labels_is_one_of_the_model_versions(store: Store) -> None:
    store.write_feedback("labelled-only", [("unknown", 0, "1")], version="7")

    assert store.model_versions() == [("labelled-only", "7")]
    assert store.label_totals("labelled-only", version="7") == (1, 0)


# -- baselines adopted from served traffic -------------------------------------------------------


def test_a_kept_baseline_is_read_back_by_every_worker(backend: Backend, store: Store) -> None:
    before = time.time()
    store.save_baseline("m", "1", "digest", "outputs", 2000, '{"profiles": []}')
    reader = backend.reader()
    try:
        found = reader.baseline("m", "1", "digest", "outputs")
    finally:
        reader.close()

    assert found is not None
    assert (found.rows, found.document) == (2000, '{"profiles": []}')
    assert before - 0.001 <= dt.datetime.fromisoformat(found.since).timestamp() <= time.time() + 0.001


def test_the_first_baseline_kept_under_a_key_wins(backend: Backend, store: Store) -> None:
    with backend.store() as other_worker:
        store.save_baseline("m", None, "digest", "performance", 2000, '"first"')
        other_worker.save_baseline("m", None, "digest", "performance", 2500, '"second"')
        found = other_worker.baseline("m", None, "digest", "performance")

    assert found is not None
    assert (found.rows, found.document) == (2000, '"first"')


@pytest.mark.parametrize(
    ("model", "version", "reference", "kind"),
    [
        ("n", "1", "digest", "outputs"),
        ("m", None, "digest", "outputs"),
        ("m", "1", "other", "outputs"),
        ("m", "1", "digest", "performance"),
    ],
    ids=["another-model", "another-version", "another-reference", "another-kind"],
)
def test_a_baseline_is_kept_for_its_own_key_only(
    store: Store, model: str, version: str | None, reference: str, kind: str
) -> None:
    store.save_baseline("m", "1", "digest", "outputs", 2000, "{}")

    assert store.baseline(model, version, reference, kind) is None


def test_a_read_only_store_reads_the_kept_baselines_and_keeps_none(backend: Backend, store: Store) -> None:
    store.save_baseline("m", None, "digest", "outputs", 2000, '"kept"')
    read_only = ReadOnlyStore(backend.reader())
    try:
        read_only.save_baseline("m", None, "digest", "performance", 10, '"offline"')
        found = (read_only.baseline("m", None, "digest", "outputs"), read_only.baseline("m", None, "digest", "performance"))
    finally:
        read_only.close()

    assert found[0] is not None
    assert (found[0].document, found[1]) == ('"kept"', None)
    assert store.baseline("m", None, "digest", "performance") is None


# -- the drift window ----------------------------------------------------------------------------


def test_window_chunks_come_back_newest_first_for_their_version_only(store: Store) -> None:
    put_all(store, record("a", window=chunk(0, 2)))
    put_all(store, record("b", window=chunk(10, 3)))
    put_all(store, record("c", version="2", window=chunk(100, 1)))

    assert [c.inputs[:, 0].tolist() for c in store.window_chunks("m")] == [[10, 11, 12], [0, 1]]
    assert [c.inputs[:, 0].tolist() for c in store.window_chunks("m", version="2")] == [[100]]


def test_a_window_read_again_after_a_new_chunk_holds_it_and_the_chunks_read_before(store: Store) -> None:
    put_all(store, record("a", window=chunk(0, 2)))
    put_all(store, record("b", window=chunk(10, 3)))
    first = [c.inputs[:, 0].tolist() for c in store.window_chunks("m")]
    newest = next(iter(store.window_chunks("m")))  # a reader that stops after the newest chunk
    put_all(store, record("c", window=chunk(20, 1)))

    again = [c.inputs[:, 0].tolist() for c in store.window_chunks("m")]

    assert (first, newest.inputs[:, 0].tolist()) == ([[10, 11, 12], [0, 1]], [10, 11, 12])
    assert again == [[20], [10, 11, 12], [0, 1]]


def test_a_window_chunk_keeps_its_outputs_unseen_categories_and_type_errors(store: Store) -> None:
    sent = Chunk(np.array([[1.0, np.nan], [2.0, 3.0]]), np.array([[0.25], [0.75]]), {1: {"new": 2}}, {0: 1})
    put_all(store, record("a", window=sent))

    [back] = store.window_chunks("m")

    np.testing.assert_array_equal(back.inputs, sent.inputs)
    np.testing.assert_array_equal(back.outputs, sent.outputs)  # type: ignore[arg-type]
    assert (back.unseen, back.type_errors) == ({1: {"new": 2}}, {0: 1})


def test_retention_keeps_the_fewest_newest_chunks_that_hold_the_window(backend: Backend) -> None:
    with backend.store(window=100) as store:
        for i in range(10):
            put_all(store, record(f"r{i}", window=chunk(30 * i, 30)))
        store.prune()
        kept = [c.inputs[0, 0] for c in store.window_chunks("m")]

    assert kept == [270.0, 240.0, 210.0, 180.0]


# -- warnings ------------------------------------------------------------------------------------


def test_warnings_are_counted_and_the_most_counted_come_first(store: Store) -> None:
    old = WarningRecord("DeprecationWarning", "old", "model.py:3", 1)
    soon = WarningRecord("FutureWarning", "soon", "model.py:9", 1)
    put_all(store, record("w1", warnings=(old,)), record("w2", warnings=(soon, old)), record("w3", warnings=(old,)))

    assert store.warnings("m") == (WarningRecord("DeprecationWarning", "old", "model.py:3", 3), soon)
    assert store.warnings("m", limit=1) == (WarningRecord("DeprecationWarning", "old", "model.py:3", 3),)


def test_retention_keeps_the_most_recently_seen_warnings(store: Store) -> None:
    for i in range(WARNINGS_KEPT + 200):  # a warning whose message changes with every request
        warning = WarningRecord("DeprecationWarning", f"call {i}", "model.py:3", 1)
        store.put(record(f"r{i}", ts=T0 + i, warnings=(warning,)))
    assert store.flush()

    store.prune()

    assert {w.message for w in store.warnings("m", limit=5000)} == {f"call {i}" for i in range(200, WARNINGS_KEPT + 200)}


# -- retention -----------------------------------------------------------------------------------


def test_max_rows_keeps_the_newest_rows_of_the_versions_a_store_writes(backend: Backend) -> None:
    with backend.store(max_rows=10) as blue, backend.store() as green:
        put_all(blue, *(record(f"b{i}", version="blue") for i in range(50)))
        put_all(green, *(record(f"g{i}", version="green") for i in range(50)))
        blue.prune()
        kept = {v: [r["request_id"] for r in blue.recent_requests("m", 100, version=v)] for v in ("blue", "green")}

    assert kept["blue"] == [f"b{i}" for i in range(49, 44, -1)]
    assert len(kept["green"]) == 50


def test_a_request_without_rows_counts_as_one_row_for_max_rows(backend: Backend) -> None:
    with backend.store(max_rows=3) as store:
        put_all(store, *(record(f"bad{i}", status="rejected", rows=0) for i in range(5)))
        store.prune()
        kept = [r["request_id"] for r in store.recent_requests("m", 10)]

    assert kept == ["bad4", "bad3", "bad2"]


def test_max_age_deletes_older_requests_and_never_another_models(backend: Backend) -> None:
    now, old = time.time(), time.time() - 7200
    with backend.store(max_age=3600) as aged, backend.store() as other:
        put_all(aged, record("aged-old", model="aged", ts=old), record("aged-new", model="aged", ts=now))
        put_all(other, record("other-old", model="other", ts=old))
        aged.prune()
        kept = [r["request_id"] for name in ("aged", "other") for r in aged.recent_requests(name, 10)]

    assert kept == ["aged-new", "other-old"]


def test_the_labels_of_pruned_requests_go_with_them_unless_their_id_is_still_logged(backend: Backend) -> None:
    with backend.store(max_rows=4) as store:
        put_all(store, record("r0"), record("r1"))  # 4 rows: nothing to prune yet
        store.write_feedback("m", [("r0", 0, '"r0"'), ("r1", 0, '"r1"')])
        put_all(store, record("r2"), record("r0"))  # 8 rows: the first r0 and r1 go
        store.prune()
        store.write_feedback("m", [("r2", 0, '"r2"')])
        put_all(store, record("r1"))  # r1 logged again: its old label went with its request, so none joins it

        assert sorted(labels(store)) == ["r0", "r2"]


def test_a_store_prunes_nothing_of_a_version_it_never_wrote(backend: Backend) -> None:
    with backend.store() as writer:
        put_all(writer, *(record(f"r{i}", version="1") for i in range(20)))
    with backend.store(max_rows=1, max_age=1) as pruner:
        assert pruner.prune() == 0
        kept = len(pruner.recent_requests("m", 100, version="1"))

    assert kept == 20


def test_max_age_deletes_old_warnings_and_health_snapshots(backend: Backend) -> None:
    now, old = time.time(), time.time() - 7200
    with backend.store(max_age=3600) as store, backend.store() as unlimited:
        # The snapshots first: the limited store prunes on its own after its first write (in its writer
        # thread, after the write is acknowledged), so a snapshot written after it could already be gone.
        unlimited.write_snapshot("m", 0, old, "ok", '"old"', keep=10)
        unlimited.write_snapshot("m", 1, now, "ok", '"new"', keep=10)
        assert len(store.snapshots("m", None, 10)) == 2
        warned = [WarningRecord("FutureWarning", text, "a.py:1", 1) for text in ("old", "new")]
        put_all(store, record("a", ts=old, warnings=(warned[0],)), record("b", ts=now, warnings=(warned[1],)))
        store.prune()

        assert [w.message for w in store.warnings("m")] == ["new"]
        assert store.snapshots("m", None, 10) == ['"new"']


def test_max_age_deletes_old_labels_even_of_a_request_still_kept(backend: Backend) -> None:
    with backend.store(max_age=0.5) as store:
        put_all(store, record("later", ts=time.time() + 3600))  # a request not yet old
        store.write_feedback("m", [("later", 0, '"x"')])
        assert labels(store) == ["x"]

        assert wait_for(lambda: store.prune() == 0 and labels(store) == [])
        assert [r["request_id"] for r in store.recent_requests("m", 10)] == ["later"]


# -- a reader limited to what was logged since a time --------------------------------------------


@pytest.fixture
def logged_around_t0(store: Store) -> Store:
    """Before T0 - 10: one answered request (2 rows); after: one answered (3 rows) and one rejected."""
    old_warning = WarningRecord("DeprecationWarning", "old", "a.py:1", 1)
    new_warning = WarningRecord("FutureWarning", "new", "a.py:2", 1)
    put_all(
        store,
        record("old", ts=T0 - 100, window=chunk(0, 2), warnings=(old_warning,)),
        record("new", ts=T0, rows=3, first=10, warnings=(new_warning,)),
        record("bad", ts=T0, status="rejected", rows=0),
    )
    store.write_feedback("m", [("old", 0, '"o"'), ("new", 0, '"n"')])
    store.write_snapshot("m", 0, T0 - 100, "ok", "{}", keep=10)
    return store


def test_a_reader_since_a_time_counts_only_what_was_logged_since(backend: Backend, logged_around_t0: Store) -> None:
    reader = backend.reader(since=T0 - 10)
    try:
        assert reader.totals("m") == Totals(requests=2, rows=3, rejected=1)
        assert [r["request_id"] for r in reader.recent_requests("m", 10)] == ["bad", "new"]
        assert [mark[1] for mark in reader.recent_request_marks("m", 10)] == ["rejected", "ok"]
        assert labels(reader) == ["n"]
        assert [w.message for w in reader.warnings("m")] == ["new"]
        assert [r["request_id"] for r in reader.request_log()] == ["new", "bad"]
        assert reader.row_counts("m") == (3, 3)
        assert [json.loads(inputs) for inputs, _ in reader.logged_rows("m")] == [[[10.0], [11.0], [12.0]]]
        assert reader.written_and_dropped() == (3, 0)
    finally:
        reader.close()


def test_a_reader_since_a_time_still_reads_the_window_history_and_saved_models_whole(
    backend: Backend, logged_around_t0: Store
) -> None:
    reader = backend.reader(since=T0 - 10)
    try:
        assert [c.rows for c in reader.window_chunks("m")] == [2]
        assert reader.snapshots("m", None, 10) == ["{}"]
        assert reader.request_rows("m", ["old"]) == {"old": 2}
    finally:
        reader.close()


def test_a_reader_of_everything_reads_the_running_totals(backend: Backend, logged_around_t0: Store) -> None:
    reader = backend.reader()
    try:
        assert reader.totals("m") == Totals(requests=3, rows=5, rejected=1)
        assert reader.label_totals("m") == (2, 0)
        assert reader.written_and_dropped() == (5, 0)
    finally:
        reader.close()


# -- the request log -----------------------------------------------------------------------------


def test_the_request_log_pages_forward_from_an_id_oldest_first(store: Store, backend: Backend) -> None:
    put_all(store, record("a0", model="a"), record("b0", model="b"), record("a1", model="a", status="rejected", rows=0))
    put_all(store, record("b1", model="b"), record("a2", model="a"))
    reader = backend.reader()
    try:
        everything = reader.request_log(limit=100)
        newest = reader.request_log(limit=2)
        after = reader.request_log(after_id=everything[2]["id"])
        of_a = reader.request_log("a")
        rejected = reader.request_log(status="rejected")
    finally:
        reader.close()

    assert [r["request_id"] for r in everything] == ["a0", "b0", "a1", "b1", "a2"]
    assert everything[0]["ts"] == iso_time(T0) == "2023-11-14T22:13:20.000+00:00"
    keys = {"id", "ts", "model", "version", "request_id", "status", "rows", "latency_ms", "failed_stage", "error"}
    assert set(everything[0]) == keys
    assert [r["request_id"] for r in newest] == ["b1", "a2"]
    assert [r["request_id"] for r in after] == ["b1", "a2"]
    assert [r["request_id"] for r in of_a] == ["a0", "a1", "a2"]
    assert [r["request_id"] for r in rejected] == ["a1"]


def test_the_request_log_names_each_request_s_version_and_shows_one_version_when_asked(store: Store, backend: Backend) -> None:
    put_all(store, record("old", version="1"), record("new", version="2"), record("plain"), record("b", model="b", version="2"))
    reader = backend.reader()
    try:
        everything = reader.request_log(limit=100)
        of_2 = reader.request_log(version="2")
        of_m_2 = reader.request_log("m", version="2")
        unversioned = reader.request_log(version="")
    finally:
        reader.close()

    assert [(r["request_id"], r["version"]) for r in everything] == [("old", "1"), ("new", "2"), ("plain", None), ("b", "2")]
    assert [r["request_id"] for r in of_2] == ["new", "b"]
    assert [r["request_id"] for r in of_m_2] == ["new"]
    assert [r["request_id"] for r in unversioned] == ["plain"]


def test_logged_rows_are_the_answered_requests_with_inputs_newest_first(store: Store) -> None:
    put_all(store, record("a", first=0), record("withheld", inputs=False, first=5), record("bad", status="rejected", rows=0))
    put_all(store, record("b", first=10))

    logged = [(json.loads(inputs), json.loads(outputs)) for inputs, outputs in store.logged_rows("m")]

    assert logged == [([[10.0], [11.0]], [10.0, 10.1]), ([[0.0], [1.0]], [0.0, 0.1])]
    assert store.row_counts("m") == (6, 4)


# -- errors --------------------------------------------------------------------------------------


def test_a_read_of_a_store_that_cannot_be_reached_raises_store_error(backend: Backend) -> None:
    store = backend.store(backend.unreachable)

    with pytest.raises(StoreError):
        store.totals("m")


def test_a_store_that_cannot_be_reached_keeps_accepting_and_says_why(backend: Backend) -> None:
    store = backend.store(backend.unreachable).open()  # never raises
    try:
        accepted = store.put(record("r"))
        assert wait_for(lambda: store.stats().last_error is not None)
        flushed = store.flush(timeout=0.2)
        stats = store.stats()
    finally:
        closed = store.close(timeout=1.0)

    assert (accepted, flushed, closed) == (True, False, False)
    assert (stats.pending, stats.opened) == (2, False)


def test_opening_a_reader_where_no_store_was_written_is_a_configuration_error(backend: Backend) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_reader(backend.url)

    assert raised.value.argument == "db"


# -- a store that only reads ---------------------------------------------------------------------


def test_a_read_only_store_reads_through_its_reader_and_writes_nothing(backend: Backend, logged_around_t0: Store) -> None:
    read_only = ReadOnlyStore(backend.reader())
    try:
        totals = read_only.totals("m")
        kept = read_only.write_snapshot("m", 1, T0, "alert", '{"offline": true}', keep=10)
        stats = read_only.stats()
        refused = []
        for write in (
            lambda: read_only.put(record("x")),
            lambda: read_only.write_feedback("m", [("new", 1, "1")]),
            lambda: read_only.save_model("m", None, "{}", {}),
            read_only.open,
            read_only.prune,
        ):
            with pytest.raises(StoreError, match="open to read only"):
                write()
            refused.append(True)
    finally:
        read_only.close()

    assert totals == logged_around_t0.totals("m")
    assert (kept, read_only.flush()) == (False, True)
    assert (stats.read_only, stats.written, stats.pending) == (True, 5, 0)
    assert refused == [True] * 5
    assert logged_around_t0.snapshots("m", None, 10) == ["{}"]
    assert logged_around_t0.label_totals("m") == (2, 0)


def test_text_that_is_not_unicode_is_stored_mended_not_dropped(store: Store, backend: Backend) -> None:
    # a lone surrogate: a JSON escape a client can send (and a model's error can quote), which is no Unicode text
    put_all(store, record("odd", status="error", rows=0, error="no such city: '\ud800'", failed_stage="predict"))
    reader = backend.reader()
    try:
        [logged] = reader.request_log()
    finally:
        reader.close()

    assert logged["request_id"] == "odd"
    assert logged["error"] == "no such city: '\ufffd'"
    assert store.stats().dropped == 0
