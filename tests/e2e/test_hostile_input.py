"""Hostile input against a real `bentoml serve`: never a 5xx, never a crash, every rejection recorded.

One server of ``tests.apps.toy:labelled`` (numeric features a, b, c; a regressor with labels) takes:

* schemathesis requests generated from the service's own OpenAPI schema (``/docs.json``), positive and
  negative, for ``POST /predict``, ``POST /feedback`` and ``GET /health/model`` (which BentoML leaves out
  of the schema, as a mounted ASGI app, so it is described here);
* hand-written hostile requests, each answered with a 4xx whose JSON ``detail`` names the problem, after
  which the service still answers a valid ``/predict``.

The last tests read the SQLite file: every rejected ``/predict`` is a ``rejected`` request, the database
is intact, and the server log holds no traceback.

A second server, ``tests.apps.forest:svc`` (a scikit-learn Pipeline with a string category, one-hot encoded,
and a float32 random forest), takes the values that used to pass validation and crash such a model: a
number for a string category, numbers beyond float32. In process, a property test sends any JSON values to
standard numeric and one-hot scikit-learn pipelines: whatever passes validation, the model never raises.
"""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from guarded_serving.guard import GuardedModel
from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for

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


# -- a scikit-learn Pipeline with a categorical feature --------------------------------------------
# tests.apps.forest: size and weight numeric, colour a string category; `prep` one-hot encodes colour with
# OneHotEncoder's default handle_unknown="error", `forest` works in float32.

FOREST_ROW = {"size": 10.0, "colour": "red", "weight": 50.0}


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("forest")
    server = start_server("tests.apps.forest:svc", directory, db=directory / "forest.db")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def forest_answers() -> dict[int, int]:
    """How many of the forest's answers had each status, for the database check at the end."""
    return {}


def send_to_forest(forest: Server, answers: dict[int, int], rows: list[dict[str, Any]]) -> Any:
    response = forest.client.post("/predict", json={"rows": rows})
    answers[response.status_code] = answers.get(response.status_code, 0) + 1
    return response


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        pytest.param(
            {"colour": 3},
            "row 0, feature 'colour': got 3; expected a category given as a string",
            id="a-number-for-a-string-category",
        ),
        pytest.param({"colour": True}, "feature 'colour': got true", id="a-boolean-for-a-string-category"),
        pytest.param(
            {"size": 1e308},
            "row 0, feature 'size': got 1e+308, far beyond the reference's values; expected a number within ±1.61e+10",
            id="1e308-beyond-float32",
        ),
        pytest.param({"weight": -1e39}, "feature 'weight': got -1e+39", id="minus-1e39-beyond-float32"),
    ],
)
def test_values_the_pipeline_would_crash_on_get_a_422_naming_row_feature_and_expectation(
    forest: Server, forest_answers: dict[int, int], changes: dict[str, Any], detail: str
) -> None:
    response = send_to_forest(forest, forest_answers, [FOREST_ROW, {**FOREST_ROW, **changes}])

    assert response.status_code == 422, response.text
    assert detail.replace("row 0", "row 1") in response.json()["detail"]


def test_a_unit_changed_by_1000_still_reaches_the_model(forest: Server, forest_answers: dict[int, int]) -> None:
    response = send_to_forest(forest, forest_answers, [{**FOREST_ROW, "size": 10_000.0, "weight": 50_000.0}])

    assert response.status_code == 200, response.text


def test_an_unseen_category_the_models_encoder_refuses_is_a_422_naming_the_feature(
    forest: Server, forest_answers: dict[int, int]
) -> None:
    """The reference cannot tell which categories a model refuses, so a new category reaches the model; when the
    model's exception is about that unknown value, the client gets the 422 it can act on, not a 500."""
    response = send_to_forest(forest, forest_answers, [FOREST_ROW, {**FOREST_ROW, "colour": "purple"}])

    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert (problem["row"], problem["feature"]) == (1, "colour")
    assert problem["problem"] == 'got "purple", a category the model was not trained on (it raised ValueError)'
    assert "'red'" in problem["expected"]


def test_the_forest_records_every_refusal_as_rejected_in_the_stage_that_refused_it(
    forest: Server, forest_answers: dict[int, int]
) -> None:
    send_to_forest(forest, forest_answers, [{**FOREST_ROW, "colour": 7}])
    send_to_forest(forest, forest_answers, [{**FOREST_ROW, "colour": "purple"}])
    rejected = forest_answers.get(422, 0)

    def counts() -> dict[str, int]:
        return dict(query(forest.db, "SELECT status, count(*) FROM requests GROUP BY status"))

    assert wait_for(lambda: counts().get("rejected") == rejected), counts()
    assert "error" not in counts()
    refusals = query(forest.db, "SELECT failed_stage, error FROM requests WHERE status = 'rejected'")
    by_model = [error for stage, error in refusals if stage == "prep"]
    assert len(by_model) >= 1
    assert all("'colour'" in error and "purple" in error for error in by_model)
    assert {stage for stage, _ in refusals} == {"prep", "validate"}
    pipeline = forest.client.get("/health/model").json()["checks"]["pipeline"]
    assert pipeline["stages"]["prep"]["errors"] == 0
    assert "failed" not in pipeline["summary"] or "0.0% failed" in pipeline["summary"]
    assert tracebacks(forest) == []


