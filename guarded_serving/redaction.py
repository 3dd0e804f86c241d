"""Redaction: what of a redacted feature may be written or shown (nothing but its name).

``redact=["ssn"]`` promises that the feature's values are never written and never shown. Values reach
more places than the logged rows: a validation problem quotes the value it refused, a model's exception
or warning may quote its input, and the reference saved in the store holds a profile of the training
values. Each goes through one of these functions first:

* :func:`redacted_input_error`: a problem in a redacted feature keeps its row, feature and expected shape,
  and loses the value (the client's own answer included: an error body is a sink like any other);
* :data:`WITHHELD` replaces the free text of a model's exception or warning, which no one can vouch for;
* :func:`redacted_reference`: a redacted feature's profile keeps its name and kind only, and its column
  leaves the reference's row sample.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from .environment import WarningRecord
from .errors import InputError
from .profiles import FeatureProfile
from .reference import Reference

__all__ = ["WITHHELD", "redacted_input_error", "redacted_reference", "withheld_warnings"]

WITHHELD = "(withheld: it may quote a redacted feature's value)"


def redacted_input_error(error: InputError, redact: Collection[str]) -> InputError:
    """``error`` with the problems of redacted features shown without their values (the same status)."""
    if not any(p.feature in redact for p in error.problems):
        return error
    problems = [dataclasses.replace(p, problem=WITHHELD) if p.feature in redact else p for p in error.problems]
    return InputError(problems, status=error.status)


def withheld_warnings(warnings: Sequence[WarningRecord]) -> tuple[WarningRecord, ...]:
    """Warnings with their messages withheld (category, location and count kept)."""
    return tuple(dataclasses.replace(w, message=WITHHELD) for w in warnings)


def redacted_reference(reference: Reference, redact: Collection[str]) -> Reference:
    """The reference with every redacted feature profiled as if it held no value: its name, kind and row count
    only (no categories, quantile edges, sample, range or moments), and out of the row sample.
    ``extra["redacted"]`` lists them."""
    if not redact:
        return reference
    features = tuple(
        FeatureProfile(name=f.name, kind=f.kind, count=f.count, missing_rate=1.0) if f.name in redact else f
        for f in reference.features
    )
    extra = {**reference.extra, "redacted": sorted(set(redact) & set(reference.feature_names))}
    rows = reference.row_sample.without(redact) if reference.row_sample is not None else None  # rows kept whole
    return dataclasses.replace(reference, features=features, extra=extra, row_sample=rows)
