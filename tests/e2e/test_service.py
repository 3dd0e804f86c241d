"""End to end: a real `bentoml serve` on 127.0.0.1, real HTTP requests, a real SQLite file."""

from __future__ import annotations

import concurrent.futures
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.fixtures.data import gaussian
from tests.fixtures.servers import Server, start_server
from tests.fixtures.waiting import wait_for


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The toy model (row sums), one worker, max 50 rows per request."""
    server = start_server("tests.apps.toy:one", tmp_path_factory.mktemp("toy"))
    yield server
    server.stop()


def rows_of(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, params))


def logged(server: Server, request_id: str) -> list[tuple[object, ...]]:
    """The (status, rows, error) logged for a request id, once the writer has flushed it."""
    found: list[tuple[object, ...]] = []

    def present() -> bool:
        found[:] = rows_of(server.db, "SELECT status, rows, error FROM requests WHERE request_id = ?", request_id)
        return bool(found)

    wait_for(present)
    return found


def test_predict_answers_one_prediction_per_row_with_a_request_id(toy: Server) -> None:
    response = toy.client.post("/predict", json={"rows": [[1, 2, 3], {"a": 1.5, "b": 0, "c": -0.5}]})

    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == [6.0, 1.0]
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_accepts_a_single_bare_row(toy: Server) -> None:
    response = toy.client.post("/predict", json={"rows": [1, 1, 1]})

    assert response.json()["predictions"] == [3.0]


def test_client_request_id_is_honoured_and_rows_are_logged(toy: Server) -> None:
    response = toy.client.post("/predict", json={"rows": [[1, 2, 3], [4, 5, None]]}, headers={"X-Request-ID": "client-42"})

    assert response.headers["x-request-id"] == "client-42"
    assert response.json()["request_id"] == "client-42"
    assert logged(toy, "client-42") == [("ok", 2, None)]
    rows = rows_of(toy.db, "SELECT row, inputs, outputs FROM rows WHERE request_id = ? ORDER BY row", "client-42")
    assert [(r, json.loads(str(i)), json.loads(str(o))) for r, i, o in rows] == [
        (0, [1, 2, 3], 6.0),
        (1, [4, 5, None], None),  # the model's NaN output is stored as null
    ]


BAD_INPUTS = [
    pytest.param(b'{"rows": [[1, 2', "application/json", 400, "malformed JSON", id="malformed-json"),
    pytest.param(
        b'{"rows": [[1, 2]]}', "application/json", 422, "row 0: the row has 2 values; expected 3 values", id="short-row"
    ),
    pytest.param(
        b'{"rows": [{"a": 1, "b": 2, "z": 3}]}',
        "application/json",
        422,
        "row 0, feature 'z': unknown feature; expected one of",
        id="unknown-feature",
    ),
    pytest.param(
        b'{"rows": [{"a": 1, "b": 2}]}',
        "application/json",
        422,
        "row 0, feature 'c': the feature is missing",
        id="missing-feature",
    ),
    pytest.param(
        b'{"rows": [[1, "abc", 3]]}',
        "application/json",
        422,
        "row 0, feature 'b': got \"abc\"; expected a number",
        id="not-a-number",
    ),
    pytest.param(
        b'{"rows": [[1, 2, 3], [NaN, 2, 3]]}', "application/json", 422, "row 1, feature 'a': NaN is not allowed", id="nan"
    ),
    pytest.param(b'{"rows": [[1, Infinity, 3]]}', "application/json", 422, "feature 'b': Infinity is not allowed", id="infinity"),
    pytest.param(json.dumps({"rows": [[1, 2, 3]] * 51}).encode(), "application/json", 413, "at most 50 rows", id="too-many-rows"),
    pytest.param(b'{"rows": [[1, 2, 3]]}', "text/plain", 415, "expected Content-Type: application/json", id="content-type"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply", id="deep-nesting"),
    pytest.param(b"", "application/json", 400, "body is empty", id="empty-body"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "message"), BAD_INPUTS)
def test_bad_input_gets_a_4xx_naming_the_problem_and_is_recorded_as_rejected(
    toy: Server, body: bytes, content_type: str, status: int, message: str
) -> None:
    response = toy.client.post("/predict", content=body, headers={"Content-Type": content_type})

    assert response.status_code == status
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert message in problem["detail"]
    assert problem["problems"][0]["expected"]
    assert logged(toy, problem["request_id"])[0][0] == "rejected"


def test_model_exception_is_a_500_with_request_id_and_error_class_and_is_recorded(toy: Server) -> None:
    response = toy.client.post("/predict", json={"rows": [[999, 0, 0]]}, headers={"X-Request-ID": "boom-1"})

    assert response.status_code == 500
    assert response.json()["error"] == "ValueError"
    assert response.json()["request_id"] == "boom-1"
    [(status, rows, error)] = logged(toy, "boom-1")
    assert (status, rows) == ("error", 1)
    assert str(error) == "ValueError: the toy model cannot handle 999"


def test_a_result_of_the_wrong_length_is_a_model_error(toy: Server) -> None:
    response = toy.client.post("/predict", json={"rows": [[-2, 0, 0], [1, 1, 1]]}, headers={"X-Request-ID": "short-1"})

    assert response.status_code == 500
    assert "returned 1 results for 2 rows" in str(logged(toy, "short-1")[0][2])


def test_health_model_follows_the_contract(toy: Server) -> None:
    toy.client.post("/predict", json={"rows": [[0, 0, 0]]})

    report = toy.client.get("/health/model").json()

    assert set(report) == {"status", "model", "generated_at", "window", "totals", "checks"}
    assert report["model"] == {"name": "toy", "version": None}
    assert set(report["totals"]) == {"requests", "rows", "rejected", "errors"}
    assert set(report["window"]) == {"rows", "capacity"}
    assert {"pipeline", "store", "environment"} <= set(report["checks"])
    for check in report["checks"].values():
        assert check["status"] in {"ok", "warn", "alert", "insufficient_data"}
        assert check["summary"].endswith(".")
    assert {"validate", "predict", "serialize", "log"} <= set(report["checks"]["pipeline"]["stages"])


def test_bentoml_own_endpoints_keep_working(toy: Server) -> None:
    for path in ("/healthz", "/livez", "/readyz", "/metrics", "/docs.json"):
        assert toy.client.get(path).status_code == 200, path


def test_openapi_schema_documents_predict(toy: Server) -> None:
    schema = toy.client.get("/docs.json").json()

    assert "/predict" in schema["paths"]


def test_environment_drift_and_deprecation_warnings_make_the_environment_check_warn(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = serve("tests.apps.toy:drifted")
    for _ in range(3):
        assert server.client.post("/predict", json={"rows": [[-1, 0, 0]]}).status_code == 200

    def warned() -> bool:
        check = server.client.get("/health/model").json()["checks"]["environment"]
        return bool(check["warnings"]) and check["warnings"][0]["count"] == 3

    assert wait_for(warned)
    report = server.client.get("/health/model").json()
    env = report["checks"]["environment"]
    assert env["status"] == "warn"
    assert report["status"] == "warn"
    numpy_change = next(c for c in env["changed"] if c["name"] == "numpy")
    assert numpy_change["reference"] == "1.0.0"
    assert numpy_change["current"] == __import__("numpy").__version__
    assert f"numpy 1.0.0 -> {numpy_change['current']}" in env["summary"]
    assert env["missing"] == [{"name": "gone-package", "reference": "0.1", "current": None}]
    [warning] = env["warnings"]
    assert warning["category"] == "DeprecationWarning"
    assert warning["message"] == "toy_predict(rows) is deprecated; call toy_predict_v2"
    source = (Path(__file__).parent.parent / "apps" / "toy.py").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "warnings.warn(" in text)
    assert warning["location"].endswith(f"toy.py:{line}")
    assert server.client.get("/health/model", params={"fail_on": "warn"}).status_code == 503
    assert server.client.get("/health/model", params={"fail_on": "alert"}).status_code == 200


def test_decorator_form_serves_the_function(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("tests.apps.toy:decorated")

    response = server.client.post("/predict", json={"rows": [{"a": 2.5, "b": 0, "c": 0}]})

    assert response.json()["predictions"] == [2.5]
    assert server.client.get("/health/model").json()["model"]["name"] == "toy-decorated"


def test_fail_on_answers_200_while_the_model_is_healthy_and_400_for_a_bad_value(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("tests.apps.toy:decorated")
    assert server.client.get("/health/model").json()["status"] == "insufficient_data"
    healthy = gaussian(2000, 3, seed=1).tolist()  # the toy reference's distribution
    for start in (0, 1000):  # enough rows for the baseline of outputs it takes from served traffic
        server.client.post("/predict", json={"rows": healthy[start : start + 1000]})

    assert server.client.get("/health/model").json()["status"] == "ok"
    assert server.client.get("/health/model", params={"fail_on": "warn"}).status_code == 200
    assert server.client.get("/health/model", params={"fail_on": "alert"}).status_code == 200
    bad = server.client.get("/health/model", params={"fail_on": "bogus"})
    assert bad.status_code == 400
    assert "expected 'warn' or 'alert'" in bad.json()["detail"]


def test_two_workers_agree_on_totals_and_log_every_request(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("tests.apps.toy:two")

    # A new connection per request, so that both workers accept some.
    with httpx.Client(base_url=server.url, timeout=30, headers={"Connection": "close"}) as client:

        def send(i: int) -> int:
            return client.post("/predict", json={"rows": [[i % 100, 1, 2]]}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(1000)))
    assert statuses == [200] * 1000

    def all_counted() -> bool:
        return server.client.get("/health/model").json()["totals"]["requests"] == 1000

    assert wait_for(all_counted, timeout=15)
    for _ in range(20):
        with httpx.Client(base_url=server.url, timeout=30) as fresh:  # new connections spread over workers
            response = fresh.get("/health/model")
        assert response.json()["totals"] == {"requests": 1000, "rows": 1000, "rejected": 0, "errors": 0}
    assert rows_of(server.db, "SELECT count(*), count(DISTINCT worker) FROM requests") == [(1000, 2)]
    assert rows_of(server.db, "SELECT count(*) FROM rows") == [(1000,)]


def test_two_workers_judge_the_same_window_and_name_the_drifted_feature(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("tests.apps.toy:two")
    rng = np.random.default_rng(7)

    def send_until_both_workers_served(phase: str, shift: float, rows: int) -> None:
        """Send ``rows`` rows in 10-row requests on new connections, 8 at a time, then more until both
        workers have answered some of this phase (the kernel decides which worker accepts; bounded)."""
        with httpx.Client(base_url=server.url, timeout=30, headers={"Connection": "close"}) as client:

            def send(request: tuple[int, list[list[float]]]) -> int:
                i, batch = request
                return client.post("/predict", json={"rows": batch}, headers={"X-Request-ID": f"{phase}-{i}"}).status_code

            sent = 0
            for _ in range(10):
                batches = [
                    (sent + k, (rng.normal(size=(10, 3)) + np.array([0.0, shift, 0.0])).tolist()) for k in range(rows // 10)
                ]
                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    assert set(pool.map(send, batches)) == {200}
                sent += rows // 10
                server.client.get("/health/model")  # lets the answering worker flush

                def workers() -> int:
                    found = rows_of(
                        server.db, "SELECT count(DISTINCT worker) FROM requests WHERE request_id LIKE ?", f"{phase}-%"
                    )
                    return int(found[0][0])  # type: ignore[call-overload]

                if wait_for(lambda: workers() == 2, timeout=2):
                    return
        raise AssertionError(f"one worker answered every {phase} request")

    send_until_both_workers_served("healthy", 0.0, 600)
    # Feature 'b' moves by 3 std. More drifted rows than the window holds: across workers the window
    # is the newest rows to within one flush interval, so the rows at the switch may straddle it.
    send_until_both_workers_served("drifted", 3.0, 1400)

    def judged() -> bool:
        return server.client.get("/health/model").json()["window"]["rows"] == 1000

    assert wait_for(judged, timeout=15)
    for _ in range(10):
        with httpx.Client(base_url=server.url, timeout=30) as fresh:
            report = fresh.get("/health/model").json()
        drift = report["checks"]["data_drift"]
        assert report["window"] == {"rows": 1000, "capacity": 1000}
        assert drift["status"] == "alert"
        assert [name for name, f in drift["features"].items() if f["drifted"]] == ["b"]
        assert drift["summary"].startswith("1 of 3 features drifted: b: mean +")
        assert drift["features"]["b"]["mean_shift_std"] > 2.5


def test_feedback_joins_labels_and_an_unknown_id_writes_nothing(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve("tests.apps.toy:labelled")
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(150, 3))
    answer = server.client.post("/predict", json={"rows": rows.tolist()}, headers={"X-Request-ID": "batch-1"})
    assert answer.status_code == 200

    mixed = {"items": [{"request_id": "batch-1", "row": 0, "label": 1.0}, {"request_id": "ghost", "row": 0, "label": 1.0}]}
    refused = server.client.post("/feedback", json=mixed)
    assert refused.status_code == 404
    assert refused.json()["unknown_request_ids"] == ["ghost"]
    assert rows_of(server.db, "SELECT count(*) FROM feedback") == [(0,)]  # nothing half-written

    bad_count = server.client.post("/feedback", json={"request_id": "batch-1", "labels": [1.0, 2.0]})
    assert bad_count.status_code == 422
    assert "2 labels for request 'batch-1'; expected 150 labels, one per row" in bad_count.json()["detail"]

    labels = (rows.sum(axis=1) + 5.0).tolist()  # the model is now 5 off on every row
    accepted = server.client.post("/feedback", json={"request_id": "batch-1", "labels": labels})
    assert accepted.json() == {"accepted": 150, "new": 150, "replaced": 0}
    again = server.client.post("/feedback", json={"items": [{"request_id": "batch-1", "row": 3, "label": labels[3]}]})
    assert again.json() == {"accepted": 1, "new": 0, "replaced": 1}

    concept = server.client.get("/health/model").json()["checks"]["concept_drift"]
    assert concept["status"] == "alert"
    assert (concept["labels_received"], concept["labels_replaced"], concept["labelled_rows"]) == (150, 1, 150)
    assert concept["metric"] == "mae"
    assert concept["current"] == pytest.approx(5.0)
    assert concept["summary"].startswith("mae rose to 5")
    assert rows_of(server.db, "SELECT count(*), sum(updates) FROM feedback") == [(150, 1)]


def test_a_token_protects_feedback_and_the_health_details(serve) -> None:  # type: ignore[no-untyped-def]
    token = "e2e-token-0123456789abcdef"
    server = serve("tests.apps.toy:labelled", env={"GUARDED_SERVING_TOKEN": token})
    answer = server.client.post("/predict", json={"rows": [[1, 2, 3]]}, headers={"X-Request-ID": "auth-1"})
    assert answer.status_code == 200

    assert set(server.client.get("/health/model").json()) == {"status", "model", "generated_at"}
    assert "checks" in server.client.get("/health/model", headers={"Authorization": f"Bearer {token}"}).json()
    assert server.client.get("/health/model", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"}).status_code == 401
    refused = server.client.post("/feedback", json={"request_id": "auth-1", "labels": [6.0]})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    accepted = server.client.post(
        "/feedback", json={"request_id": "auth-1", "labels": [6.0]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert accepted.json() == {"accepted": 1, "new": 1, "replaced": 0}
