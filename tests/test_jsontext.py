from __future__ import annotations

import json
import math

import pytest

from guarded_serving.jsontext import dump_bytes, dump_text


@pytest.mark.parametrize(
    "value",
    [
        [[1.5, None, -0.0], [1e-320, 1.7976931348623157e308, 3]],
        {"predictions": [[0.1, 0.9]], "request_id": "abc"},
        ["é", "\u202e", "tab\t", 10**30, True, False, None],
        [],
    ],
)
def test_the_fast_writer_writes_what_the_standard_library_reads_back(value: object) -> None:
    assert json.loads(dump_text(value)) == value
    assert json.loads(dump_bytes(value)) == value


def test_non_finite_floats_become_null() -> None:
    assert json.loads(dump_text([math.nan, math.inf, -math.inf, 1.0])) == [None, None, None, 1.0]


def test_what_rust_refuses_is_still_written_by_the_standard_library() -> None:
    lone_surrogate = "\ud800"
    assert json.loads(dump_text([lone_surrogate, math.nan])) == [lone_surrogate, None]
    assert json.loads(dump_bytes({"label": lone_surrogate})) == {"label": lone_surrogate}


def test_an_unknown_object_is_an_error_not_a_silent_string() -> None:
    with pytest.raises(TypeError):
        dump_text([object()])
