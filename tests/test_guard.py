"""guard() and GuardedModel: configuration checks at guard time, and the request path without a server."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from structlog.testing import capture_logs

from guarded_serving import ConfigurationError, GuardedModel, InvalidReferenceError, Reference, guard
from guarded_serving.guard import guard_options
from guarded_serving.reference import Provenance
from tests.fixtures.data import gaussian

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

TRAINING = gaussian(200, 2, seed=5)


def make(predict: Any = None, reference: Any = TRAINING, **kwargs: Any) -> GuardedModel:
    return GuardedModel(predict or (lambda x: np.asarray(x)[:, 0]), reference=reference, name="m", db=":memory:", **kwargs)


def body(rows: Any) -> bytes:
    return json.dumps({"rows": rows}).encode()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_request_rows": 0}, "max_request_rows: expected a positive integer, got 0", id="max-request-rows"),
        pytest.param({"window": -5}, "window: expected a positive integer, got -5", id="window"),
        pytest.param(
            {"input_format": "xml"},
            "input_format: expected one of ['array', 'dataframe', 'records', 'text', 'mixed'",
            id="format",
        ),
        pytest.param({"name": "bad name!"}, "name: expected 1-63 letters, digits", id="name"),
        pytest.param({"reference": None}, "reference: expected training data", id="no-reference"),
        pytest.param({"reference": "missing.json"}, "cannot read reference 'missing.json'", id="missing-file"),
        pytest.param({"wrkers": 2}, "wrkers: expected a guard() argument or a BentoML service option", id="unknown-option"),
        pytest.param({"threads": 0}, "threads: expected a positive integer, got 0", id="threads"),
        pytest.param({"latency_budget_ms": -1}, "latency_budget_ms: expected a positive number of milliseconds", id="budget"),
        pytest.param({"allow_missing": "yes"}, "allow_missing: expected True, False, or None", id="allow-missing"),
    ],
)
def test_invalid_configuration_fails_at_guard_time(kwargs: dict[str, Any], message: str) -> None:
    kwargs = {"reference": TRAINING, **kwargs}

    expected = InvalidReferenceError if "cannot read" in message else ConfigurationError

    with pytest.raises(expected) as raised:
        guard(lambda x: x, **kwargs)

    assert message in str(raised.value)


def test_guard_returns_a_bentoml_service_named_after_the_model() -> None:
    svc = guard(lambda x: x[:, 0], reference=TRAINING, name="Churn")

    assert type(svc).__name__ == "Service"
    assert svc.name == "churn"
    assert "predict" in svc.apis


def test_a_valid_request_is_answered_with_predictions_and_a_request_id() -> None:
    reply = make().handle_predict(body([[1.5, 2.0], [3.0, 4.0]]), "application/json", "abc-1")

    assert reply.status == 200
    assert json.loads(reply.body) == {"predictions": [1.5, 3.0], "request_id": "abc-1"}
    assert reply.headers == {"X-Request-ID": "abc-1"}


def test_a_request_id_is_generated_when_none_is_sent() -> None:
    reply = make().handle_predict(body([[1, 2]]))

    assert len(json.loads(reply.body)["request_id"]) == 32


def test_an_unusable_request_id_is_rejected() -> None:
    reply = make().handle_predict(body([[1, 2]]), None, "has spaces in it")

    assert reply.status == 400
    assert "X-Request-ID 'has spaces in it' is not usable" in json.loads(reply.body)["detail"]


@pytest.mark.parametrize(
    ("reference", "received"),
    [
        pytest.param(TRAINING, np.ndarray, id="array"),
        pytest.param([{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}], list, id="records"),
        pytest.param(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), pd.DataFrame, id="dataframe"),
    ],
)
def test_the_model_receives_the_shape_it_was_trained_on(reference: Any, received: type) -> None:
    seen: list[Any] = []

    def predict(x: Any) -> list[int]:
        seen.append(x)
        return [0] * len(x)

    row = [1.0, 2.0] if received is np.ndarray else [1.0, "x"]
    reply = make(predict, reference).handle_predict(body([row]))

    assert reply.status == 200
    assert isinstance(seen[0], received)


def test_a_model_exception_is_a_500_naming_the_error_class_and_is_logged() -> None:
    def broken(x: Any) -> Any:
        raise KeyError("no such column")

    with capture_logs() as logs:
        reply = make(broken, Reference.from_data(TRAINING)).handle_predict(body([[1, 2]]), None, "r-9")

    assert reply.status == 500
    assert json.loads(reply.body)["error"] == "KeyError"
    assert json.loads(reply.body)["request_id"] == "r-9"
    assert [(e["event"], e["error"], e["stage"]) for e in logs] == [("model_error", "KeyError", "predict")]


def test_a_model_that_fails_on_its_training_data_is_refused_at_guard_time() -> None:
    def broken(x: Any) -> Any:
        raise KeyError("no such column")

    with pytest.raises(ConfigurationError, match="predict: expected a function that accepts the reference data"):
        make(broken)


def test_reference_outputs_are_profiled_from_the_training_data() -> None:
    guarded = make(lambda x: np.asarray(x)[:, 0] * 2)

    [output] = guarded.reference.outputs
    assert output.name == "prediction"
    assert output.mean == pytest.approx(2 * TRAINING[:, 0].mean())


def test_a_nan_prediction_is_sent_as_null() -> None:
    reply = make(lambda x: np.full(len(x), np.nan), Reference.from_data(TRAINING)).handle_predict(body([[1, 2]]))

    assert json.loads(reply.body)["predictions"] == [None]


def test_probability_matrices_serialise_as_nested_lists() -> None:
    reply = make(lambda x: np.tile([0.25, 0.75], (len(x), 1))).handle_predict(body([[1, 2], [3, 4]]))

    assert json.loads(reply.body)["predictions"] == [[0.25, 0.75], [0.25, 0.75]]


def test_a_saved_reference_path_is_accepted(tmp_path: Path) -> None:
    path = Reference.from_data(TRAINING, feature_names=["x", "y"]).save(tmp_path / "ref.json")

    guarded = make(reference=str(path))

    assert guarded.schema.names == ("x", "y")


def test_health_reply_fails_on_warn_with_503() -> None:
    guarded = make(lambda x: (_ for _ in ()).throw(ValueError("always")), Reference.from_data(TRAINING))
    guarded.handle_predict(body([[1, 2]]))

    assert json.loads(guarded.health_reply().body)["status"] == "alert"
    assert guarded.health_reply("warn").status == 503
    assert guarded.health_reply("alert").status == 503
    assert guarded.health_reply().status == 200


def test_the_service_leaves_access_logs_and_tracing_to_the_store_unless_asked() -> None:
    quiet = guard(lambda x: np.asarray(x)[:, 0], reference=TRAINING, name="quiet", db=":memory:")
    assert quiet.config["logging"] == {"access": {"enabled": False}}
    assert "/predict" in quiet.config["tracing"]["excluded_urls"]

    traced = guard(
        lambda x: np.asarray(x)[:, 0],
        reference=TRAINING,
        name="traced",
        db=":memory:",
        logging={"access": {"enabled": True}},
        tracing={"sample_rate": 1.0},
    )
    assert traced.config["logging"] == {"access": {"enabled": True}}
    assert traced.config["tracing"] == {"sample_rate": 1.0}


def test_the_one_liner_marks_its_inputs_and_outputs_as_training_rows() -> None:
    guarded = make(lambda x: np.asarray(x)[:, 0] * 2)

    assert guarded.reference.provenance == Provenance(features="training", outputs="training")


def test_holdout_profiles_outputs_and_performance_on_the_held_out_rows() -> None:
    X_val = gaussian(150, 2, seed=6)
    y_val = (X_val[:, 0] * 2 + 0.1).tolist()

    guarded = make(lambda x: np.asarray(x)[:, 0] * 2, holdout=(X_val, y_val))

    [output] = guarded.reference.outputs
    assert output.count == 150
    assert output.mean == pytest.approx(2 * X_val[:, 0].mean())
    assert guarded.reference.performance is not None
    assert guarded.reference.performance.error_mean == pytest.approx(0.1)
    assert guarded.reference.provenance == Provenance(features="training", outputs="holdout", performance="holdout")


def test_holdout_replaces_the_outputs_of_a_given_reference() -> None:
    X_val = gaussian(80, 2, seed=7)

    guarded = make(lambda x: np.asarray(x)[:, 1], Reference.from_data(TRAINING), holdout=X_val)

    assert guarded.reference.outputs[0].count == 80
    assert guarded.reference.provenance == Provenance(outputs="holdout")


def test_held_out_rows_with_text_where_the_reference_has_numbers_fail_at_guard_time() -> None:
    with pytest.raises(ConfigurationError, match=r"^holdout: expected numbers where the reference has numbers, got .*\['f1'\]"):
        make(holdout=[[1.0, "x"], [2.0, "y"]])


@pytest.mark.parametrize("spelling", ["argument", "environment"])
def test_memory_as_the_store_keeps_no_file_whichever_way_it_is_given(
    spelling: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GUARDED_SERVING_DB", ":memory:")
    options = {"db": ":memory:"} if spelling == "argument" else {}
    guarded = GuardedModel(lambda x: np.asarray(x)[:, 0], reference=TRAINING, name="m", **options)

    guarded.handle_predict(body([[1.0, 2.0]]))
    store = json.loads(guarded.health_reply().body)["checks"]["store"]
    guarded.close()

    assert guarded.monitor is not None
    assert guarded.monitor.store is None
    assert store["status"] == "ok"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def built_bento_src(tmp_path: Path) -> Path:
    """The folder BentoML runs a built Bento's workers in: ``src`` beside the Bento's ``bento.yaml``."""
    src = tmp_path / "bentos" / "iris" / "v1" / "src"
    src.mkdir(parents=True)
    (src.parent / "bento.yaml").write_text("service: service:svc\n")
    return src


def test_a_built_bento_keeps_its_default_store_in_the_directory_it_was_served_from(
    built_bento_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started_in = tmp_path / "project"
    started_in.mkdir()
    monkeypatch.chdir(built_bento_src)  # as `bentoml serve iris:v1` runs its workers
    monkeypatch.setenv("PWD", str(started_in))  # where the user typed it
    monkeypatch.delenv("GUARDED_SERVING_DB", raising=False)
    guarded = GuardedModel(lambda x: np.asarray(x)[:, 0], reference=TRAINING, name="m")

    guarded.handle_predict(body([[1.0, 2.0]]))
    guarded.close()

    assert (started_in / "guarded_serving.db").is_file()
    assert sorted(p.name for p in built_bento_src.iterdir()) == []


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        pytest.param("logs/guarded.db", "{started_in}/logs/guarded.db", id="relative"),
        pytest.param("/var/lib/guarded.db", "/var/lib/guarded.db", id="absolute"),
        pytest.param(":memory:", None, id="memory"),
    ],
)
def test_a_built_bento_takes_a_relative_store_path_from_the_directory_it_was_served_from(
    db: str, expected: str | None, built_bento_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(built_bento_src)
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("GUARDED_SERVING_DB", db)

    options = guard_options(name="m")

    assert options.db == (expected.format(started_in=tmp_path) if expected else None)


def test_outside_a_built_bento_a_relative_store_path_is_left_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()  # a project's own src folder, with no bento.yaml beside it
    monkeypatch.chdir(tmp_path / "src")
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.delenv("GUARDED_SERVING_DB", raising=False)

    assert guard_options(name="m").db == "guarded_serving.db"


def test_a_bug_while_reading_a_request_is_a_500_naming_the_stage_and_is_recorded_as_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, such an exception escaped the guard: BentoML's bare 500, and the request was in no count or log."""
    guarded = make()
    guarded.start()

    def broken(body: bytes) -> None:
        raise StopIteration  # as the tensor row check raised on an integer beyond float range

    monkeypatch.setattr(guarded, "numeric", broken)
    reply = guarded.handle_predict(body([[1.0, 2.0]]))
    monkeypatch.undo()
    after = guarded.handle_predict(body([[1.0, 2.0]]))
    report = guarded.monitor.health() if guarded.monitor else None
    guarded.close()

    assert reply.status == 500
    problem = json.loads(reply.body)
    assert problem["detail"] == "the guard failed in stage 'validate' with StopIteration (a bug: please report it)"
    assert (problem["error"], problem["stage"]) == ("StopIteration", "validate")
    assert after.status == 200
    assert report is not None
    assert (report.requests, report.errors) == (2, 1)


