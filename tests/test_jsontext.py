from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest
import simdjson

from guarded_serving.jsontext import dump_bytes, dump_text, loads


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


def _number(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:  # any double, as Python writes it (17 significant digits at most)
        (x,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        return repr(x) if math.isfinite(x) else "1e400"  # past a double: inf for json.loads, refused by simdjson
    if kind == 1:  # more digits than a double holds, any exponent (rounded once, correctly, or not)
        whole, fraction = rng.randrange(10 ** rng.randint(1, 25)), rng.randrange(10 ** rng.randint(1, 25))
        return f"{rng.choice(['', '-'])}{whole}.{fraction}e{rng.randint(-340, 320)}"
    if kind == 2:  # integers, some past 64 bits (Python ints for json.loads, refused by simdjson)
        return str(rng.randint(-(10**22), 10**22))
    if kind == 3:
        return rng.choice(["NaN", "Infinity", "-Infinity", "-0", "-0.0", "0e0", "1E2", "5e-324", "2.2250738585072011e-308"])
    return f"{rng.random():.{rng.randint(1, 20)}f}"


def _value(rng: random.Random, depth: int = 0) -> str:
    kind = rng.randrange(8 if depth < 3 else 4)
    if kind < 2:
        return _number(rng)
    if kind == 2:
        return rng.choice(['"a,b"', '"\\u00e9\\n"', '"\\ud800"', '"é\u202e"', '"\\""', "true", "false", "null"])
    if kind == 3:
        return _number(rng)
    if kind < 6:
        return "[" + ",".join(_value(rng, depth + 1) for _ in range(rng.randrange(5))) + "]"
    items = [f'"{rng.choice("abc")}":{_value(rng, depth + 1)}' for _ in range(rng.randrange(4))]  # repeated keys too
    return "{" + ",".join(items) + "}"


def _outcome(decode: Any, text: str) -> tuple[str, str]:
    try:
        value = decode(text)
    except (ValueError, RecursionError) as error:
        return type(error).__name__, str(error)
    return type(value).__name__, repr(value)  # repr: -0.0 is not 0.0, 1 is not 1.0, NaN is itself


def test_loads_answers_and_refuses_as_the_standard_library_does() -> None:
    """Stored outputs are read back with simdjson where it accepts the text: the same values (floats to the bit,
    ints as ints), and for anything it refuses, json.loads' own answer or error."""
    rng = random.Random(19)
    texts = [_value(rng) for _ in range(3000)]
    texts += [t[: rng.randrange(len(t))] for t in texts[:500] if len(t) > 1]  # cut short: malformed
    texts += ["\ufeff[1]", "[1] x", "[1,]", " [1] ", "[1]\n", "[" * 1500 + "]" * 1500, "", "nul"]
    refused_by_simdjson = 0
    for text in texts:
        assert _outcome(loads, text) == _outcome(json.loads, text), text
        try:
            simdjson.loads(text)
        except (ValueError, RuntimeError):
            refused_by_simdjson += 1
    assert 100 < refused_by_simdjson < len(texts) - 1000  # both paths were taken many times


def test_loads_of_a_logged_outputs_array() -> None:
    outputs = [[0.524773943369841, 0.47522605663015904], [1e-320, 1.7976931348623157e308]]
    assert loads(dump_text(outputs)) == outputs
    with pytest.raises(TypeError):
        loads(None)  # type: ignore[arg-type]
