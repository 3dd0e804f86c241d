"""The health report as the JSON body ``GET /health/model`` sends, written by pydantic's compiled serializers.

:meth:`HealthReport.to_json` walks the report in Python, a call or two per value: for 64 features (some 2,000
values in ~200 dataclasses) ~1.5 ms, a fifth of what the endpoint spends after a new request. A details class is
a frozen dataclass whose fields are typed, so pydantic can compile a serializer for it once (a ``TypeAdapter``)
that writes an instance's JSON in Rust, reading the fields by the types they declare: ~0.4 ms for the same
report. Measured in bench/health.py's breakdown ("the answer's JSON body").

The bytes are those of ``dump_bytes(report.to_json(detail))``, key for key and in the same order
(tests/test_healthjson.py compares them on reports of every kind of model and check), with one difference allowed
by design and not seen in them: an int held where a float is declared is written ``3.0``, the same JSON number.
Only the package's own details classes are written so, and only those whose every dataclass, down the types of
their fields, has no subclass (the serializer writes a value as its declared class: a subclass's own fields would
be dropped without a word). A check it cannot write so (a value its declared type's serializer refuses, such as
a string where a float is declared; a class whose types pydantic cannot read; a field named like the check's own
``status`` or ``summary``) is rendered by :meth:`CheckResult.to_json` instead: never lost, only slower.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import TypeAdapter

from .health import CheckResult, HealthReport, to_jsonable
from .jsontext import dump_bytes

__all__ = ["check_bytes", "prepare", "report_bytes"]

_OWN = ("status", "summary")  # what a check says itself; details never overwrite it
_KEPT = 256  # details classes remembered (a report has a dozen; the bound keeps a caller's own from growing it)
_PACKAGE = __name__.rpartition(".")[0] + "."
_adapters: dict[type, TypeAdapter[Any] | None] = {}  # built once per class; two threads may both build one
# The last report's checks as written, by identity: a health check asked again on the same window (a probe, a
# dashboard refreshing) answers with the same CheckResult objects (monitor/memo.py), whose bytes are the same.
# One report's worth: several monitors in a process answering in turn write theirs again (right, only slower).
_written: dict[int, tuple[CheckResult, bytes]] = {}


def report_bytes(report: HealthReport, detail: bool = True) -> bytes:
    """``dump_bytes(report.to_json(detail))``, each check's details written by a compiled serializer."""
    head = dump_bytes(report.head_json(detail))
    if not detail:
        return head
    global _written
    last, written = _written, {}
    for check in report.checks:  # an id found is this very check's: the object of an id kept is kept alive with it
        written[id(check)] = last.get(id(check)) or (check, check_bytes(check))
    _written = written  # only this report's: bounded
    checks = b",".join(dump_bytes(c.name) + b":" + written[id(c)][1] for c in report.checks)
    tail = b"}"
    if report.replicas:
        tail = b',"replicas":' + dump_bytes(to_jsonable(report.replicas)) + tail
    return head[:-1] + b',"checks":{' + checks + b"}" + tail


def check_bytes(check: CheckResult) -> bytes:
    """``dump_bytes(check.to_json())``."""
    details = check.details
    adapter = _adapter(type(details)) if dataclasses.is_dataclass(details) and not isinstance(details, type) else None
    if adapter is None:
        return dump_bytes(check.to_json())
    try:
        written = adapter.dump_json(details, warnings="error")
    except (ValueError, TypeError):  # a value not of its declared type (PydanticSerializationError is a ValueError)
        return dump_bytes(check.to_json())
    own = dump_bytes({"status": check.status.value, "summary": check.summary})
    return own if written == b"{}" else own[:-1] + b"," + written[1:]


def prepare() -> None:
    """Build the serializers of the package's details classes now (~60 ms of CPU for the eight), rather than in
    the first ``/health/model`` answer: a service calls it in a thread of its own when a worker starts."""
    from .concept import ConceptDetails
    from .drift.checks import DriftDetails
    from .drift.joint import JointDetails
    from .drift.quality import QualityDetails
    from .estimate import EstimateDetails
    from .operational import EnvironmentDetails, PipelineDetails, StoreDetails

    for kind in (
        DriftDetails, QualityDetails, JointDetails, EstimateDetails, ConceptDetails, PipelineDetails, StoreDetails,
        EnvironmentDetails,
    ):  # fmt: skip
        _adapter(kind)


def _adapter(kind: type) -> TypeAdapter[Any] | None:
    """The compiled serializer of a details class, built once; None when it cannot stand in for to_json."""
    if kind in _adapters:
        return _adapters[kind]
    adapter: TypeAdapter[Any] | None = None
    if kind.__module__.startswith(_PACKAGE) and not any(f.name in _OWN for f in dataclasses.fields(kind)):
        try:
            if _closed(kind, set()):
                adapter = TypeAdapter(kind)
        except Exception:  # its types cannot be read (a name only imported for type checkers, ...)
            adapter = None
    if len(_adapters) < _KEPT:
        _adapters[kind] = adapter
    return adapter


def _closed(hint: Any, seen: set[type]) -> bool:
    """No dataclass in ``hint`` (a details class, or a field's type) or down its fields' types has a subclass."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in seen:
            return True
        seen.add(hint)
        return not hint.__subclasses__() and all(_closed(h, seen) for h in typing.get_type_hints(hint).values())
    return all(_closed(arg, seen) for arg in typing.get_args(hint))