def test_what_a_request_leaves_behind_is_mostly_untracked_by_the_garbage_collector(tmp_path: Path) -> None:
    """A request leaves state that outlives it: its prediction kept for labels, its rows in the drift window, its
    outcome among the recent requests. Whatever of it Python's garbage collector tracks ends in its oldest
    generation, which every full collection walks (~100 ms each in a guarded service, every few thousand requests
    when each left ~5 tracked objects). With a store the kept predictions hold only their row counts (no lists),
    and a numeric body's matrix owns its values (no buffer view kept alive with it): about one tracked object per
    request remains (the window's chunk, the recent request), where 3,000 one-row requests left ~14,000."""

    def probabilities(x: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-np.asarray(x)[:, 0]))
        return np.column_stack([1 - p, p])

    guarded = GuardedModel(probabilities, reference=TRAINING, name="m", db=tmp_path / "log.db")
    one_row = body([[0.5, -1.0]])
    for _ in range(500):
        guarded.handle_predict(one_row)
    assert guarded.start().flush(30)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(3_000):
        assert guarded.handle_predict(one_row).status == 200
    assert guarded.start().flush(30)
    gc.collect()
    grown = len(gc.get_objects()) - before
    labelled = guarded.start().feedback(json.loads(guarded.handle_predict(one_row).body)["request_id"], [1])
    guarded.close()

    assert grown < 3_000
    assert labelled.accepted == 1  # a kept prediction still takes its label
