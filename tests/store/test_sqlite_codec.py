"""The writer's column texts, written by hand for speed, are exactly the texts the plain calls give."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guarded_serving.jsontext import dump_text
from guarded_serving.store import iso_time
from guarded_serving.store.sqlite.codec import stages_text


def datetime_text(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


@given(st.floats(min_value=-2e9, max_value=3e10, allow_nan=False))
def test_a_time_is_written_as_datetime_writes_it(ts: float) -> None:
    assert iso_time(ts) == datetime_text(ts)


@pytest.mark.parametrize(
    "ts",
    [0.0, -0.5, -1e-9, 1_700_000_000.9995, 1_700_000_000.9999995, 1_700_000_001.0000005, 1_700_000_000.0005, 59.9999999],
    ids=["epoch", "before-epoch", "just-before-epoch", "half-ms", "rounds-up-a-second", "half-micro", "ms-edge", "minute"],
)
def test_a_time_at_a_rounding_edge_is_written_as_datetime_writes_it(ts: float) -> None:
    assert iso_time(ts) == datetime_text(ts)


def test_times_in_turn_across_seconds_each_get_their_own_second() -> None:
    times = [1_700_000_000.999, 1_700_000_001.0, 1_699_999_999.5, 1_700_000_001.001]
    assert [iso_time(t) for t in times] == [datetime_text(t) for t in times]


stage_names = st.one_of(st.sampled_from(["validate", "predict", "serialize", "log", "batch_size"]), st.text(max_size=8))
durations = st.one_of(
    st.floats(min_value=0.0, max_value=1e7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.0004, 0.0005, 1e15, 1e16, 4.0]),
)


@given(st.dictionaries(stage_names, durations, max_size=6))
def test_stages_are_written_as_dump_text_writes_them_rounded(stages: dict[str, float]) -> None:
    assert stages_text(stages) == dump_text({name: round(ms, 3) for name, ms in stages.items()})


def test_a_stage_name_that_json_must_escape_is_escaped() -> None:
    stages = {'a "quoted"\nname é': 1.23456, "validate": 0.5}
    assert stages_text(stages) == dump_text({name: round(ms, 3) for name, ms in stages.items()})
