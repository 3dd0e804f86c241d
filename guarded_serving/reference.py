"""The reference profile: what the model's inputs (and outputs) looked like when it was validated.

A :class:`Reference` is built once from training data with :meth:`Reference.from_data`, saved as a
versioned JSON document and loaded when the service starts. Everything a per-request check needs
(feature names and kinds, ranges, category sets) is computed here, not per request.

A reference knows where each of its parts came from (:class:`Provenance`): inputs may be profiled on
training rows, but a model's outputs and performance on the rows it was fitted on are better than on
any new row, so they are profiled on held-out rows when given (``holdout=``); otherwise the monitor
adopts them from early served traffic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .confidence import ConfidenceProfile, profile_of
from .environment import Fingerprint, capture_warnings, current_fingerprint
from .errors import ConfigurationError, InvalidReferenceError
from .jsontext import to_jsonable_output
from .performance import Performance, training_fit_evidence
from .profiles import Category, FeatureProfile, output_columns, profile_columns, row_sample_of
from .rowsample import RowSample
from .tabular import INPUT_FORMATS, Columns, InputFormat, columns_from_data, columns_to_rows, to_model_input

__all__ = ["Provenance", "Reference", "TrainingDataWarning"]

FORMAT = "guarded-serving/reference"
VERSION = 1

Origin = Literal["training", "holdout", "given"]
ORIGINS = ("training", "holdout", "given")
PREDICT_ROWS = 5000  # rows the model is called on to profile its outputs


class TrainingDataWarning(UserWarning):
    """A reference's predictions and labels look like the rows the model was fitted on (see Reference.from_data)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where each part of a reference came from: ``"training"`` (rows the model was fitted on),
    ``"holdout"`` (rows it never saw) or ``"given"`` (rows passed in, of unknown history).

    Prediction drift and concept drift trust outputs and performance that are not ``"training"``;
    for those that are, the monitor adopts a baseline from early served traffic instead.
    """

    features: Origin = "given"
    outputs: Origin = "given"
    performance: Origin = "given"

    def to_json(self) -> dict[str, str]:
        return {"features": self.features, "outputs": self.outputs, "performance": self.performance}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Provenance:
        parts = {part: data.get(part, "given") for part in ("features", "outputs", "performance")}
        for part, origin in parts.items():
            if origin not in ORIGINS:
                raise InvalidReferenceError(f"provenance of {part}: expected one of {list(ORIGINS)}, got {origin!r}")
        return cls(**parts)


@dataclass(frozen=True, slots=True)
class Reference:
    """The profile of the data a model was validated on, with the environment it was validated in.

    ``classes``: the labels a classifier can return, when known without labelled data (from the model's
    ``classes_`` or the width of its probabilities; :func:`guard` fills it in): labels sent as feedback must
    be among them. With ``performance``, its classes decide instead.

    ``row_sample``: some of the rows whole, for the joint drift check (None in references saved before
    it existed). ``confidence``: what the model's outputs on these rows were worth, for the estimated
    performance check (None without ``predictions=``).
    """

    features: tuple[FeatureProfile, ...]
    rows: int
    input_format: InputFormat
    environment: Fingerprint
    created_at: str
    outputs: tuple[FeatureProfile, ...] = ()
    target: FeatureProfile | None = None
    performance: Performance | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    provenance: Provenance = Provenance()
    classes: tuple[Category, ...] = ()
    row_sample: RowSample | None = None
    confidence: ConfidenceProfile | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @classmethod
    def from_data(
        cls,
        X: Any,
        y: Any = None,
        predictions: Any = None,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str | int] | None = None,
        input_format: InputFormat | None = None,
        task: str | None = None,
        *,
        holdout: Any = None,
        predict: Callable[..., Any] | None = None,
    ) -> Reference:
        """Profile training data ``X`` (array, list of lists, list of dicts or DataFrame).

        ``input_format`` fixes what the predict function receives at serving time; by default the
        same shape as ``X`` (``"array"``, ``"records"`` or ``"dataframe"``).

        The model's outputs and performance describe held-out rows when ``holdout=`` is given
        (``X_val``, or ``(X_val, y_val)``, with the same features as ``X``), else ``X``'s rows.
        They come from ``predictions=`` (one per row they describe) or by calling ``predict=`` on
        those rows (up to 5,000), shaped as the service will shape them; with labels (``y``, or
        ``y_val``), the reference's performance is computed (``task`` is inferred unless given).

        Outputs and performance on training rows are optimistic (a model is more confident, and more
        often right, on rows it was fitted on), so those from ``predict=`` on ``X`` are marked as
        training-set ones (see :class:`Provenance`), and ``predictions=`` with ``y`` that look like
        training rows (far fewer errors than the model's own probabilities predict) raise a
        :class:`~guarded_serving.errors.TrainingDataWarning` and are marked so too.
        """
        columns = columns_from_data(X, feature_names=feature_names, categorical=categorical)
        if input_format is not None and input_format not in INPUT_FORMATS:
            raise ConfigurationError("input_format", input_format, f"one of {list(INPUT_FORMATS)}")
        fmt: InputFormat = input_format or columns.input_format
        described: Columns = columns
        if holdout is not None:
            if y is not None:
                raise ConfigurationError("y", "labels of X with holdout=", "the held-out rows' labels in holdout=(X_val, y_val)")
            held, y = _split_holdout(holdout)
            described = _holdout_columns(held, columns.names, columns.categorical)
        outputs, target, performance, origin, confidence = _describe(
            described, y, predictions, predict, fmt, task, holdout is not None, columns if holdout is not None else None
        )
        features = profile_columns(columns)
        return cls(
            features=features,
            rows=columns.rows,
            input_format=fmt,
            environment=current_fingerprint(),
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            outputs=outputs,
            target=target,
            performance=performance,
            provenance=Provenance(outputs=origin if outputs else "given", performance=origin if performance else "given"),
            row_sample=row_sample_of(columns, features),
            confidence=confidence,
        )

    def with_holdout(
        self,
        holdout: Any,
        *,
        predict: Callable[..., Any] | None = None,
        predictions: Any = None,
        input_format: InputFormat | None = None,
        task: str | None = None,
        fitted: Any = None,
    ) -> Reference:
        """This reference with its outputs and performance profiled on held-out rows, ``X_val`` or
        ``(X_val, y_val)``: from ``predictions=`` (one per held-out row) or by calling ``predict=``.
        ``fitted``: rows the model was fitted on (``X_train``), read with ``predict=`` only when the held-out
        rows look like training rows by their errors (see :meth:`from_data`)."""
        held, y = _split_holdout(holdout)
        names = self.feature_names
        kinds = tuple(f.kind == "categorical" for f in self.features)
        described = _holdout_columns(held, names, kinds)
        fmt: InputFormat = input_format or self.input_format
        trained = _holdout_columns(fitted, names, kinds, "fitted") if fitted is not None and predict is not None else None
        outputs, target, performance, origin, confidence = _describe(described, y, predictions, predict, fmt, task, True, trained)
        if not outputs:
            raise ConfigurationError("holdout", "held-out rows without predictions", "predict= or predictions= to profile")
        provenance = Provenance(self.provenance.features, origin, origin if performance else "given")
        return dataclasses.replace(
            self, outputs=outputs, target=target, performance=performance, provenance=provenance, confidence=confidence
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "rows": self.rows,
            "input_format": self.input_format,
            "features": [f.to_json() for f in self.features],
            "outputs": [f.to_json() for f in self.outputs],
            "target": self.target.to_json() if self.target is not None else None,
            "performance": self.performance.to_json() if self.performance is not None else None,
            "environment": self.environment.to_json(),
            "extra": dict(self.extra),
            "provenance": self.provenance.to_json(),
            "classes": list(self.classes),
            "row_sample": self.row_sample.to_json() if self.row_sample is not None else None,
            "confidence": self.confidence.to_json() if self.confidence is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidReferenceError(f"not a guarded-serving reference: expected format {FORMAT!r}, got {found!r}")
        version = data.get("version")
        if version != VERSION:
            raise InvalidReferenceError(f"reference version {version!r} is not supported; this library reads version {VERSION}")
        try:
            features = tuple(FeatureProfile.from_json(f) for f in data["features"])
            if not features:
                raise InvalidReferenceError("reference has no features")
            return cls(
                features=features,
                rows=int(data["rows"]),
                input_format=data.get("input_format", "array"),
                environment=Fingerprint.from_json(data["environment"]),
                created_at=str(data["created_at"]),
                outputs=tuple(FeatureProfile.from_json(f) for f in data.get("outputs", [])),
                target=FeatureProfile.from_json(data["target"]) if data.get("target") else None,
                performance=Performance.from_json(data["performance"]) if data.get("performance") else None,
                extra=dict(data.get("extra", {})),
                provenance=Provenance.from_json(data.get("provenance") or {}),
                classes=tuple(data.get("classes", ())),
                row_sample=RowSample.from_json(data["row_sample"]) if data.get("row_sample") else None,
                confidence=ConfidenceProfile.from_json(data["confidence"]) if data.get("confidence") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidReferenceError):
                raise
            raise InvalidReferenceError(f"malformed reference document: {type(exc).__name__}: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the reference as JSON (atomically: a partial file never replaces a good one)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reference:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidReferenceError(f"cannot read reference {str(path)!r}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidReferenceError(f"reference {str(path)!r} is not valid JSON: {exc}") from exc
        try:
            return cls.from_json(data)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"reference {str(path)!r}: {exc}") from exc


def performance_labels(labels: Any) -> list[Any]:
    """Labels as plain Python values, one per row (as Performance reads them)."""
    values = list(np.asarray(labels, dtype=object).reshape(-1))
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def probability_columns(outputs: Sequence[FeatureProfile]) -> tuple[int, ...]:
    """For outputs profiled as class probabilities (two or more numeric columns within [0, 1] whose means add
    up to 1), their indices 0..k-1: the labels a function returning them can be judged against; else ()."""
    if len(outputs) < 2 or any(p.kind != "numeric" or p.mean is None for p in outputs):
        return ()
    within = all((p.minimum or 0.0) >= 0.0 and (p.maximum or 0.0) <= 1.0 for p in outputs)
    return tuple(range(len(outputs))) if within and abs(sum(p.mean or 0.0 for p in outputs) - 1.0) < 1e-3 else ()


def with_training_outputs(reference: Reference, columns: Columns, predict: Callable[..., Any], input_format: str) -> Reference:
    """The reference with the model's outputs on (up to 5,000 of) its training rows, marked as such."""
    outputs, _, _, _, _ = _describe(columns, None, None, predict, input_format, None, False)  # type: ignore[arg-type]
    return dataclasses.replace(
        reference, outputs=outputs, provenance=dataclasses.replace(reference.provenance, outputs="training")
    )


def _describe(
    described: Columns,
    y: Any,
    predictions: Any,
    predict: Callable[..., Any] | None,
    input_format: InputFormat,
    task: str | None,
    held_out: bool,
    fitted: Columns | None = None,
) -> tuple[tuple[FeatureProfile, ...], FeatureProfile | None, Performance | None, Origin, ConfidenceProfile | None]:
    """Outputs, target and performance on some rows, where they came from (see Reference.from_data), and the
    confidence profile the performance estimate reads (none from training rows: the model is overconfident there).
    ``fitted``: the training rows, asked of ``predict`` when the held-out rows' errors make them look like those."""
    if predict is not None and not callable(predict):
        raise ConfigurationError("predict", predict, "the model's predict function, or None")
    if predictions is not None and predict is not None:
        raise ConfigurationError(
            "predictions", "predictions and predict=", "one of the two: outputs, or the function making them"
        )
    origin: Origin = "holdout" if held_out else "given"
    rows_of = "held-out row" if held_out else "row of X"
    labels = None if y is None else performance_labels(y)
    if predict is not None:
        origin = "holdout" if held_out else "training"
        described = _first_rows(described, PREDICT_ROWS)
        labels = None if labels is None else labels[:PREDICT_ROWS]
        predictions = _call(predict, described, input_format)
    outputs: tuple[FeatureProfile, ...] = ()
    if predictions is not None:
        out_cols = output_columns(predictions)
        if out_cols.rows != described.rows:
            raise ConfigurationError("predictions", f"{out_cols.rows} rows", f"{described.rows} rows, one per {rows_of}")
        outputs = profile_columns(out_cols)
    target = None
    if labels is not None:
        y_cols = columns_from_data(np.asarray(labels, dtype=object).reshape(-1, 1), feature_names=["target"])
        if y_cols.rows != described.rows:
            raise ConfigurationError("y", f"{y_cols.rows} labels", f"{described.rows} labels, one per {rows_of}")
        target = profile_columns(y_cols)[0]
    performance = None
    if labels is not None and predictions is not None:
        jsonable = to_jsonable_output(predictions)
        performance = Performance.from_data(labels, jsonable, task=task)  # type: ignore[arg-type]
        trained = None  # the model's outputs on its training rows: asked for only when the errors point to them
        if fitted is not None and predict is not None:
            trained = functools.partial(_call, predict, _first_rows(fitted, PREDICT_ROWS), input_format)
        evidence = training_fit_evidence(performance, jsonable, labels, fitted=trained)
        if evidence is not None:
            warnings.warn(
                f"the reference's predictions look like the model's training rows: {evidence}. Outputs and"
                " performance on training rows are optimistic, and production would look worse than it is;"
                " build them on held-out rows: Reference.from_data(X_train, holdout=(X_val, y_val),"
                " predict=model.predict_proba), or guard(..., holdout=(X_val, y_val)). Until then the monitor"
                " judges outputs and performance against early served traffic.",
                TrainingDataWarning,
                stacklevel=4,
            )
            origin = "training"
    confidence = profile_of(predictions, performance, labels) if origin != "training" else None
    return outputs, target, performance, origin, confidence


def _split_holdout(holdout: Any) -> tuple[Any, Any]:
    """``(X_val, y_val)`` or ``X_val`` alone."""
    if isinstance(holdout, tuple):
        if len(holdout) != 2:
            raise ConfigurationError("holdout", f"a tuple of {len(holdout)} items", "held-out rows X_val, or (X_val, y_val)")
        return holdout
    return holdout, None


def _holdout_columns(held: Any, names: tuple[str, ...], categorical: tuple[bool, ...], what: str = "holdout") -> Columns:
    """The held-out rows (or the training rows, ``what="fitted"``) as columns of the reference's features (same names,
    same kinds)."""
    named = names if not (hasattr(held, "columns") or _records(held)) else None
    try:
        columns = columns_from_data(
            held, feature_names=named, categorical=[n for n, c in zip(names, categorical, strict=True) if c]
        )
    except ConfigurationError as exc:
        rows = "held-out rows" if what == "holdout" else "training rows"
        raise ConfigurationError(what, exc.got, f"{rows} with the reference's features ({exc.expected})") from exc
    if columns.names != names:
        raise ConfigurationError(what, f"features {list(columns.names)}", f"the reference's features, {list(names)}")
    wrong = [n for n, a, b in zip(columns.names, columns.categorical, categorical, strict=True) if a != b]
    if wrong:
        raise ConfigurationError(what, f"non-numeric values in {wrong}", "numbers where the reference has numbers")
    return columns


def _records(data: Any) -> bool:
    return isinstance(data, (list, tuple)) and bool(data) and isinstance(data[0], Mapping)


def _first_rows(columns: Columns, limit: int) -> Columns:
    if columns.rows <= limit:
        return columns
    return Columns(columns.names, tuple(v[:limit] for v in columns.values), columns.categorical, columns.input_format)


def _call(predict: Callable[..., Any], columns: Columns, input_format: str) -> Any:
    """Call the model on some rows, shaped as the service will shape them at serving time."""
    rows = columns_to_rows(columns)
    try:
        with capture_warnings():
            result = predict(to_model_input(rows, columns.names, not any(columns.categorical), input_format))
        return to_jsonable_output(result)
    except Exception as exc:
        raise ConfigurationError(
            "predict", f"{type(exc).__name__}: {exc}", "a function that accepts the reference data (it failed on it)"
        ) from exc
