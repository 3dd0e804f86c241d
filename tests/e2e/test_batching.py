"""Adaptive batching: concurrent requests share one model call; validation, rejection and logging stay per request."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from guarded_serving.batching import Batcher, BatchingOptions, merge_inputs, row_groups, split_rows
from guarded_serving.errors import ConfigurationError, ModelError
from guarded_serving.guard import GuardedModel, guard
from tests.apps.batched import REFERENCE, costly_predict
from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for


def body(*rows: list[Any]) -> tuple[bytes, str, None, None]:
    return json.dumps({"rows": list(rows)}).encode(), "application/json", None, None


@pytest.fixture
def guarded() -> Iterator[GuardedModel]:
    model = GuardedModel(costly_predict, reference=REFERENCE, name="b", db=":memory:", batching={"max_batch_size": 4})
    yield model
    model.close()


# -- the core -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(False, None, id="false"),
        pytest.param(True, BatchingOptions(32, 0.0), id="true"),
        pytest.param({"max_batch_size": 8}, BatchingOptions(8, 0.0), id="dict"),
        pytest.param(BatchingOptions(4, 5.0), BatchingOptions(4, 5.0), id="options"),
    ],
)
def test_batching_options_of_what_guard_accepts(given: Any, expected: BatchingOptions | None) -> None:
    assert BatchingOptions.of(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param({"max_batch_size": 0}, "batching max_batch_size: expected a positive integer", id="zero-size"),
        pytest.param({"max_latency_ms": -1}, "batching max_latency_ms: expected milliseconds in [0, 60000]", id="negative"),
        pytest.param({"size": 3}, "batching: expected keys among ['max_batch_size', 'max_latency_ms'], got ['size']", id="key"),
        pytest.param("yes", "batching: expected True, a dict", id="string"),
    ],
)
def test_bad_batching_options_name_the_value_and_what_was_expected(given: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BatchingOptions.of(given)


def test_row_groups_keep_order_and_never_split_a_request() -> None:
    assert row_groups([1, 2, 1, 5, 1, 1], 4) == [[0, 1, 2], [3], [4, 5]]


@pytest.mark.parametrize(
    ("parts", "fmt"),
    [
        pytest.param([np.ones((1, 3)), np.zeros((2, 3))], "array", id="array"),
        pytest.param([[{"a": 1}], [{"a": 2}, {"a": 3}]], "records", id="records"),
        pytest.param([pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [2, 3]})], "dataframe", id="dataframe"),
    ],
)
def test_merged_inputs_split_back_by_row_counts(parts: list[Any], fmt: str) -> None:
    merged = merge_inputs(parts, fmt)

    assert len(merged) == 3
    back = split_rows(merged, [1, 2])
    assert [len(p) for p in back] == [1, 2]
    assert type(back[0]) is type(parts[0])


def test_split_rows_refuses_a_result_of_the_wrong_length() -> None:
    with pytest.raises(ModelError, match="returned 2 results for a batch of 3 rows"):
        split_rows(np.zeros(2), [1, 2])


def test_a_batcher_runs_queued_jobs_together_and_hands_a_failure_to_each() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def run(batch: list[tuple[Any, ...]]) -> list[int]:
        gate.wait(10)
        seen.append(len(batch))
        if any(args[0] < 0 for args in batch):
            raise ValueError("negative")
        return [args[0] * 2 for args in batch]

    batcher: Batcher[int] = Batcher(run, BatchingOptions(max_batch_size=8))
    first = batcher.submit(1)  # taken alone, held at the gate while the next three queue
    wait_for(lambda: batcher.batches == 1)
    rest = [batcher.submit(n) for n in (2, 3, -4)]
    gate.set()

    assert first.wait(10) == 2
    for job in rest:
        with pytest.raises(ValueError, match="negative"):
            job.wait(10)
    assert seen == [1, 3]
    assert batcher.largest == 3


def test_a_batcher_is_awaited_from_coroutines_without_blocking_their_loop() -> None:
    batcher: Batcher[int] = Batcher(lambda batch: [args[0] + 1 for args in batch], BatchingOptions(max_batch_size=4))

    async def main() -> list[int]:
        return list(await asyncio.gather(*(batcher.call(n) for n in range(10))))

    assert asyncio.run(main()) == list(range(1, 11))
    assert batcher.largest <= 4


# -- the request path, without HTTP ---------------------------------------------------------------


def test_a_bad_request_is_rejected_alone_and_its_batch_mates_are_answered(guarded: GuardedModel) -> None:
    replies = guarded.handle_predict_batch([body([1, 1, 1]), body(["x", 1, 1]), body([2, 2, 2], [3, 3, 3])])

    assert [r.status for r in replies] == [200, 422, 200]
    assert json.loads(replies[0].body)["predictions"] == [3.0]
    assert json.loads(replies[2].body)["predictions"] == [6.0, 9.0]
    assert "row 0, feature 'a': got \"x\"; expected a number" in json.loads(replies[1].body)["detail"]
    assert [r.headers.get("X-Batch-Size") for r in replies] == ["2", None, "2"]


def test_a_model_exception_fails_only_the_requests_of_its_call(guarded: GuardedModel) -> None:
    # max_batch_size=4 rows: calls of [3 rows] and [3 rows]; the 999 is in the first
    replies = guarded.handle_predict_batch([body([1, 1, 1]), body([999, 1, 1], [1, 1, 1]), body([1, 1, 1], [2, 2, 2], [3, 3, 3])])

    assert [r.status for r in replies] == [500, 500, 200]
    detail = json.loads(replies[0].body)["detail"]
    assert detail == "the model failed in stage 'predict' with ValueError (a call shared by a batch of 2 requests)"


def test_each_batched_request_is_recorded_with_the_calls_duration_and_batch_size(guarded: GuardedModel) -> None:
    guarded.handle_predict_batch([body([1, 1, 1]), body(["x", 1, 1]), body([2, 2, 2])])

    recent = guarded.start()._recorder.recent_requests()
    assert [(r.status, r.stages.get("batch_size")) for r in recent] == [("rejected", None), ("ok", 2.0), ("ok", 2.0)]
    assert recent[1].stages["predict"] == recent[2].stages["predict"] > 0
    assert guarded.start().totals().requests == 3


def test_guard_refuses_batching_with_several_model_threads() -> None:
    with pytest.raises(ConfigurationError, match="threads: expected 1 with batching="):
        guard(costly_predict, reference=REFERENCE, name="x", db=":memory:", batching=True, threads=2)


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The batched service whose requests wait up to 300 ms for batch-mates."""
    server = start_server("tests.apps.batched:waiting", tmp_path_factory.mktemp("batched"))
    yield server
    server.stop()


