"""Hostile input against a real `bentoml serve`: never a 5xx, never a crash, every rejection recorded.

One server of ``tests.apps.toy:labelled`` (numeric features a, b, c; a regressor with labels) takes:

* schemathesis requests generated from the service's own OpenAPI schema (``/docs.json``), positive and
  negative, for ``POST /predict``, ``POST /feedback`` and ``GET /health/model`` (which BentoML leaves out
  of the schema, as a mounted ASGI app, so it is described here);
* hand-written hostile requests, each answered with a 4xx whose JSON ``detail`` names the problem, after
  which the service still answers a valid ``/predict``.

The last tests read the SQLite file: every rejected ``/predict`` is a ``rejected`` request, the database
is intact, and the server log holds no traceback.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from .conftest import Server, start_server, wait_for

MIB = 1024 * 1024
VALID = {"rows": [[1, 2, 3]]}
JSON = "application/json"
RID = b"{RID}"  # replaced by the id of a real, answered prediction


@dataclass
class Observed:
    """What the module's requests got, for the database checks at the end."""

    predict_4xx: int = 0  # POST /predict answers with a 4xx, fuzzed and hand-written
    hostile_ids: dict[str, str] = field(default_factory=dict)  # X-Request-ID of each hand-written POST /predict -> case id


@pytest.fixture(scope="module")
def observed() -> Observed:
    return Observed()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("hostile")
    server = start_server("tests.apps.toy:labelled", directory, db=directory / "server.db")
    yield server
    server.stop()


def tracebacks(server: Server) -> list[str]:
    """Each traceback in the server log, from the line before it to its exception line."""
    lines = server.logs().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j] and not lines[j].startswith(" ")), len(lines) - 1)
            found.append("\n".join(lines[max(i - 1, 0) : end + 1]))
    return found


def still_serving(server: Server) -> bool:
    response = server.client.post("/predict", json=VALID)
    return response.status_code == 200 and response.json()["predictions"] == [6.0]


# -- schemathesis, from the service's own schema ---------------------------------------------------

HEALTH_OPERATION = {
    "get": {
        "parameters": [
            {"name": "fail_on", "in": "query", "required": False, "schema": {"type": "string", "enum": ["warn", "alert"]}}
        ],
        "responses": {
            "200": {"description": "The health report."},
            "400": {"description": "A fail_on other than warn or alert."},
            "503": {"description": "The report's status is at or above fail_on."},
        },
    }
}
RANK = {"ok": 0, "insufficient_data": 0, "warn": 1, "alert": 2}


@pytest.fixture(scope="module")
def schema(server: Server) -> Any:
    loaded = schemathesis.openapi.from_url(server.url + "/docs.json", timeout=30)
    raw = loaded.raw_schema
    assert {"/predict", "/feedback"} <= set(raw["paths"])
    raw["paths"].setdefault("/health/model", HEALTH_OPERATION)
    return schemathesis.openapi.from_dict(raw)


