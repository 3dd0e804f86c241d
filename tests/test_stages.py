"""Stage timing: named stages record into the active clock, a Pipeline's steps are timed, recent requests summarise."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from guarded_serving.errors import ConfigurationError
from guarded_serving.stages import (
    PipelineSummary,
    RecentRequest,
    StageClock,
    StageSummary,
    percentiles,
    pipeline_steps,
    stage,
    summarise,
)


@pytest.fixture
def clock() -> Iterator[StageClock]:
    """A clock that is active for the duration of the test."""
    active = StageClock()
    active.activate()
    yield active
    active.deactivate()


@pytest.fixture
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    X = rng.normal(size=(60, 3)) * [1.0, 10.0, 100.0]
    y = (X[:, 0] + X[:, 1] / 10 > 0).astype(int)
    return X, y


@pytest.fixture
def pipeline(samples: tuple[np.ndarray, np.ndarray]) -> Pipeline:
    X, y = samples
    return Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression())]).fit(X, y)


# --- stage() ---------------------------------------------------------------------------------------------------------


def test_stage_as_context_manager_records_its_duration(clock: StageClock) -> None:
    with stage("preprocess"):
        pass

    assert list(clock.durations) == ["preprocess"]
    assert clock.durations["preprocess"] >= 0.0


def test_stage_as_decorator_records_each_call_and_returns_the_result(clock: StageClock) -> None:
    @stage("features")
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
    assert list(clock.durations) == ["features"]


def test_decorated_function_keeps_its_name() -> None:
    @stage("features")
    def build_features(x: int) -> int:
        return x

    assert build_features.__name__ == "build_features"


def test_repeated_stage_durations_add_up(clock: StageClock) -> None:
    clock.add("predict", 0.25)
    with stage("predict"):
        pass

    assert clock.durations["predict"] >= 0.25


def test_nested_stages_are_recorded_separately(clock: StageClock) -> None:
    with stage("outer"), stage("inner"):
        pass

    assert sorted(clock.durations) == ["inner", "outer"]


def test_stage_without_an_active_clock_does_nothing_and_returns_results() -> None:
    @stage("features")
    def double(x: int) -> int:
        return 2 * x

    with stage("preprocess") as timed:
        result = double(4)

    assert result == 8
    assert timed.name == "preprocess"


def test_deactivated_clock_no_longer_records() -> None:
    clock = StageClock()
    clock.activate()
    clock.deactivate()

    with stage("preprocess"):
        pass

    assert clock.durations == {}


def test_failing_stage_is_named_and_the_exception_propagates(clock: StageClock) -> None:
    with pytest.raises(KeyError, match="missing column"), stage("preprocess"):
        raise KeyError("missing column")

    assert clock.failed == "preprocess"
    assert "preprocess" in clock.durations


def test_failing_decorated_stage_is_named(clock: StageClock) -> None:
    @stage("features")
    def broken() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        broken()

    assert clock.failed == "features"


def test_the_innermost_failing_stage_is_the_one_named(clock: StageClock) -> None:
    with pytest.raises(ZeroDivisionError), stage("predict"), stage("features"):
        _ = 1 / 0

    assert clock.failed == "features"


def test_a_later_failure_does_not_replace_the_first(clock: StageClock) -> None:
    with pytest.raises(ValueError, match="first"), stage("preprocess"):
        raise ValueError("first")
    with pytest.raises(ValueError, match="second"), stage("predict"):
        raise ValueError("second")

    assert clock.failed == "preprocess"


def test_a_stage_that_succeeds_leaves_failed_unset(clock: StageClock) -> None:
    with stage("preprocess"):
        pass

    assert clock.failed is None


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 65, id="65-characters"),
        pytest.param(None, id="none"),
        pytest.param(3, id="a-number"),
    ],
)
def test_invalid_stage_name_is_a_configuration_error(name: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^stage name: expected a non-empty string of at most 64 characters, got "):
        stage(name)  # type: ignore[arg-type]


def test_a_64_character_stage_name_is_accepted() -> None:
    assert stage("x" * 64).name == "x" * 64


# --- pipeline_steps -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["predict_proba", "predict", "decision_function"])
def test_pipeline_steps_give_the_same_output_as_the_pipeline(
    method: str, pipeline: Pipeline, samples: tuple[np.ndarray, np.ndarray]
) -> None:
    X, _ = samples
    timed = pipeline_steps(getattr(pipeline, method))

    assert timed is not None
    np.testing.assert_array_equal(timed(X), getattr(pipeline, method)(X))


def test_pipeline_steps_record_one_stage_per_step(
    pipeline: Pipeline, samples: tuple[np.ndarray, np.ndarray], clock: StageClock
) -> None:
    timed = pipeline_steps(pipeline.predict_proba)
    assert timed is not None

    timed(samples[0])

    assert list(clock.durations) == ["scale", "classify"]


def test_pipeline_steps_skip_passthrough_steps(
    samples: tuple[np.ndarray, np.ndarray], pipeline: Pipeline, clock: StageClock
) -> None:
    X, y = samples
    with_passthrough = Pipeline([("scale", StandardScaler()), ("nothing", "passthrough"), ("classify", LogisticRegression())])
    timed = pipeline_steps(with_passthrough.fit(X, y).predict)
    assert timed is not None

    np.testing.assert_array_equal(timed(X), pipeline.predict(X))
    assert list(clock.durations) == ["scale", "classify"]


def test_pipeline_steps_name_the_failing_step(pipeline: Pipeline, clock: StageClock) -> None:
    timed = pipeline_steps(pipeline.predict)
    assert timed is not None

    with pytest.raises(ValueError, match="features"):
        timed(np.zeros((2, 5)))

    assert clock.failed == "scale"


def test_pipeline_steps_of_a_plain_function_is_none() -> None:
    def predict(X: np.ndarray) -> np.ndarray:
        return X

    assert pipeline_steps(predict) is None


def test_pipeline_steps_of_a_lone_estimator_is_none(samples: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = samples

    assert pipeline_steps(LogisticRegression().fit(X, y).predict) is None


def test_pipeline_steps_of_a_non_prediction_method_is_none(pipeline: Pipeline) -> None:
    assert pipeline_steps(pipeline.get_params) is None


def test_pipeline_steps_of_a_lookalike_class_named_pipeline_is_none() -> None:
    class Pipeline:
        steps = [("model", None)]

        def predict(self, X: np.ndarray) -> np.ndarray:
            return X

    assert pipeline_steps(Pipeline().predict) is None


# --- summarise ------------------------------------------------------------------------------------------------------


def test_summarise_nothing_has_no_total_and_no_stages() -> None:
    assert summarise([]) == PipelineSummary(requests=0, errors=0, rejected=0, total=None, stages=())


def test_summarise_counts_requests_errors_and_rejections() -> None:
    recent = [
        RecentRequest("ok", 10.0, {}),
        RecentRequest("rejected", 1.0, {}),
        RecentRequest("error", 5.0, {}, failed_stage="predict"),
        RecentRequest("ok", 12.0, {}),
    ]

    summary = summarise(recent)

    assert (summary.requests, summary.errors, summary.rejected) == (4, 1, 1)


def test_summarise_total_latency_percentiles_are_exact() -> None:
    recent = [RecentRequest("ok", float(ms), {}) for ms in range(101)]  # 0, 1, ..., 100 ms

    assert summarise(recent).total == StageSummary("total", count=101, errors=0, p50_ms=50.0, p95_ms=95.0, p99_ms=99.0)


def test_summarise_interpolates_percentiles_between_requests() -> None:
    recent = [RecentRequest("ok", ms, {}) for ms in (50.0, 10.0, 40.0, 20.0, 30.0)]

    total = summarise(recent).total

    assert total is not None
    assert (total.p50_ms, total.p95_ms, total.p99_ms) == (30.0, 48.0, pytest.approx(49.6, abs=1e-12))


def test_summarise_gives_each_stage_its_percentiles_and_failures() -> None:
    recent = [
        RecentRequest("ok", 13.0, {"validate": 1.0, "predict": 10.0}),
        RecentRequest("ok", 23.0, {"validate": 3.0, "predict": 20.0}),
        RecentRequest("error", 2.0, {"validate": 2.0}, failed_stage="validate"),
    ]

    stages = {s.name: s for s in summarise(recent).stages}

    assert stages["validate"] == StageSummary("validate", count=3, errors=1, p50_ms=2.0, p95_ms=2.9, p99_ms=pytest.approx(2.98))
    assert stages["predict"] == StageSummary("predict", count=2, errors=0, p50_ms=15.0, p95_ms=19.5, p99_ms=19.9)


def test_summarise_keeps_stages_in_first_seen_order() -> None:
    recent = [RecentRequest("ok", 3.0, {"validate": 1.0, "predict": 2.0}), RecentRequest("ok", 3.0, {"serialize": 1.0})]

    assert [s.name for s in summarise(recent).stages] == ["validate", "predict", "serialize"]


def test_summarise_counts_total_errors_on_the_total_line() -> None:
    recent = [RecentRequest("error", 1.0, {}, failed_stage="predict"), RecentRequest("ok", 1.0, {})]

    total = summarise(recent).total

    assert total is not None
    assert (total.count, total.errors) == (2, 1)


def test_summarise_accepts_any_iterable() -> None:
    summary = summarise(RecentRequest("ok", 1.0, {}) for _ in range(3))

    assert summary.requests == 3


def summary_one_by_one(recent: list[RecentRequest]) -> PipelineSummary:
    """What the pipeline summary means, request by request (the plain definition the column-wise one must equal)."""
    per_stage: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    for r in recent:
        for name, ms in r.stages.items():
            if name != "batch_size":
                per_stage.setdefault(name, []).append(ms)
        if r.failed_stage is not None and r.status == "error":
            failures[r.failed_stage] = failures.get(r.failed_stage, 0) + 1

    def summary(name: str, values: list[float], errors: int) -> StageSummary:
        p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
        return StageSummary(name, len(values), errors, round(float(p50), 3), round(float(p95), 3), round(float(p99), 3))

    errors = sum(r.status == "error" for r in recent)
    return PipelineSummary(
        len(recent),
        errors,
        sum(r.status == "rejected" for r in recent),
        summary("total", [r.latency_ms for r in recent], errors) if recent else None,
        tuple(summary(name, values, failures.get(name, 0)) for name, values in per_stage.items()),
    )


_timings = st.floats(0, 1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            RecentRequest,
            st.sampled_from(["ok", "ok", "error", "rejected"]),
            _timings,
            st.dictionaries(st.sampled_from(["validate", "encode", "predict", "batch_size", "log"]), _timings),
            st.one_of(st.none(), st.sampled_from(["validate", "predict", "log"])),
        ),
        max_size=60,
    )
)
def test_the_summary_equals_the_one_made_request_by_request(recent: list[RecentRequest]) -> None:
    assert summarise(recent) == summary_one_by_one(recent)


@pytest.mark.parametrize("kind", ["continuous", "ties", "rounded"])
def test_percentiles_are_numpy_s_to_the_bit(kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    for _ in range(500):
        n = int(rng.integers(1, 400))
        values = {
            "continuous": rng.exponential(size=n),
            "ties": rng.integers(0, 4, n).astype(float),
            "rounded": np.round(rng.lognormal(size=n), 3),
        }[kind].tolist()

        assert percentiles(values) == tuple(np.percentile(np.asarray(values), [50, 95, 99]).tolist())
