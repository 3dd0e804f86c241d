"""The text examples served with ``bentoml serve``: each answers, refuses a bad row naming it, and reports its
descriptors (the statistics are tests/acceptance/test_text.py)."""

from __future__ import annotations

from collections.abc import Callable

from examples.text.corpus import news, reviews
from tests.fixtures.servers import Server


def test_the_text_example_serves_texts_and_reports_their_descriptors(serve: Callable[..., Server]) -> None:
    server = serve("examples.text.service:svc")
    texts, _ = news(300, seed=3)

    answered = server.client.post("/predict", json={"rows": texts[:2]})
    refused = server.client.post("/predict", json={"rows": ["fine", 42]})
    for start in range(0, 300, 100):
        assert server.client.post("/predict", json={"rows": texts[start : start + 100]}).status_code == 200
    drift = server.client.get("/health/model").json()["checks"]["data_drift"]

    assert answered.status_code == 200
    assert [len(p) for p in answered.json()["predictions"]] == [4, 4]
    assert refused.status_code == 422
    assert refused.json()["problems"] == [{"row": 1, "feature": "text", "problem": "got 42", "expected": "a string"}]
    assert {"text.chars", "text.unknown", "text.token"} <= set(drift["features"])


def test_the_mixed_example_serves_rows_with_a_free_text_field(serve: Callable[..., Server]) -> None:
    server = serve("examples.text.reviews:svc")
    rows, _ = reviews(300, seed=3)

    answered = server.client.post("/predict", json={"rows": rows.to_dict("records")[:2]})
    refused = server.client.post("/predict", json={"rows": [{"review": 3, "stars": 5, "price": 9.5, "channel": "web"}]})
    for start in range(0, 300, 100):
        assert server.client.post("/predict", json={"rows": rows.to_dict("records")[start : start + 100]}).status_code == 200
    drift = server.client.get("/health/model").json()["checks"]["data_drift"]

    assert answered.status_code == 200
    assert len(answered.json()["predictions"]) == 2
    assert refused.status_code == 422
    assert refused.json()["problems"][0]["feature"] == "review"
    assert {"review.chars", "review.unknown", "stars", "price", "channel"} <= set(drift["features"])
    assert "review" not in drift["features"]


def test_the_mixed_example_answers_a_null_in_any_field_without_a_500(serve: Callable[..., Server]) -> None:
    """Its Pipeline scales stars and price for a LogisticRegression, which raises on NaN: before, a null there was a
    500 from stage 'logisticregression'; now a 422 naming the field. A null review is an empty text, answered."""
    server = serve("examples.text.reviews:svc")
    [row] = reviews(1, seed=4)[0].to_dict("records")

    statuses = {}
    for field in ("review", "stars", "price", "channel"):
        answer = server.client.post("/predict", json={"rows": [{**row, field: None}]})
        statuses[field] = answer.status_code
        if answer.status_code == 422:
            assert answer.json()["problems"][0]["feature"] == field
            assert "a missing value, which this model cannot take" in answer.json()["detail"]

    assert statuses["review"] == 200
    assert (statuses["stars"], statuses["price"]) == (422, 422)
    assert 500 not in statuses.values(), statuses