def concurrently(server: Server, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST each body to /predict from its own thread, all released at once."""
    barrier = threading.Barrier(len(bodies))
    answers: list[httpx.Response | None] = [None] * len(bodies)

    def send(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            barrier.wait(10)
            answers[i] = client.post("/predict", json=bodies[i], headers={"X-Request-ID": f"req-{i}"})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def test_over_http_a_batch_holding_a_bad_request_answers_the_others_200_and_it_4xx(waiting: Server) -> None:
    bodies: list[dict[str, Any]] = [{"rows": [[i, 1, 1]]} for i in range(8)]
    bodies[3] = {"rows": [[1, "wide", 1]]}

    answers = concurrently(waiting, bodies)

    assert [a.status_code for a in answers] == [200, 200, 200, 422, 200, 200, 200, 200]
    assert [a.json()["predictions"] for i, a in enumerate(answers) if i != 3] == [[i + 2.0] for i in range(8) if i != 3]
    assert "row 0, feature 'b': got \"wide\"; expected a number" in answers[3].json()["detail"]
    sizes = [int(a.headers["x-batch-size"]) for i, a in enumerate(answers) if i != 3]
    assert max(sizes) > 1
    assert "x-batch-size" not in answers[3].headers

    def logged() -> list[tuple[str, str, str]]:
        with sqlite3.connect(waiting.db) as conn:
            return list(conn.execute("SELECT request_id, status, stages FROM requests WHERE request_id LIKE 'req-%'"))

    assert wait_for(lambda: len(logged()) == 8)
    stored = {rid: (status, json.loads(stages)) for rid, status, stages in logged()}
    assert stored["req-3"][0] == "rejected"
    assert "batch_size" not in stored["req-3"][1]
    assert {stored[f"req-{i}"][1]["batch_size"] for i in range(8) if i != 3} == set(sizes)


def test_over_http_a_model_exception_fails_its_batch_only_and_the_service_answers_on(waiting: Server) -> None:
    bodies: list[dict[str, Any]] = [{"rows": [[1, 1, 1]]} for _ in range(4)]
    bodies[1] = {"rows": [[999, 1, 1]]}

    answers = concurrently(waiting, bodies)
    after = waiting.client.post("/predict", json={"rows": [[1, 2, 3]]})

    failed = [a for a in answers if a.status_code == 500]
    assert answers[1].status_code == 500
    assert all(a.status_code in (200, 500) for a in answers)
    for a in failed:
        assert "with ValueError (a call shared by a batch of" in a.json()["detail"]
    assert after.status_code == 200
    assert after.json()["predictions"] == [6.0]
    assert waiting.client.get("/healthz").status_code == 200
