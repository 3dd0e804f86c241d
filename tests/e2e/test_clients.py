"""BentoML's own clients (``bentoml.SyncHTTPClient``, ``bentoml.AsyncHTTPClient``) on every route of a served
guarded service: /predict with rows as lists, as objects, as a numpy array and as a DataFrame, then /feedback with
the labels of the answer; and the typed APIs of a class-based service guarded in place."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import bentoml
import numpy as np
import pandas as pd
import pytest

from tests.apps.iris_model import FEATURES as IRIS_FEATURES
from tests.e2e.test_native import ROWS as IRIS_ROWS
from tests.e2e.test_native import save_iris_model
from tests.fixtures.servers import Server, start_server

ROWS = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
SUMS = [1.5, 1.0]
FEATURES = ["a", "b", "c"]

SHAPES: dict[str, Any] = {
    "lists": ROWS,
    "objects": [dict(zip(FEATURES, row, strict=True)) for row in ROWS],
    "objects-out-of-order": [{"c": row[2], "a": row[0], "b": row[1]} for row in ROWS],
    "numpy-array": np.array(ROWS),
    "dataframe": pd.DataFrame(ROWS, columns=FEATURES),
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server("tests.apps.toy:labelled", tmp_path_factory.mktemp("toy"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("bentoml")
    save_iris_model(home)
    server = start_server("tests.apps.iris_guarded:Iris", tmp_path_factory.mktemp("iris"), env={"BENTOML_HOME": str(home)})
    yield server
    server.stop()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_sync_client_predicts_rows_of_every_shape_and_sends_their_labels(toy: Server, shape: str) -> None:
    with bentoml.SyncHTTPClient(toy.url) as client:
        answer = client.predict(rows=SHAPES[shape])
        labels = np.array([3, 4])  # numpy integers, as a model's own outputs often are
        stored = client.feedback(request_id=answer["request_id"], labels=labels)

    assert answer["predictions"] == pytest.approx(SUMS)
    assert stored == {"accepted": 2, "new": 2, "replaced": 0}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_async_client_predicts_rows_of_every_shape_and_sends_their_labels(toy: Server, shape: str) -> None:
    async def round_trip() -> tuple[Any, Any]:
        async with bentoml.AsyncHTTPClient(toy.url) as client:
            answer = await client.predict(rows=SHAPES[shape])
            stored = await client.feedback(request_id=answer["request_id"], labels=[3.0, 4.0])
            return answer, stored

    answer, stored = asyncio.run(round_trip())

    assert answer["predictions"] == pytest.approx(SUMS)
    assert stored == {"accepted": 2, "new": 2, "replaced": 0}


def test_a_bad_row_sent_by_the_client_is_the_guards_422(toy: Server) -> None:
    with bentoml.SyncHTTPClient(toy.url) as client, pytest.raises(bentoml.exceptions.BentoMLException) as refused:
        client.predict(rows=[{"a": 1.0, "b": "wide", "c": 2.0}])

    assert "row 0, feature 'b'" in str(refused.value)


def test_the_clients_call_the_typed_apis_and_feedback_of_a_service_guarded_in_place(iris: Server) -> None:
    flowers = [dict(zip(IRIS_FEATURES, row, strict=True)) for row in IRIS_ROWS]
    answered = iris.client.post("/classify", json={"data": IRIS_ROWS}, headers={"X-Request-ID": "by-client"})
    assert answered.status_code == 200
    with bentoml.SyncHTTPClient(iris.url) as client:
        classes = client.classify(data=np.array(IRIS_ROWS))
        scores = client.score(flowers=flowers)
        stored = client.feedback(request_id="by-client", labels=np.array([0, 2, 2]))

    async def classify() -> Any:
        async with bentoml.AsyncHTTPClient(iris.url) as client:
            return await client.classify(data=np.array(IRIS_ROWS))

    assert list(classes) == [0, 2, 1]
    assert [s["species"] for s in scores] == ["setosa", "virginica", "versicolor"]
    assert list(asyncio.run(classify())) == [0, 2, 1]
    assert stored == {"accepted": 3, "new": 3, "replaced": 0}
