"""The one-pass numeric decoder: it accepts only bodies the general parser accepts, into the same matrix.

Whatever it refuses goes to the general parser, so a body it wrongly refused would only be slower;
a body it wrongly accepted would skip a check. The property below holds it to the general parser on
generated bodies: valid ones, near misses (null, booleans, strings, huge numbers, ragged rows, extra keys)
and the same bodies with a byte changed.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from guarded_serving.errors import InputError
from guarded_serving.numericbody import KEPT_PARSER_BYTES, SMALL_BODY_VALUES, NumericDecoder, owned_copy
from guarded_serving.validation import RowSchema, parse_json, parse_table, rows_text

SCHEMA = RowSchema(names=("a", "b", "c"), numeric=(True, True, True), max_rows=5, limits=(1e3, sys.float_info.max, 1.0))
decode = NumericDecoder(SCHEMA)


def general(body: bytes, schema: RowSchema = SCHEMA) -> tuple[np.ndarray | None, str | None] | InputError:
    """What the general parser makes of a body: the matrix and logged text of a valid one, or its error."""
    try:
        table = parse_table(parse_json(body), schema)
    except InputError as exc:
        return exc
    return table.matrix, rows_text(body) if table.verbatim and table.matrix is not None else None


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (-0.0 is not 0.0)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70),
    st.sampled_from(["1e400", "-1e400", "1E5", "1e-400", "-0", "-0.0", "0.1e1", "01", "1.", ".5", "+1", "NaN", "1e"]),
)
within_limits = st.one_of(st.floats(-1, 1), st.integers(-1, 1), st.sampled_from(["-0", "-0.0", "1E-5", "0.5e0", "1e-400"]))
values = st.one_of(numbers, numbers, numbers, st.none(), st.booleans(), st.text(max_size=3), st.sampled_from([[1], [], {}]))


def text_of(value: Any) -> str:
    return value if isinstance(value, str) and value and value[0] in "-+.0123456789NI" else json.dumps(value)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    width = draw(st.sampled_from([3, 3, 3, 2, 4]))
    cells = draw(st.sampled_from([values, within_limits]))  # within_limits: mostly bodies to accept
    rows = draw(st.lists(st.lists(cells, min_size=width, max_size=width), min_size=0, max_size=7))
    space = draw(st.sampled_from(["", " ", "\n  "]))
    rows_text = "[" + f",{space}".join("[" + f",{space}".join(text_of(v) for v in row) + "]" for row in rows) + "]"
    body = (
        draw(
            st.sampled_from(
                [
                    '{"rows": %s}',
                    "{" + space + '"rows"' + space + ":" + space + "%s" + space + "}",
                    '{"rows": %s, "other": 1}',
                    '{"rows": [[1, 2, 3]], "rows": %s}',
                    '{"rows": %s}\n',
                    "[%s]",
                    '\ufeff{"rows": %s}',
                ]
            )
        )
        % rows_text
    )
    data = body.encode()
    if draw(st.booleans()):  # a byte changed: malformed, or another valid body
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.sampled_from([b"", b"1", b",", b"]", b"[", b"-", b".", b'"', b"\xff"])) + data[at + 1 :]
    return data


@settings(max_examples=600, deadline=None)
@given(body=bodies())
@example(body=b'{"rows": [[1, 2.5, -0.0]]}')
@example(body=b'{"rows": [[1, 2.5, 0.5], [3, 4, 1]]}')
@example(body=b'{"rows": [\xff0.0,null]]}')
def test_a_body_the_decoder_accepts_is_one_the_general_parser_accepts_into_the_same_matrix(body: bytes) -> None:
    fast = decode(body)
    slow = general(body)
    if fast is None:
        return
    assert not isinstance(slow, InputError), f"the general parser refuses {body!r}: {slow}"
    matrix, text = slow
    assert matrix is not None
    assert same_floats(fast.matrix, matrix)
    assert fast.text == text
    assert fast.rows == matrix.shape[0]


def test_a_plain_numeric_body_is_decoded_with_its_rows_text_as_sent() -> None:
    body = b'{"rows": [[1, 2.5, -0.25], [1e2, -0, 0.5]]}'
    fast = decode(body)
    assert fast is not None
    assert fast.matrix.tolist() == [[1.0, 2.5, -0.25], [100.0, 0.0, 0.5]]
    assert fast.text == "[[1, 2.5, -0.25], [1e2, -0, 0.5]]"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"rows": [[1, null, 0.5]]}', id="null-missing-value"),
        pytest.param(b'{"rows": [[1, true, 0.5]]}', id="boolean"),
        pytest.param(b'{"rows": [[1, "2", 0.5]]}', id="string"),
        pytest.param(b'{"rows": [[1, NaN, 0.5]]}', id="nan-literal"),
        pytest.param(b'{"rows": [[1, 1e400, 0.5]]}', id="beyond-float"),
        pytest.param(b'{"rows": [[1e4, 2, 0.5]]}', id="beyond-the-reference-magnitude"),
        pytest.param(b'{"rows": [[1, 2]]}', id="short-row"),
        pytest.param(b'{"rows": [[1, 2, 3], [1, 2]]}', id="ragged-rows"),
        pytest.param(b'{"rows": [1, 2, 0.5]}', id="single-row-without-outer-list"),
        pytest.param(b'{"rows": [{"a": 1, "b": 2, "c": 0.5}]}', id="row-as-object"),
        pytest.param(b'{"rows": []}', id="no-rows"),
        pytest.param(b'{"rows": [[1, 2, 0.5]], "extra": 1}', id="unknown-field"),
        pytest.param(b'{"rows": [[1, 2, 0.5]], "rows": [[1, 2, 0.5]]}', id="repeated-field"),
        pytest.param(b'{"rows": [' + b",".join([b"[1, 2, 0.5]"] * 6) + b"]}", id="more-rows-than-allowed"),
        pytest.param(b'{"rows": [[1, 2, 0.5]]', id="malformed"),
        pytest.param(b'{"rows": [[1, 2, [0.5]]]}', id="nested-array-of-one-value"),
        pytest.param(b'{"rows": [[1, [2, 0.5]], [1, 2, 0.5]]}', id="nested-array-making-up-the-count"),
        pytest.param(b'{"rows": [[1, 2, {}]]}', id="object-value"),
        pytest.param(b'{"rows": 5}', id="rows-a-number"),
        pytest.param(b"[[1, 2, 0.5]]", id="array-body"),
        pytest.param(b'\xef\xbb\xbf{"rows": [[1, 2, 0.5]]}', id="byte-order-mark"),
        pytest.param(b'{"rows": [[1, 2, 0.5]]} x', id="trailing-text"),
        pytest.param(b'{"r0ws": [[1, 2, 0.5]]}', id="key-whose-letters-read-rows"),
        pytest.param(b'{"rows": [[1, 2, 0.5]], "": 1}', id="second-key-empty"),
        pytest.param(b'{"rows": [[1, 2, 0.5] [1, 2, 0.5]]}', id="missing-comma-between-rows"),
        pytest.param(b'{"rows": [[1, 2 0.5, 3]]}', id="missing-comma-between-values"),
    ],
)
def test_a_body_needing_the_general_parser_is_left_to_it(body: bytes) -> None:
    assert decode(body) is None


@pytest.mark.parametrize("rows", [1, 2, SMALL_BODY_VALUES // 3, SMALL_BODY_VALUES // 3 + 1, 64], ids=lambda n: f"{n}-rows")
@pytest.mark.parametrize("beyond", [None, 0, 1, 2], ids=["within", "first-feature", "second", "third"])
def test_a_value_beyond_its_feature_magnitude_is_left_to_the_general_parser_in_small_and_large_bodies(
    rows: int, beyond: int | None
) -> None:
    """Bodies of up to SMALL_BODY_VALUES values are checked in Python, larger ones with numpy: the same answer."""
    schema = RowSchema(names=("a", "b", "c"), numeric=(True, True, True), max_rows=100, limits=(1e3, 10.0, 1.0))
    matrix = np.full((rows, 3), -0.5)
    matrix[0, 0] = 500.0  # beyond the smallest limit, within its own feature's
    if beyond is not None:
        matrix[rows - 1, beyond] = -(schema.limits[beyond] * 1.5)
    body = json.dumps({"rows": matrix.tolist()}).encode()
    fast = NumericDecoder(schema)(body)
    assert (fast is None) == (beyond is not None)
    if fast is not None:
        assert same_floats(fast.matrix, matrix)


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        (b'{"rows": [[1], [2.5], [-3e-1]]}', True),
        (b'{"rows": [[1], [], [2]]}', False),  # the empty row has a row's skeleton at a width of 1
        (b'{"rows": [[1], [[2]]]}', False),
        (b'{"rows": [[]]}', False),
    ],
)
def test_a_single_feature_body_is_decoded_only_when_every_row_holds_one_number(body: bytes, accepted: bool) -> None:
    one = NumericDecoder(RowSchema(names=("a",), numeric=(True,), max_rows=10))
    fast = one(body)
    slow = general(body, RowSchema(names=("a",), numeric=(True,), max_rows=10))
    assert (fast is not None) == accepted
    if fast is not None:
        assert not isinstance(slow, InputError)
        assert slow[0] is not None
        assert same_floats(fast.matrix, slow[0])
    else:
        assert isinstance(slow, InputError)


def test_a_schema_with_a_categorical_feature_is_left_to_the_general_parser() -> None:
    schema = RowSchema(names=("a", "city"), numeric=(True, False))
    assert NumericDecoder(schema)(b'{"rows": [[1, 2]]}') is None


def test_a_body_larger_than_a_kept_parser_is_decoded_all_the_same() -> None:
    schema = RowSchema(names=("a", "b", "c"), numeric=(True, True, True), max_rows=100_000)
    rows = np.arange(3 * 60_000, dtype=np.float64).reshape(-1, 3) / 8
    body = json.dumps({"rows": rows.tolist()}).encode()
    assert len(body) > KEPT_PARSER_BYTES
    fast = NumericDecoder(schema)(body)
    assert fast is not None
    assert same_floats(fast.matrix, rows)


def test_threads_decoding_at_once_each_get_their_own_rows() -> None:
    bodies = [json.dumps({"rows": [[i, i + 0.5, 0.25]] * (1 + i % 4)}).encode() for i in range(8)]
    expected = [general(body)[0] for body in bodies]  # type: ignore[index]
    wrong: list[int] = []

    def work(k: int) -> None:
        for n in range(300):
            i = (k + n) % len(bodies)
            fast = decode(bodies[i])
            if fast is None or not same_floats(fast.matrix, expected[i]):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


@pytest.mark.parametrize("rows", [1, 25, 26, 64], ids=lambda n: f"{n}-rows")
def test_the_decoded_matrix_and_a_copy_of_it_are_writable_and_their_own(rows: int) -> None:
    """Copies above numpy's 500 values are made through a bytearray (to keep the GIL): the same arrays all the same."""
    schema = RowSchema(names=tuple("abcdefghijklmnopqrst"), numeric=(True,) * 20, max_rows=100)
    matrix = np.arange(rows * 20, dtype=np.float64).reshape(rows, 20) / 4
    fast = NumericDecoder(schema)(json.dumps({"rows": matrix.tolist()}).encode())
    assert fast is not None
    copy = owned_copy(fast.matrix)
    for array in (fast.matrix, copy):
        assert array.flags.writeable
        assert array.flags.c_contiguous
        assert array.dtype == np.float64
        assert same_floats(array, matrix)
    copy[0, 0] = -1.0
    assert fast.matrix[0, 0] == 0.0  # the copy shares nothing with the decoded matrix
    assert not np.shares_memory(copy, fast.matrix)


@pytest.mark.parametrize("at", [(0, 0), (40, 1), (63, 2)], ids=["first", "middle", "last"])
def test_one_value_beyond_every_limit_anywhere_in_a_large_body_is_left_to_the_general_parser(at: tuple[int, int]) -> None:
    schema = RowSchema(names=("a", "b", "c"), numeric=(True, True, True), max_rows=100, limits=(1e3, 10.0, 1.0))
    matrix = np.full((64, 3), 0.25)
    matrix[at] = -1e6
    assert NumericDecoder(schema)(json.dumps({"rows": matrix.tolist()}).encode()) is None
    matrix[at] = -0.75  # within every limit: decoded
    assert NumericDecoder(schema)(json.dumps({"rows": matrix.tolist()}).encode()) is not None