def fuzz_problem(path: str, query: dict[str, Any] | None, status: int, content: bytes) -> str | None:
    """What is wrong with a fuzzed request's answer, or None."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if status == 503 and path == "/health/model":
        fail_on = (query or {}).get("fail_on")
        report_status = body.get("status") if isinstance(body, dict) else None
        if fail_on in ("warn", "alert") and report_status in RANK and RANK[report_status] >= RANK[fail_on]:
            return None  # the documented fail_on answer, not a server error
    if status >= 500:
        return f"a {status}"
    if 400 <= status < 500 and not (isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]):
        return f"a {status} without a JSON 'detail'"
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/predict", id="POST-predict"),
        pytest.param("POST", "/feedback", id="POST-feedback"),
        pytest.param("GET", "/health/model", id="GET-health-model"),
    ],
)
def test_schema_fuzzing_never_gets_a_5xx_and_every_4xx_has_a_detail(
    server: Server, schema: Any, observed: Observed, method: str, path: str, mode: GenerationMode
) -> None:
    failures: list[str] = []

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema[path][method].as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call(base_url=server.url, timeout=60)
        if path == "/predict" and 400 <= response.status_code < 500:
            observed.predict_4xx += 1
        problem = fuzz_problem(path, case.query, response.status_code, response.content)
        if problem is not None:
            sent = {"query": case.query, "headers": case.headers, "body": case.body}
            failures.append(f"{problem}: {response.content[:300]!r}\n    for {method} {path} {sent!r:.600}")

    fuzz()
    assert not failures, f"{len(failures)} bad answers, first ones:\n" + "\n".join(failures[:5])
    assert server.process.poll() is None


# -- hand-written hostile requests -----------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    method: str
    path: str
    body: bytes | Callable[[], bytes] | None = None
    content_type: str | None = JSON
    status: int = 422
    detail: tuple[str, ...] = ()  # each must appear in the answer's "detail"; () for a routing 405 (plain text)
    query: str = ""

    def payload(self) -> bytes | None:
        return self.body() if callable(self.body) else self.body


def predict(body: bytes | Callable[[], bytes] | None, status: int, *detail: str, content_type: str | None = JSON) -> Hostile:
    return Hostile("POST", "/predict", body, content_type, status, detail)


def feedback(body: bytes | Callable[[], bytes] | None, status: int, *detail: str, content_type: str | None = JSON) -> Hostile:
    return Hostile("POST", "/feedback", body, content_type, status, detail)


def big_body() -> bytes:
    return b'{"rows": [[1, 2, 3]], "padding": "' + b"x" * (20 * MIB) + b'"}'


def deep_arrays() -> bytes:
    return b"[" * 200_000 + b"]" * 200_000


def deep_objects() -> bytes:
    return b'{"rows": ' + b'{"a": ' * 200_000 + b"1" + b"}" * 200_000 + b"}"


def one_row(*values: str) -> bytes:
    return ('{"rows": [[' + ", ".join(values) + "]]}").encode()


def named_row(name: str) -> bytes:
    return ('{"rows": [{"' + name + '": 1, "b": 0, "c": 0}]}').encode()


MULTIPART = (
    b"--xyz\r\n"
    b'Content-Disposition: form-data; name="rows"; filename="rows.json"\r\n'
    b"Content-Type: application/json\r\n\r\n"
    b'{"rows": [[1, 2, 3]]}\r\n'
    b"--xyz--\r\n"
)
HUGE_INT = str(10**400)

HOSTILE = [
    # size and shape
    pytest.param(predict(big_body, 413, "the body has", "at most 10485760 bytes"), id="predict-20MB-body"),
    pytest.param(predict(deep_arrays, 400, "nested too deeply"), id="predict-200k-nested-arrays"),
    pytest.param(predict(deep_objects, 400, "nested too deeply"), id="predict-200k-nested-objects-in-rows"),
    pytest.param(
        predict(lambda: json.dumps({"rows": [[0.5] * 1_000_000]}).encode(), 422, "row 0", "1000000 values", "expected 3 values"),
        id="predict-million-element-row",
    ),
    pytest.param(
        predict(lambda: json.dumps({"rows": [[1, 2, 3]] * 1001}).encode(), 413, "1001 rows", "at most 1000 rows"),
        id="predict-1001-rows",
    ),
    # non-finite and out-of-range numbers
    pytest.param(predict(one_row("NaN", "0", "0"), 422, "feature 'a'", "NaN is not allowed"), id="predict-NaN-literal"),
    pytest.param(
        predict(one_row("0", "Infinity", "0"), 422, "feature 'b'", "Infinity is not allowed"), id="predict-Infinity-literal"
    ),
    pytest.param(
        predict(b'{"rows": [{"a": 0, "b": 0, "c": -Infinity}]}', 422, "feature 'c'", "-Infinity is not allowed"),
        id="predict-minus-Infinity-literal",
    ),
    pytest.param(predict(one_row("1e400", "0", "0"), 422, "feature 'a'"), id="predict-1e400-overflows-to-infinity"),
    pytest.param(predict(one_row(HUGE_INT, "0", "0"), 422, "feature 'a'"), id="predict-int-10-pow-400"),
    pytest.param(predict(one_row("9" * 5000, "0", "0"), 400, "unreadable number"), id="predict-int-with-5000-digits"),
    # odd unicode as values of numeric features (the toy model has no categorical feature)
    pytest.param(
        predict(one_row(r'"\ud800"', "0", "0"), 422, "feature 'a'", "expected a number"), id="predict-lone-surrogate-value"
    ),
    pytest.param(
        predict(one_row("0", r'"x\udfffy"', "0"), 422, "feature 'b'", "expected a number"), id="predict-lone-low-surrogate"
    ),
    pytest.param(
        predict(one_row("0", '"\u200f\u202e42"', "0"), 422, "feature 'b'", "expected a number"), id="predict-RTL-marks-value"
    ),
    pytest.param(predict(one_row("0", "0", r'"4\u00002"'), 422, "feature 'c'", "expected a number"), id="predict-NUL-in-value"),
    pytest.param(predict(one_row('"\U0001f916"', "0", "0"), 422, "feature 'a'", "expected a number"), id="predict-emoji-value"),
    pytest.param(
        predict(one_row(r'"\ud83e\udd16"', "0", "0"), 422, "feature 'a'", "expected a number"), id="predict-escaped-emoji"
    ),
    # odd unicode as feature names
    pytest.param(predict(named_row(r"\ud800"), 422, "unknown feature", r"\ud800"), id="predict-lone-surrogate-name"),
    pytest.param(predict(named_row(r"\u202ea"), 422, "unknown feature", r"\u202e"), id="predict-RTL-override-name"),
    pytest.param(predict(named_row(r"a\u0000"), 422, "unknown feature", r"\x00"), id="predict-NUL-in-name"),
    pytest.param(predict(named_row("\U0001f916"), 422, "unknown feature", "expected one of"), id="predict-emoji-name"),
    pytest.param(
        predict(named_row("\u0430"), 422, "unknown feature", "expected one of ['a', 'b', 'c']"), id="predict-cyrillic-a"
    ),
    pytest.param(predict(b'{"rows": [[1, 2, 3]], "\\ud800": 1}', 422, "unknown field"), id="predict-lone-surrogate-field"),
    # bytes that are not UTF-8
    pytest.param(predict(b'{"rows": [["\xff\xfe", 0, 0]]}', 400, "not UTF-8"), id="predict-invalid-utf8"),
    pytest.param(predict(b'{"rows": [["\xed\xa0\x80", 0, 0]]}', 400, "not UTF-8"), id="predict-utf8-encoded-surrogate"),
    pytest.param(predict(b'{"rows": [["caf\xe9", 0, 0]]}', 400, "not UTF-8"), id="predict-latin1-body"),
    # wrong content types
    pytest.param(predict(b'{"rows": [[1, 2, 3]]}', 415, "text/plain", content_type="text/plain"), id="predict-text-plain"),
    pytest.param(
        predict(MULTIPART, 415, "multipart/form-data", content_type="multipart/form-data; boundary=xyz"), id="predict-multipart"
    ),
    pytest.param(
        predict(b"rows=1&rows=2&rows=3", 415, "x-www-form-urlencoded", content_type="application/x-www-form-urlencoded"),
        id="predict-form-urlencoded",
    ),
    # empty and not-an-object bodies
    pytest.param(predict(b"", 400, "body is empty"), id="predict-empty-body"),
    pytest.param(predict(b" \r\n\t ", 400, "body is empty"), id="predict-whitespace-body"),
    pytest.param(predict(b"42", 422, "the body is 42"), id="predict-number-body"),
    pytest.param(predict(b'"rows"', 422, 'the body is "rows"'), id="predict-string-body"),
    pytest.param(predict(b"null", 422, "the body is null"), id="predict-null-body"),
    # wrong methods: BentoML's router answers 405 in plain text
    pytest.param(Hostile("GET", "/predict", status=405, content_type=None), id="GET-predict"),
    pytest.param(Hostile("PUT", "/feedback", b"{}", status=405), id="PUT-feedback"),
    pytest.param(Hostile("DELETE", "/health/model", status=405, content_type=None), id="DELETE-health-model"),
    # feedback
    pytest.param(feedback(big_body, 413, "at most 10485760 bytes"), id="feedback-20MB-body"),
    pytest.param(feedback(deep_arrays, 400, "nested too deeply"), id="feedback-200k-nested-arrays"),
    pytest.param(feedback(b'{"request_id": "x"}', 415, "text/plain", content_type="text/plain"), id="feedback-text-plain"),
    pytest.param(feedback(b"", 400, "body is empty"), id="feedback-empty-body"),
    pytest.param(feedback(b"null", 422, "neither form"), id="feedback-null-body"),
    pytest.param(feedback(b'{"request_id": "\xff", "labels": [1]}', 400, "not UTF-8"), id="feedback-invalid-utf8"),
    pytest.param(
        feedback(rb'{"request_id": "a\u0000b", "labels": [1]}', 404, "unknown request id"), id="feedback-NUL-in-request-id"
    ),
    pytest.param(
        feedback(rb'{"request_id": "\ud800", "labels": [1]}', 422, "is not valid text"), id="feedback-lone-surrogate-request-id"
    ),
    pytest.param(
        feedback(rb'{"items": [{"request_id": "\udfff", "row": 0, "label": 1}]}', 422, "is not valid text"),
        id="feedback-lone-surrogate-item-id",
    ),
    pytest.param(
        feedback(b'{"request_id": "{RID}", "labels": [' + HUGE_INT.encode() + b"]}", 422, "label", "finite number"),
        id="feedback-int-10-pow-400-label",
    ),
    pytest.param(
        feedback(b'{"items": [{"request_id": "{RID}", "row": 0, "label": NaN}]}', 422, "label", "NaN"), id="feedback-NaN-label"
    ),
    pytest.param(
        feedback(b'{"request_id": "{RID}", "labels": [-Infinity]}', 422, "label", "Infinity"), id="feedback-Infinity-label"
    ),
    pytest.param(
        feedback('{"request_id": "{RID}", "labels": ["\u202e1"]}'.encode(), 422, "label", "finite number"),
        id="feedback-RTL-label",
    ),
    pytest.param(
        feedback(b'{"request_id": "{RID}", "labels": [1], "\\ud800": 0}', 422, "neither form"), id="feedback-lone-surrogate-field"
    ),
    # health
    pytest.param(Hostile("GET", "/health/model", status=400, detail=("fail_on",), query="fail_on=%00"), id="health-NUL-fail-on"),
    pytest.param(
        Hostile("GET", "/health/model", status=400, detail=("fail_on",), query="fail_on=%E2%80%AEwarn"), id="health-RTL-fail-on"
    ),
    pytest.param(
        Hostile("GET", "/health/model", status=400, detail=("fail_on",), query="fail_on=%ED%A0%80"),
        id="health-encoded-surrogate-fail-on",
    ),
]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_request_gets_a_4xx_naming_the_problem_and_the_service_survives(
    server: Server, observed: Observed, case: Hostile, request: pytest.FixtureRequest
) -> None:
    body = case.payload()
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    if body is not None and RID in body:
        answered = server.client.post("/predict", json=VALID)
        assert answered.status_code == 200
        body = body.replace(RID, answered.json()["request_id"].encode())
    if (case.method, case.path) == ("POST", "/predict"):
        request_id = f"hostile-{uuid.uuid4().hex}"
        headers["X-Request-ID"] = request_id
        observed.hostile_ids[request_id] = request.node.callspec.id
    url = case.path + (f"?{case.query}" if case.query else "")

    response = server.client.request(case.method, url, content=body, headers=headers, timeout=120)

    if (case.method, case.path) == ("POST", "/predict") and 400 <= response.status_code < 500:
        observed.predict_4xx += 1
    survived = server.process.poll() is None and still_serving(server)
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}\n" + "\n".join(tracebacks(server)[-1:])
    expected = case.status
    assert response.status_code == expected, response.text[:500]
    if case.detail:
        assert response.headers["content-type"].startswith("application/problem+json")
        detail = response.json()["detail"]
        for needle in case.detail:
            assert needle in detail
    else:
        assert "Method Not Allowed" in response.text
    assert survived, "the service no longer answers a valid /predict"


# -- what the database and the log say afterwards --------------------------------------------------


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql, params))


def test_every_rejected_predict_is_recorded_and_the_database_is_intact(server: Server, observed: Observed) -> None:
    def rejected() -> int:
        return int(query(server.db, "SELECT count(*) FROM requests WHERE status = 'rejected'")[0][0])

    wait_for(lambda: rejected() >= observed.predict_4xx)
    assert rejected() == observed.predict_4xx
    totals = query(server.db, "SELECT rejected FROM totals WHERE model = 'toy-labelled'")
    assert (totals[0][0] if totals else 0) == observed.predict_4xx
    statuses = dict(query(server.db, "SELECT request_id, status FROM requests WHERE request_id LIKE 'hostile-%'"))
    not_rejected = {
        case: statuses.get(rid, "not recorded") for rid, case in observed.hostile_ids.items() if statuses.get(rid) != "rejected"
    }
    assert not not_rejected, f"hand-written hostile /predict requests not recorded as rejected: {not_rejected}"
    assert query(server.db, "PRAGMA integrity_check") == [("ok",)]


def test_the_service_is_alive_healthy_and_logged_no_traceback(server: Server, observed: Observed) -> None:
    assert server.process.poll() is None
    assert still_serving(server)
    report = server.client.get("/health/model")
    assert report.status_code == 200
    assert report.json()["totals"]["rejected"] >= observed.predict_4xx
    found = tracebacks(server)
    summary = "\n".join(f"  {t.splitlines()[-1]}" for t in found)
    assert not found, f"{len(found)} tracebacks in {server.log}:\n{summary}\nthe last:\n{found[-1] if found else ''}"
