"""guarded_serving.testing: a user's test client that answers as the service does, without a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from guarded_serving import GuardedModel, guard
from guarded_serving.errors import ConfigurationError
from guarded_serving.testing import Answer, TestClient
from tests.fixtures.data import gaussian

TRAINING = gaussian(300, 3, seed=4)


def summed(rows: np.ndarray) -> np.ndarray:
    return rows.sum(axis=1)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(GuardedModel(summed, reference=TRAINING, name="summer", db=":memory:")) as opened:
        yield opened


def test_a_valid_request_gets_its_predictions_and_its_request_id(client: TestClient) -> None:
    answer = client.predict([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]], request_id="req-1")

    assert (answer.status, answer.media_type, answer.is_problem) == (200, "application/json", False)
    assert answer.json() == {"predictions": [6.0, 1.5], "request_id": "req-1"}
    assert answer.headers == {"X-Request-ID": "req-1", "content-type": "application/json"}


def test_a_wrong_value_is_a_problem_naming_the_row_the_feature_and_what_was_expected(client: TestClient) -> None:
    answer = client.predict([[1.0, 2.0, 3.0], [1.0, "abc", 3.0]], request_id="req-2")

    assert (answer.status, answer.media_type, answer.is_problem) == (422, "application/problem+json", True)
    assert answer.json()["problems"] == [{"row": 1, "feature": "f1", "problem": 'got "abc"', "expected": "a number"}]
    assert answer.json()["request_id"] == "req-2"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b"{not json", "application/json", 400), (b'{"rows": [[1, 2, 3]]}', "text/plain", 415)],
    ids=["malformed-json", "not-json-content-type"],
)
def test_raw_bodies_get_the_status_http_gives_them(client: TestClient, body: bytes, content_type: str, status: int) -> None:
    answer = client.predict(body=body, content_type=content_type)

    assert (answer.status, answer.is_problem) == (status, True)


def test_labels_join_the_request_they_label_and_an_unknown_id_is_a_404(client: TestClient) -> None:
    served = client.predict([[1.0, 2.0, 3.0]])

    assert client.feedback(served.json()["request_id"], [6.5]).json() == {"accepted": 1, "new": 1, "replaced": 0}
    unknown = client.feedback("no-such-request", [1.0])
    assert (unknown.status, unknown.json()["unknown_request_ids"]) == (404, ["no-such-request"])


def test_health_and_history_answer_with_their_parameters(client: TestClient) -> None:
    client.predict([[1.0, 2.0, 3.0]])

    assert client.health().json()["totals"]["requests"] == 1
    assert client.health(format="html").media_type == "text/html; charset=utf-8"
    assert client.health(fail_on="sometimes").status == 400
    assert client.history(limit="0").json()["parameter"] == "limit"


def test_a_token_protected_model_is_asked_with_the_token_the_client_was_given() -> None:
    model = GuardedModel(summed, reference=TRAINING, name="private", db=":memory:", auth_token="a-token-of-16-chars-or-more")

    with (
        TestClient(model, auth_token="a-wrong-token-of-16-chars") as stranger,
        TestClient(model, auth_token="a-token-of-16-chars-or-more") as trusted,
    ):
        assert stranger.history().status == 401
        assert trusted.history().status == 200


def test_the_service_guard_returns_is_accepted_as_it_is(tmp_path: Path) -> None:
    svc = guard(summed, reference=TRAINING, name="served", db=tmp_path / "log.db")

    with TestClient(svc) as client:
        assert client.predict([[1.0, 1.0, 1.0]]).json()["predictions"] == [3.0]
    assert (tmp_path / "log.db").exists()  # logged as a served request is, and flushed by close()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({}, []), ({"rows": [[1, 2, 3]], "body": b"{}"}, ["body", "rows"])],
    ids=["nothing", "rows-and-body"],
)
def test_a_request_is_given_exactly_one_body(client: TestClient, kwargs: dict[str, object], named: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="expected one of them"):
        client.predict(**kwargs)  # type: ignore[arg-type]


def test_anything_but_a_guarded_model_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"model: .*expected what guard\(\) returned, or a GuardedModel"):
        TestClient(summed)


def test_an_answer_reads_as_text_and_json() -> None:
    answer = Answer(200, b'{"a": 1}', "application/json")

    assert (answer.text, answer.json()) == ('{"a": 1}', {"a": 1})
