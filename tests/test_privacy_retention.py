"""What reaches disk, for how long, and who may read the details: redaction, sampling, retention, auth."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guarded_serving import ConfigurationError, GuardedModel, Monitor, Reference
from guarded_serving.monitor import recording
from guarded_serving.store import RequestRecord, StoreOptions
from guarded_serving.store.sqlite import SqliteStore
from tests.fixtures.data import gaussian

TRAINING = gaussian(400, 3, seed=11)
TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def age_ssn_income_reference() -> Reference:
    return Reference.from_data(TRAINING, feature_names=["age", "ssn", "income"])


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def test_redacted_features_never_reach_disk_and_are_not_judged(age_ssn_income_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with Monitor(age_ssn_income_reference, db=db, window=200, redact=["ssn"]) as monitor:
        monitor.observe(TRAINING[:200], [0.0] * 200)
        monitor.flush()
        report = monitor.health().to_json()
        chunks = list(monitor.store.window_chunks("model"))  # type: ignore[union-attr]

    inputs = [json.loads(i) for (i,) in query(db, "SELECT inputs FROM rows")]
    assert all(row[1] is None for row in inputs)
    assert all(row[0] is not None for row in inputs)
    assert all(np.isnan(chunk.inputs[:, 1]).all() for chunk in chunks)
    assert "ssn" not in report["checks"]["data_drift"]["features"]
    assert "ssn" not in report["checks"]["data_quality"]["features"]
    assert report["checks"]["data_quality"]["status"] == "ok"


def test_without_logged_inputs_rows_keep_outputs_and_drift_is_judged_in_memory(
    age_ssn_income_reference: Reference, tmp_path: Path
) -> None:
    db = tmp_path / "log.db"
    with Monitor(age_ssn_income_reference, db=db, window=200, log_inputs=False) as monitor:
        monitor.observe(TRAINING[:200] + np.array([0.0, 0.0, 5.0]), [1.5] * 200)
        monitor.flush()
        drift = monitor.health().check("data_drift")

    assert query(db, "SELECT count(*), count(inputs), count(outputs) FROM rows") == [(200, 0, 200)]
    assert query(db, "SELECT count(*) FROM window") == [(0,)]
    assert [name for name, f in drift.details.features.items() if f.drifted] == ["income"]


def test_sampling_logs_a_fraction_of_rows_but_counts_every_request(age_ssn_income_reference: Reference, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with Monitor(age_ssn_income_reference, db=db, sample_rate=0.1) as monitor:
        for i in range(1000):
            monitor.observe(TRAINING[i % 400 : i % 400 + 1], [0.0])
        monitor.flush()
        totals = monitor.totals()

    (logged,) = query(db, "SELECT count(*) FROM rows")[0]
    assert 60 <= logged <= 140  # 10 % of 1,000, seeded
    assert totals.requests == 1000
    assert query(db, "SELECT count(*) FROM requests") == [(1000,)]


def served(tmp_path: Path, **privacy: Any) -> tuple[GuardedModel, list[bytes]]:
    """A guarded numeric model with a store and ``privacy`` settings, and 40 numeric bodies (5 rows each)."""
    guarded = GuardedModel(lambda x: np.asarray(x).sum(axis=1), reference=TRAINING, db=tmp_path / "log.db", **privacy)
    bodies = [json.dumps({"rows": TRAINING[5 * k : 5 * k + 5].tolist()}, indent=1).encode() for k in range(40)]
    return guarded, bodies


def test_inputs_that_are_not_written_are_never_decoded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """log_inputs=False: the request's JSON text is not parsed a second time only to be dropped (~40 µs a
    64-row request, a third of the guard's work); the rows reach the store without inputs, with outputs."""
    decoded: list[str] = []
    monkeypatch.setattr(recording, "loads", lambda text: decoded.append(text) or json.loads(text))
    guarded, bodies = served(tmp_path, log_inputs=False)
    guarded.start()
    try:
        assert all(guarded.handle_predict(b, "application/json").status == 200 for b in bodies)
        assert guarded.monitor is not None
        assert guarded.monitor.flush()
    finally:
        guarded.close()

    assert decoded == []
    assert query(tmp_path / "log.db", "SELECT count(*), count(inputs), count(outputs) FROM rows") == [(200, 0, 200)]