# -- in process: no value that passes validation makes a scikit-learn model raise ------------------


def _float32(X: Any) -> Any:
    return np.asarray(X, dtype=np.float32)


NUMERIC_FEATURES = ["age", "income", "ratio", "year"]
MIXED_FEATURES = ["age", "city", "rooms", "income"]


def _numeric_training(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    return np.c_[
        rng.normal(40, 12, n), rng.lognormal(10, 1, n), rng.uniform(0, 1e-3, n), rng.integers(2000, 2021, n).astype(float)
    ]


def _mixed_training(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    X = np.empty((n, 4), dtype=object)
    X[:, 0] = rng.normal(40, 12, n)
    X[:, 1] = rng.choice(["Paris", "Lyon", "Nantes"], n)
    X[:, 2] = rng.integers(1, 6, n)
    X[:, 3] = rng.lognormal(10, 1, n)
    return X


def _numeric_models() -> dict[str, Any]:
    return {
        "scaler-logistic": Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression())]),
        "scaler-float32-logistic": Pipeline(
            [("scale", StandardScaler()), ("float32", FunctionTransformer(_float32)), ("classify", LogisticRegression())]
        ),
        "float32-scaler-logistic": Pipeline(
            [("float32", FunctionTransformer(_float32)), ("scale", StandardScaler()), ("classify", LogisticRegression())]
        ),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0),
    }


def _one_hot_models() -> dict[str, Any]:
    def prep() -> ColumnTransformer:
        return ColumnTransformer(
            [("scale", StandardScaler(), [0, 3]), ("one-hot", OneHotEncoder(handle_unknown="ignore"), [1, 2])]
        )

    return {
        "one-hot-logistic": Pipeline([("prep", prep()), ("classify", LogisticRegression())]),
        "one-hot-forest": Pipeline([("prep", prep()), ("forest", RandomForestClassifier(n_estimators=5, random_state=0))]),
    }


def _training(name: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    return _numeric_training(rng) if name in _numeric_models() else _mixed_training(rng)


def _guarded(name: str) -> GuardedModel:
    X = _training(name)
    if name in _numeric_models():
        model, features, categorical = _numeric_models()[name], NUMERIC_FEATURES, None
    else:
        model, features, categorical = _one_hot_models()[name], MIXED_FEATURES, ["rooms"]
    y = (np.asarray(X[:, 0], dtype=float) > 40).astype(int)
    model.fit(X, y)
    return GuardedModel(
        model.predict_proba, reference=X, feature_names=features, categorical=categorical, name=name, db=":memory:"
    )


# Any JSON value but null (a model without an imputer fails on a missing value: `allow_missing=False` refuses
# them), from everyday to extreme: floats of any size, integers beyond float range, strings, booleans.
ANY_VALUE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, 1, -1, 2.5, 1e9, -1e12, 3.4e38, 3.5e38, 1e300, -1e308, 2**63, "Paris", "", "Lyon", True]),
    st.text(max_size=4),
    st.booleans(),
)


@pytest.mark.parametrize("name", [*_numeric_models(), *_one_hot_models()])
def test_no_value_that_passes_validation_makes_a_scikit_learn_model_raise(name: str) -> None:
    guarded = _guarded(name)
    width = len(guarded.schema.names)
    near_limits = st.sampled_from([v * s for v in guarded.schema.limits if math.isfinite(v) for s in (1, -1, 0.999, 1.001)])
    outcomes: dict[int, int] = {}
    failures: list[str] = []

    # each column also draws its own training values, so that whole rows that pass are common, not luck
    training = _training(name)
    column = [st.one_of(ANY_VALUE, near_limits, st.sampled_from(training[:50, j].tolist())) for j in range(width)]
    row = st.tuples(*column).map(list)

    # Training rows pass, so the 200 path is reached however the draws fall: a one-hot model's drawn rows passed
    # 5 times in 300, and after other suites had run in the same process, none (Hypothesis's draws moved).
    @settings(max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @example(rows=training[:3].tolist())
    @given(rows=st.lists(row, min_size=1, max_size=3))
    def send(rows: list[list[Any]]) -> None:
        reply = guarded.handle_predict(json.dumps({"rows": rows}).encode())
        outcomes[reply.status] = outcomes.get(reply.status, 0) + 1
        if reply.status >= 500:
            failures.append(f"{reply.body[:300]!r} for {rows!r:.300}")

    try:
        send()
    finally:
        guarded.close()
    assert not failures, f"{len(failures)} model failures, first ones:\n" + "\n".join(failures[:5])
    assert set(outcomes) == {200, 422}  # both reached: values that pass and values that are refused
