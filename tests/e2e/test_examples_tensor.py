"""The image and embedding examples, served for real with `bentoml serve`: the model gets the stacked rows, a row of
the wrong shape is refused with a 422 naming it, and the report watches the rows' summaries."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_digits

from examples.digits import service as digits
from examples.embeddings.world import embeddings
from tests.fixtures.servers import Server
from tests.fixtures.waiting import wait_for

IMAGES = load_digits().images


def test_the_digits_example_classifies_8x8_images_and_refuses_a_wrong_shape(serve: Callable[..., Server]) -> None:
    server = serve("examples.digits.service:svc")

    answered = server.client.post("/predict", json={"rows": IMAGES[digits.held[:100]].tolist()})
    refused = server.client.post("/predict", json={"rows": [IMAGES[0].tolist(), IMAGES[0][:, :7].tolist()]})

    assert answered.status_code == 200
    predictions = np.array(answered.json()["predictions"])
    assert predictions.shape == (100, 10)
    assert (predictions.argmax(axis=1) == digits.labels[digits.held[:100]]).mean() > 0.85
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "row 1, feature 'tensor': got an array of shape (8, 7); expected an array of shape (8, 8) of numbers (float64)"
    )
    labels = digits.labels[digits.held[:100]].tolist()
    fed = server.client.post("/feedback", json={"request_id": answered.json()["request_id"], "labels": labels})
    assert fed.status_code == 200
    assert fed.json()["accepted"] == 100
    assert wait_for(lambda: server.client.get("/health/model").json()["window"]["rows"] == 100)
    report = server.client.get("/health/model").json()
    assert "tensor.edges_rows" in report["checks"]["data_drift"]["features"]
    assert {"validate", "predict", "serialize", "log"} <= set(report["checks"]["pipeline"]["stages"])
    concept = lambda: server.client.get("/health/model").json()["checks"]["concept_drift"]["summary"]  # noqa: E731
    assert wait_for(lambda: "over the last 100 labelled rows" in concept())


def test_the_embeddings_example_takes_64_dimensional_vectors(serve: Callable[..., Server]) -> None:
    server = serve("examples.embeddings.service:svc")
    vectors = embeddings(20, np.random.default_rng(0))

    answered = server.client.post("/predict", json={"rows": vectors.tolist()})
    refused = server.client.post("/predict", json={"rows": [vectors[0, :63].tolist()]})

    assert answered.status_code == 200
    assert np.array(answered.json()["predictions"]).shape == (20, 2)
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "row 0, feature 'embedding': got an array of shape (63,); expected an array of shape (64,) of numbers (float64)"
    )


def test_values_far_beyond_the_references_are_a_422_naming_row_and_position_never_a_500(
    serve: Callable[..., Server],
) -> None:
    """Before: 1e300 pixels reached the model, and a whole number beyond float range (10**400) crashed the row
    check (StopIteration: a 500); an embedding's likewise."""
    server = serve("examples.digits.service:svc")
    huge = IMAGES[0].tolist()
    huge[2][3] = 10**400
    far = (IMAGES[1] * 1e300).tolist()

    answers = [server.client.post("/predict", json={"rows": rows}) for rows in ([IMAGES[2].tolist(), huge], [far])]
    after = server.client.post("/predict", json={"rows": [IMAGES[3].tolist()]})

    assert [a.status_code for a in answers] == [422, 422], [a.text for a in answers]
    assert answers[0].json()["detail"].startswith(f"row 1, feature 'tensor': got 1{'0' * 36}... at position (2, 3), far beyond")
    assert answers[1].json()["detail"].startswith("row 0, feature 'tensor': got ")
    assert "far beyond the reference's values (at most ±1.6e+10" in answers[1].json()["detail"]
    assert after.status_code == 200
    totals = lambda: server.client.get("/health/model").json()["totals"]  # noqa: E731
    assert wait_for(lambda: totals() == {"requests": 3, "rows": 1, "rejected": 2, "errors": 0})
