"""guarded_serving.testing answers as a real `bentoml serve` does: same status, media type and body, request by request.

Also pins the HTTP answers themselves: each request's expected status is written here, so a change of
contract shows as a failure of this file as well as of tests/test_testing.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from guarded_serving import GuardedModel
from guarded_serving.testing import Answer, TestClient
from tests.apps.toy import REFERENCE, toy_predict
from tests.fixtures.servers import Server

ROWS = [[0.1, 0.2, 0.3], [1.0, -1.0, 2.5]]
# (what is sent, the status both answer): POST bodies to /predict or /feedback, GET query strings to the others
REQUESTS: list[tuple[str, str, bytes | str, dict[str, str], int]] = [
    ("POST", "/predict", json.dumps({"rows": ROWS}).encode(), {}, 200),
    ("POST", "/predict", json.dumps({"rows": [{"a": 1, "b": 2, "c": 3}]}).encode(), {}, 200),
    ("POST", "/predict", json.dumps({"rows": [[0.1, "abc", 0.3], [None, 1, 2]]}).encode(), {}, 422),
    ("POST", "/predict", json.dumps({"rows": [[0.1, 0.2]]}).encode(), {}, 422),
    ("POST", "/predict", json.dumps({"rows": [[1, 2, 3]] * 51}).encode(), {}, 413),
    ("POST", "/predict", b"{not json", {}, 400),
    ("POST", "/predict", json.dumps({"rows": ROWS}).encode(), {"content-type": "text/plain"}, 415),
    ("POST", "/predict", json.dumps({"rows": [[999, 0, 0]]}).encode(), {}, 500),
    ("POST", "/feedback", json.dumps({"request_id": "never-sent", "labels": [1.0]}).encode(), {}, 404),
    ("POST", "/feedback", json.dumps({"labels": [1.0]}).encode(), {}, 422),
    ("GET", "/health/model", "fail_on=sometimes", {}, 400),
    ("GET", "/health/model/history", "limit=0", {}, 400),
    ("GET", "/health/model/history", "since=not-a-time", {}, 400),
]


def over_http(server: Server, method: str, path: str, sent: bytes | str, headers: dict[str, str]) -> Answer:
    if method == "POST":
        answer = server.client.post(path, content=sent, headers={"content-type": "application/json", **headers})
    else:
        answer = server.client.get(f"{path}?{sent}", headers=headers)
    return Answer(answer.status_code, answer.content, answer.headers["content-type"])


def in_process(client: TestClient, method: str, path: str, sent: bytes | str, headers: dict[str, str]) -> Answer:
    content_type = headers.get("content-type", "application/json")
    request_id = headers.get("x-request-id")
    if path == "/predict":
        return client.predict(body=sent, content_type=content_type, request_id=request_id)  # type: ignore[arg-type]
    if path == "/feedback":
        return client.feedback(body=sent, content_type=content_type)  # type: ignore[arg-type]
    query: dict[str, Any] = dict(part.split("=", 1) for part in str(sent).split("&"))
    return client.health(**query) if path == "/health/model" else client.history(**query)


def comparable(answer: Answer) -> tuple[int, str, Any]:
    """Status, media type and JSON body; the request id of an answer that made one up is left out."""
    body = answer.json()
    if isinstance(body, dict) and not body.get("request_id", "").startswith("pinned-"):
        body.pop("request_id", None)
    return answer.status, answer.media_type, body


def test_the_test_client_answers_every_request_as_the_served_model_does(serve: Callable[..., Server]) -> None:
    server = serve("tests.apps.toy:one")
    model = GuardedModel(toy_predict, reference=REFERENCE, name="toy", max_request_rows=50, db=":memory:")

    with TestClient(model) as client:
        for number, (method, path, sent, headers, status) in enumerate(REQUESTS):
            pinned = {**headers, "x-request-id": f"pinned-{number}"} if path == "/predict" else headers
            http, local = over_http(server, method, path, sent, pinned), in_process(client, method, path, sent, pinned)

            assert http.status == status, (path, sent, http.body)
            assert comparable(local) == comparable(http), (path, sent)


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_the_health_answer_has_the_media_type_of_the_served_one(serve: Callable[..., Server], accept: str) -> None:
    server = serve("tests.apps.toy:one")
    model = GuardedModel(toy_predict, reference=REFERENCE, name="toy", max_request_rows=50, db=":memory:")

    with TestClient(model) as client:
        http = server.client.get("/health/model", headers={"accept": accept})
        local = client.health(accept=accept)

    assert (local.status, local.media_type) == (http.status_code, http.headers["content-type"])
