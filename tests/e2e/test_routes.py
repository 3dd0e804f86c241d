"""Who answers ``POST /predict``: the guard itself, inside BentoML's middleware, on a service as ``guard()`` makes it
(guarded_serving.service._DirectPredict), and BentoML's own API dispatch, with the same answers, where something
must run between the two (CORS, a middleware added after ``guard()``, ``tracing=``: tests/apps/routes.py)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.apps.routes import ORIGIN
from tests.e2e.test_service import logged
from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for

# BentoML's dispatch refuses this content type itself (its pickle serde is not for a public server): only a
# request the guard answers gets the guard's problem+json and is logged.
PICKLED = {"Content-Type": "application/vnd.bentoml+pickle"}
GOOD = {"rows": [[1, 2, 3], {"a": 1.5, "b": 0, "c": -0.5}]}
BAD = {"rows": [[1, 2, 3], [1, "x", 3]]}

DIRECT = {"toy": ("tests.apps.toy:one", ""), "toy-prefixed": ("tests.apps.routes:prefixed", "/v1")}
DISPATCHED = {
    "toy-cors": ("tests.apps.routes:cors", {"Origin": ORIGIN}, "access-control-allow-origin", re.escape(ORIGIN)),
    "toy-stamped": ("tests.apps.routes:stamped", {}, "x-stamp", "seen"),
    "toy-traced": ("tests.apps.routes:traced", {}, "x-bentoml-request-id", "[0-9a-f]{16}"),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    targets = DIRECT | {name: (target, "") for name, (target, *_) in DISPATCHED.items()}
    started: dict[str, Server] = {}
    try:
        for name, (target, prefix) in targets.items():
            # Each its own BENTOML_HOME: a `bentoml serve` empties the Prometheus directory kept there at start.
            home = tmp_path_factory.mktemp(name)
            started[name] = start_server(target, home, prefix=prefix, env={"BENTOML_HOME": str(home / "bentoml")})
        yield started
    finally:
        for server in started.values():
            server.stop()


def without_id(answer: Any) -> Any:
    return {k: v for k, v in answer.items() if k != "request_id"}


@pytest.mark.parametrize("name", list(DIRECT))
def test_the_guard_answers_predict_itself_so_every_refusal_is_its_own_and_logged(servers: dict[str, Server], name: str) -> None:
    server, prefix = servers[name], DIRECT[name][1]

    refused = server.client.post("/predict", content=b"\x80\x04N.", headers=PICKLED)
    answered = server.client.post("/predict", json=GOOD)

    assert refused.status_code == 415
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["server"] == f"BentoML Service/{name}"  # as BentoML's dispatch sets it
    problem = refused.json()
    assert "Content-Type 'application/vnd.bentoml+pickle'; expected Content-Type: application/json" in problem["detail"]
    assert logged(server, problem["request_id"])[0][0] == "rejected"
    assert answered.json()["predictions"] == [6.0, 1.0]
    assert logged(server, answered.json()["request_id"])[0][:2] == ("ok", 2)
    metrics = server.client.get("/metrics").text  # BentoML's request metrics still count what the guard answers
    assert f'bentoml_service_request_total{{endpoint="{prefix}/predict",http_response_code="415"' in metrics


@pytest.mark.parametrize("name", list(DISPATCHED))
def test_bentoml_dispatches_predict_where_something_runs_in_between_and_the_answers_are_the_same(
    servers: dict[str, Server], name: str
) -> None:
    server, direct = servers[name], servers["toy"]
    _, headers, header, pattern = DISPATCHED[name]

    answers = [s.client.post("/predict", json=body, headers=headers) for s in (server, direct) for body in (GOOD, BAD)]
    refused = server.client.post("/predict", content=b"\x80\x04N.", headers={**PICKLED, **headers})

    good, bad, direct_good, direct_bad = answers
    assert (good.status_code, bad.status_code) == (direct_good.status_code, direct_bad.status_code) == (200, 422)
    assert without_id(good.json()) == without_id(direct_good.json()) == {"predictions": [6.0, 1.0]}
    assert without_id(bad.json()) == without_id(direct_bad.json())
    assert logged(server, good.json()["request_id"])[0][:2] == ("ok", 2)
    assert logged(server, bad.json()["request_id"])[0][0] == "rejected"
    assert re.fullmatch(pattern, good.headers.get(header, ""))
    assert re.fullmatch(pattern, bad.headers.get(header, ""))
    assert header not in direct_good.headers
    assert refused.status_code == 415
    assert refused.headers["content-type"] == "application/json"  # BentoML's refusal, before the guard's parser


def in_progress(server: Server) -> float:
    """BentoML's gauge of the /predict requests being answered now."""
    found = re.search(r'request_in_progress\{endpoint="/predict"[^}]*\} (\S+)', server.client.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_a_client_gone_before_its_body_arrived_leaves_no_error_behind(servers: dict[str, Server]) -> None:
    server = servers["toy"]
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port)) as sock:
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head + b'{"rows": [[1, 2')
        assert wait_for(lambda: in_progress(server) == 1.0)  # the guard is waiting for the rest of the body
    assert wait_for(lambda: in_progress(server) == 0.0)  # not held until BentoML's timeout (60 s) answers it

    assert "Exception" not in server.logs()
    assert 'endpoint="/predict",http_response_code="499"' in server.client.get("/metrics").text
    assert server.client.post("/predict", json=GOOD).status_code == 200