def test_sampled_requests_log_the_clients_own_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With sample_rate, a request sampled in is stored as the common path stores it: the client's text as sent
    (not decoded and written again), the others without inputs or outputs."""
    decoded: list[str] = []
    monkeypatch.setattr(recording, "loads", lambda text: decoded.append(text) or json.loads(text))
    guarded, bodies = served(tmp_path, sample_rate=0.5)
    guarded.start()
    try:
        ids = [guarded.handle_predict(b, "application/json").headers["X-Request-ID"] for b in bodies]
        assert guarded.monitor is not None
        assert guarded.monitor.flush()
    finally:
        guarded.close()

    stored = dict(query(tmp_path / "log.db", "SELECT request_id, inputs FROM requests"))
    sent = {rid: b.decode()[b.decode().index("[") : b.decode().rindex("]") + 1] for rid, b in zip(ids, bodies, strict=True)}
    logged = [rid for rid in ids if stored[rid] is not None]
    assert 8 <= len(logged) <= 32  # half of 40, seeded
    assert all(stored[rid] == sent[rid] for rid in logged)
    assert decoded == []


def test_a_redacted_feature_of_a_numeric_body_never_reaches_disk_though_the_model_sees_it(tmp_path: Path) -> None:
    """Numeric rows take the fast path (simdjson to a matrix) with a redacted feature too: the model gets every
    value, and what is stored, the logged rows and the stored window, has the feature blanked."""
    seen: list[np.ndarray] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(np.array(x))
        return np.asarray(x).sum(axis=1)

    names = ["age", "ssn", "income"]
    guarded = GuardedModel(predict, reference=TRAINING, feature_names=names, db=tmp_path / "log.db", redact=["ssn"])
    sent = [[31, 123456789, 52000.5], [44.5, 987654321, 61000]]
    guarded.start()
    try:
        reply = guarded.handle_predict(json.dumps({"rows": sent}).encode(), "application/json")
        assert guarded.monitor is not None
        assert guarded.monitor.flush()
        chunks = list(guarded.monitor.store.window_chunks(guarded.name))  # type: ignore[union-attr]
    finally:
        guarded.close()

    assert reply.status == 200
    assert seen[-1].tolist() == [[31.0, 123456789.0, 52000.5], [44.5, 987654321.0, 61000.0]]
    (stored,) = query(tmp_path / "log.db", "SELECT inputs FROM requests")
    assert json.loads(stored[0]) == [[31, None, 52000.5], [44.5, None, 61000]]
    assert "123456789" not in stored[0]
    assert "987654321" not in stored[0]
    assert all(np.isnan(chunk.inputs[:, 1]).all() for chunk in chunks)
    assert [chunk.inputs[:, [0, 2]].tolist() for chunk in chunks] == [[[31.0, 52000.5], [44.5, 61000.0]]]


def record(i: int, ts: float = 1_700_000_000.0) -> RequestRecord:
    return RequestRecord(f"r{i}", ts, "m", None, "ok", 2, 1.0, {}, inputs=[[1.0], [2.0]], outputs=[0, 1])


def test_max_rows_keeps_only_the_newest_rows(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    with SqliteStore(db, StoreOptions(max_rows=100)) as store:
        for i in range(300):
            store.put(record(i))
        store.flush()
        store.prune()

    assert query(db, "SELECT count(*) FROM rows") == [(100,)]
    assert query(db, "SELECT count(*) FROM rows WHERE request_id = 'r299'") == [(2,)]
    assert query(db, "SELECT count(*) FROM rows WHERE request_id = 'r0'") == [(0,)]


def test_max_age_deletes_old_requests_and_their_rows(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    now = time.time()
    with SqliteStore(db, StoreOptions(max_age=3600)) as store:
        store.put(record(1, ts=now - 7200))
        store.put(record(2, ts=now))
        store.flush()
        store.prune()

    assert query(db, "SELECT request_id FROM requests") == [("r2",)]
    assert query(db, "SELECT DISTINCT request_id FROM rows") == [("r2",)]


def test_blocking_overflow_waits_for_room_instead_of_dropping(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "log.db", StoreOptions(capacity=10, overflow="block", flush_interval=0.01)) as store:
        accepted = [store.put(record(i)) for i in range(200)]
        store.flush()
        stats = store.stats()

    assert all(accepted)
    assert (stats.dropped, stats.written) == (0, 400)


def test_dropping_overflow_is_the_default_and_counts(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.db", StoreOptions(capacity=10))  # not opened: nothing drains it

    assert [store.put(record(i)) for i in range(7)] == [True] * 5 + [False] * 2
    assert store.stats().dropped == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"redact": ["zip"]}, "redact: expected feature names among", id="unknown-redact"),
        pytest.param({"sample_rate": 0}, "sample_rate: expected a fraction in (0, 1]", id="sample-rate"),
        pytest.param({"overflow": "spill"}, "overflow: expected 'drop'", id="overflow"),
        pytest.param({"max_rows": 0}, "max_rows: expected a positive integer", id="max-rows"),
        pytest.param({"max_age": -5}, "max_age: expected a positive number of seconds", id="max-age"),
        pytest.param({"log_inputs": "no"}, "log_inputs: expected True or False", id="log-inputs"),
    ],
)
def test_privacy_and_retention_settings_are_checked(
    age_ssn_income_reference: Reference, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Monitor(age_ssn_income_reference, **kwargs)

    assert message in str(raised.value)


@pytest.fixture
def guarded(age_ssn_income_reference: Reference) -> GuardedModel:
    return GuardedModel(
        lambda x: np.asarray(x)[:, 0], reference=age_ssn_income_reference, name="m", db=":memory:", auth_token=TOKEN
    )


def test_health_without_the_token_shows_only_the_overall_status(guarded: GuardedModel) -> None:
    body = json.loads(guarded.health_reply().body)

    assert set(body) == {"status", "model", "generated_at"}


def test_health_with_the_token_shows_the_details(guarded: GuardedModel) -> None:
    body = json.loads(guarded.health_reply(authorization=f"Bearer {TOKEN}").body)

    assert "checks" in body


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}"], ids=["none", "wrong", "scheme"]
)
def test_feedback_needs_the_token(guarded: GuardedModel, authorization: str | None) -> None:
    reply = guarded.handle_feedback(b'{"request_id": "x", "labels": [1]}', "application/json", authorization)

    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_a_wrong_token_on_health_is_a_401(guarded: GuardedModel) -> None:
    assert guarded.health_reply(authorization="Bearer not-the-token-at-all").status == 401


def test_feedback_with_the_token_reaches_the_monitor(guarded: GuardedModel) -> None:
    reply = guarded.handle_feedback(b'{"request_id": "x", "labels": [1]}', "application/json", f"Bearer {TOKEN}")

    assert reply.status == 404  # past authentication: the request id is unknown


def test_a_short_token_is_refused(age_ssn_income_reference: Reference) -> None:
    with pytest.raises(ConfigurationError, match="auth_token: expected a string of at least 16 characters"):
        GuardedModel(lambda x: x, reference=age_ssn_income_reference, name="m", auth_token="short")


def test_the_token_can_come_from_the_environment(age_ssn_income_reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDED_SERVING_TOKEN", TOKEN)

    guarded = GuardedModel(lambda x: np.asarray(x)[:, 0], reference=age_ssn_income_reference, name="m", db=":memory:")

    assert guarded.health_reply(authorization=f"Bearer {TOKEN}").status == 200
    assert "checks" not in json.loads(guarded.health_reply().body)


def test_the_health_report_echoes_no_input_value() -> None:
    rng = np.random.default_rng(8)
    rows = [[float(v), str(c)] for v, c in zip(rng.normal(size=300), rng.choice(["red", "blue"], 300), strict=True)]
    monitor = Monitor(Reference.from_data(rows, feature_names=["amount", "colour"]), window=200)
    secret_rows = [[987654.321, "SECRET-VALUE-42"]] * 50 + rows[:150]

    monitor.observe(secret_rows, [0] * 200)
    text = json.dumps(monitor.health().to_json())

    assert "SECRET-VALUE-42" not in text
    assert "987654" not in text
    assert '"colour"' in text  # the feature is reported, by name ...
    assert "1 unseen category ('#" in text  # ... and its unseen values by fingerprint
