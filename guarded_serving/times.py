"""Times as the library writes and reads them: UTC ISO 8601 with milliseconds, or epoch seconds."""

from __future__ import annotations

import datetime as dt
import math
import re

__all__ = ["LATEST", "iso", "parse_since", "parse_time", "seconds_of"]

LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: a later time has no ISO 8601 form
_SPACED_ZONE = re.compile(r"\d:\d\d(:\d\d(\.\d+)?)? \d\d(:?\d\d)?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def iso(ts: float) -> str:
    """Epoch seconds as the store and the reports write them (UTC, milliseconds), so that times compare as text."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def seconds_of(text: object) -> float | None:
    """Epoch seconds of a written ISO time; None for anything else (a damaged row)."""
    try:
        return dt.datetime.fromisoformat(text).timestamp()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def parse_time(text: str) -> float:
    """A moment as epoch seconds: ISO 8601 (a time without a zone is UTC) or a number of epoch seconds,
    from 1970 to 9999; ValueError otherwise. An unencoded ``+01:00`` in a URL arrives as `` 01:00``: read as ``+``."""
    text = text.strip()
    if _SPACED_ZONE.search(text):
        text = text[: text.rindex(" ")] + "+" + text[text.rindex(" ") + 1 :]
    try:
        value = float(text)
    except ValueError:
        moment = dt.datetime.fromisoformat(text)  # raises ValueError on anything else
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        value = moment.timestamp()
    if not math.isfinite(value) or not 0 <= value <= LATEST:
        raise ValueError(text)
    return value


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """Where a ``since`` (the history's query parameter, the CLI's ``--since``) starts, as epoch seconds: a
    moment (see :func:`parse_time`) or a duration back from ``now`` (``90s``, ``30m``, ``1h``, ``2d``, ``1w``);
    None when absent or blank; ValueError otherwise."""
    if text is None or not text.strip():
        return None
    duration = _DURATION.match(text)
    if duration:
        moment = now if now is not None else dt.datetime.now(dt.UTC).timestamp()
        return moment - float(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
    return parse_time(text)
