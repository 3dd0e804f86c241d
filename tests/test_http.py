"""A /predict body's envelope: its media type and size, checked before it is parsed."""

from __future__ import annotations

import pytest

from guarded_serving.errors import InputError
from guarded_serving.http import check_envelope


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=utf-8",
        "Application/JSON",
        "text/json",
        "application/problem+json",
        " application/json ; charset=latin-1",
    ],
)
def test_a_json_media_type_is_accepted(content_type: str | None) -> None:
    assert check_envelope(b"{}", content_type, 100) == b"{}"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_another_media_type_is_refused_with_415_naming_it(content_type: str) -> None:
    with pytest.raises(InputError) as refused:
        check_envelope(b"{}", content_type, 100)
    assert refused.value.status == 415
    assert f"Content-Type {content_type!r}" in str(refused.value)


def test_a_body_beyond_the_limit_is_refused_with_413_naming_both_sizes() -> None:
    with pytest.raises(InputError) as refused:
        check_envelope(b"x" * 101, "application/json", 100)
    assert refused.value.status == 413
    assert "the body has 101 bytes" in str(refused.value)
    assert "at most 100 bytes" in str(refused.value)
