"""Input kinds: models whose rows are not rows of scalars (a text, a text beside numbers, a tensor).

A tabular model's row is judged as it is sent. A text is not a feature the drift engine can judge, so an
:class:`InputKind` stands between the request and the engine: it parses a JSON body into what the model
gets, and describes each row by a few numbers (and at most a few categories), its *descriptors*, which the
calibrated engine judges as it judges any feature. The reference is the descriptors of the training rows,
so everything after parsing (window, calibration, joint check, store, report) is the tabular code path.

The request path (:mod:`guarded_serving.handler`) does, when ``guarded.kind`` is not None::

    batch = parse_batch(kind, parse_json(body), max_rows, allow_missing, redact)
    result = predict(batch.model_input)           # a list of strings, a DataFrame, a stacked array
    monitor.encode(batch.rows, ..., input_matrix=batch.matrix)   # the descriptors, one row per input
    store: batch.logged                           # the inputs as logged: redacted, each value cut to size

A kind is chosen by :func:`~guarded_serving.inputs.registry.kind_for` from the training data (each
:class:`KindFactory` in the registry is asked in turn whether the data is its own) or by name
(``input_format="text"``), and is saved with the reference (``reference.extra["input_kind"]``), so a saved
reference brings its kind back (:func:`~guarded_serving.inputs.registry.kind_of_reference`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError, Problem
from ..jsontext import dump_text
from ..validation import describe

if TYPE_CHECKING:
    from ..profiles import FeatureProfile
    from ..reference import Reference
    from ..tabular import Columns

__all__ = [
    "KIND_KEY",
    "QUOTES_KEY",
    "Batch",
    "InputKind",
    "KindFactory",
    "Redactable",
    "check_rows",
    "descriptor_rows",
    "parse_batch",
    "state_json",
    "withheld_descriptors",
]

KIND_KEY = "input_kind"  # reference.extra[KIND_KEY]: {"kind": name, **the kind's own state}
QUOTES_KEY = "quotes"  # in a kind's state: numeric descriptors that are the input's own values


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """One request's inputs, parsed by a kind.

    ``model_input``: what the predict function receives. ``rows``: each input's descriptors in the
    reference's feature order (what the monitor judges); ``matrix``: the same as float64 when every
    descriptor is numeric. ``logged``: the JSON text of the inputs as the store keeps them.
    """

    model_input: Any
    rows: list[list[Any]]
    matrix: np.ndarray | None
    logged: str

    @property
    def count(self) -> int:
        return len(self.rows)


@runtime_checkable
class InputKind(Protocol):
    """What a kind of input provides. Built by its :class:`KindFactory` (fitted on training data, or
    from its saved state); immutable afterwards, shared by every request thread."""

    name: ClassVar[str]

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the inputs' own parts, which ``redact=`` may name (``("text",)`` for a text)."""
        ...

    def items(self, data: Any, where: str = "reference") -> list[Any]:
        """Training data (or held-out rows) as a list of inputs, one per row, as :meth:`parse` returns them."""
        ...

    def parse(self, rows: list[Any], allow_missing: bool) -> list[Any]:
        """A request's ``rows`` (already a non-empty list within the row limit) as inputs; every problem,
        with its row and field, in one :class:`~guarded_serving.errors.InputError` (a 4xx)."""
        ...

    def model_input(self, items: list[Any]) -> Any:
        """What the predict function receives for these inputs."""
        ...

    def describe(self, items: list[Any], reference: bool = False) -> Columns:
        """Each input's descriptors as named columns (numeric ones float64, categorical ones objects).
        ``reference``: the inputs are the reference's own (a kind may then describe them as if each were
        new, e.g. its share of unknown tokens counted leaving that input out of the vocabulary)."""
        ...

    def logged(self, items: list[Any], redact: Collection[str]) -> list[Any]:
        """The inputs as the store may keep them: JSON values, redacted fields None, each value cut to size."""
        ...

    def explain(self, feature: str, reference: FeatureProfile, values: np.ndarray) -> str | None:
        """A descriptor's drift in the input's own words ("texts 2.3x longer"), from its reference profile
        and the window's values (NaN for missing); None keeps the engine's wording."""
        ...

    def to_json(self) -> dict[str, Any]:
        """The kind's state (vocabulary, fields, shapes), saved with the reference."""
        ...


@runtime_checkable
class Redactable(Protocol):
    """A kind whose state quotes its inputs' values (a text's vocabulary) gives a copy without them, which is
    what is written to the log store when ``redact=`` names one of its fields."""

    def redacted(self, redact: Collection[str]) -> InputKind: ...


class KindFactory(Protocol):
    """Chooses and builds one kind: ``accepts`` training data of its shape, ``fit`` it, ``from_json`` a
    saved state. Registered with :func:`register`; asked in registration order."""

    name: str

    def accepts(self, data: Any) -> bool: ...

    def fit(self, data: Any) -> InputKind: ...

    def from_json(self, state: dict[str, Any]) -> InputKind: ...


def parse_batch(kind: InputKind, document: Any, max_rows: int, allow_missing: bool, redact: Collection[str]) -> Batch:
    """A decoded ``{"rows": [...]}`` body as a :class:`Batch` of ``kind``'s inputs (an InputError if refused)."""
    if not isinstance(document, dict) or set(document) != {"rows"}:
        got = f"fields {sorted(document)}" if isinstance(document, dict) else f"a JSON {type(document).__name__}"
        raise InputError([Problem(f"the body has {got}", 'a JSON object with the single field "rows"')], status=422)
    rows = document["rows"]
    if not isinstance(rows, list) or not rows:
        raise InputError([Problem(f"'rows' is {describe(rows)}", "a non-empty list of inputs, one per row")], status=422)
    if len(rows) > max_rows:
        raise InputError([Problem(f"{len(rows)} rows in one request", f"at most {max_rows} rows per request")], status=413)
    items = kind.parse(rows, allow_missing)
    columns = kind.describe(items)
    table = descriptor_rows(columns)
    matrix = None if any(columns.categorical) else np.column_stack(columns.values).astype(np.float64, copy=False)
    return Batch(kind.model_input(items), table, matrix, dump_text(kind.logged(items, redact)))


def descriptor_rows(columns: Columns) -> list[list[Any]]:
    """Columns of descriptors as rows in feature order (None for a missing value)."""
    plain = [_plain(v, c) for v, c in zip(columns.values, columns.categorical, strict=True)]
    return [list(row) for row in zip(*plain, strict=True)]


def _plain(values: np.ndarray, categorical: bool) -> list[Any]:
    if categorical:
        return list(values)
    return [None if v != v else float(v) for v in values.tolist()]


def check_rows(rows: Sequence[Any], check: Callable[[int, Any], Problem | None]) -> None:
    """Raise one InputError naming every refused row (at most 20), or return."""
    problems: list[Problem] = []
    for i, row in enumerate(rows):
        problem = check(i, row)
        if problem is not None:
            problems.append(problem)
            if len(problems) >= 20:
                break
    if problems:
        raise InputError(problems, status=413 if all(p.kind == "size" for p in problems) else 422)


def withheld_descriptors(reference: Reference, redact: Collection[str]) -> frozenset[str]:
    """The categorical descriptors of a kind's redacted fields (``text.token`` of a redacted ``text``): a
    category may quote the field's values, so they are withheld as a redacted feature is. Numeric ones (lengths,
    shares, means) are still judged, except those the kind's state lists under :data:`QUOTES_KEY` (an embedding's
    coordinates are its values)."""
    if KIND_KEY not in reference.extra or not redact:
        return frozenset()
    prefixes = tuple(f"{field}." for field in redact)
    categorical = {f.name for f in reference.features if f.kind == "categorical" and f.name.startswith(prefixes)}
    state = reference.extra[KIND_KEY]
    quoted = state.get(QUOTES_KEY, ()) if isinstance(state, dict) else ()  # numeric descriptors that are the values
    return frozenset(categorical | {n for n in quoted if isinstance(n, str) and n.startswith(prefixes)})


def state_json(state: dict[str, Any]) -> dict[str, Any]:
    """A kind's state as plain JSON values (checked: it is saved inside the reference)."""
    plain: dict[str, Any] = json.loads(json.dumps(state, allow_nan=False))
    return plain
