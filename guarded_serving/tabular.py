"""Turn the shapes people keep data in into named, typed columns, and back into model input.

Accepted: a 2-D numpy array, a list of lists, a list of dicts, a pandas DataFrame when pandas
happens to be installed, and a scipy.sparse matrix, made dense (neither is imported here; both are
recognised by duck typing).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import ConfigurationError

__all__ = [
    "MAX_SPARSE_CELLS",
    "Columns",
    "InputFormat",
    "columns_from_data",
    "columns_to_rows",
    "dense",
    "is_missing",
    "to_model_input",
]

InputFormat = Literal["array", "dataframe", "records"]
# A sparse matrix is profiled as the dense array it stands for: at most this many cells (400 MB of float64), so that
# a bag-of-words of a large corpus fails with a message naming the fix instead of exhausting memory.
MAX_SPARSE_CELLS = 50_000_000
INPUT_FORMATS: tuple[str, ...] = ("array", "dataframe", "records")


@dataclass(frozen=True, slots=True)
class Columns:
    """Named columns of training data; numeric columns are float64 with NaN for missing values,
    categorical columns are object arrays with None for missing values."""

    names: tuple[str, ...]
    values: tuple[np.ndarray, ...]
    categorical: tuple[bool, ...]
    input_format: InputFormat

    @property
    def rows(self) -> int:
        return len(self.values[0]) if self.values else 0


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    # pandas.NA, pandas.NaT and numpy.datetime64('NaT') do not equal themselves or raise on bool()
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True


def _is_dataframe(data: object) -> bool:
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns") and hasattr(data, "dtypes")


def _is_sparse(data: object) -> bool:
    return type(data).__module__.startswith("scipy.sparse") and hasattr(data, "toarray") and hasattr(data, "shape")


def dense(data: Any, argument: str) -> Any:
    """A scipy.sparse matrix (CSR, CSC, COO..., matrix or array) as the dense 2-D array it stands for; anything
    else unchanged. The drift checks read every value of every feature, zeros included, so a sparse matrix is no
    cheaper to monitor than its dense form: one too large for memory is refused, naming its shape and the fix."""
    if not _is_sparse(data):
        return data
    rows, features = (int(n) for n in data.shape)
    if rows * features > MAX_SPARSE_CELLS:
        raise ConfigurationError(
            argument,
            f"a sparse matrix of {rows:,} rows x {features:,} features",
            f"at most {MAX_SPARSE_CELLS:,} values once dense (pass a sample of its rows, X[:n])",
        )
    return np.asarray(data.toarray())


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real)


def _infer_categorical(column: np.ndarray) -> bool:
    """Categorical when a present value is not a number, or when every one is a boolean: JSON clients send a flag as
    true/false, which a numeric feature refuses (a bool is an int to Python, so it would profile as 0/1)."""
    present = [v for v in column if not is_missing(v)]
    return any(not _is_number(v) for v in present) or (bool(present) and all(isinstance(v, bool) for v in present))


def _numeric(column: np.ndarray, name: str) -> np.ndarray:
    out = np.empty(len(column), dtype=np.float64)
    for i, v in enumerate(column):
        if is_missing(v):
            out[i] = np.nan
        elif _is_number(v):
            out[i] = float(v)  # type: ignore[arg-type]
        else:
            raise ConfigurationError(f"reference feature {name!r} row {i}", v, "a number (the feature is numeric)")
    return out


def _categorical(column: np.ndarray) -> np.ndarray:
    out = np.empty(len(column), dtype=object)
    for i, v in enumerate(column):
        if is_missing(v):
            out[i] = None
        elif isinstance(v, np.generic):
            out[i] = v.item()
        else:
            out[i] = v
    return out


def _resolve_names(count: int, given: Sequence[str] | None, found: Sequence[str] | None) -> tuple[str, ...]:
    if given is not None:
        names = tuple(str(n) for n in given)
        if len(names) != count:
            raise ConfigurationError("feature_names", list(given), f"{count} names, one per column")
    elif found is not None:
        names = tuple(str(n) for n in found)
    else:
        names = tuple(f"f{i}" for i in range(count))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError("feature_names", duplicates, "unique feature names")
    return names


def _resolve_categorical(names: tuple[str, ...], categorical: Sequence[str | int] | None) -> set[str]:
    if categorical is None:
        return set()
    chosen: set[str] = set()
    for item in categorical:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(names):
                raise ConfigurationError("categorical", item, f"a feature index in 0..{len(names) - 1} or a name")
            chosen.add(names[item])
        elif str(item) in names:
            chosen.add(str(item))
        else:
            raise ConfigurationError("categorical", item, f"one of the feature names {list(names)}")
    return chosen


def columns_from_data(
    data: Any,
    feature_names: Sequence[str] | None = None,
    categorical: Sequence[str | int] | None = None,
) -> Columns:
    """Split training data into named columns and decide which are categorical.

    A column is categorical when ``categorical=`` names it, when its pandas dtype is not numeric
    (object, string, category), or when any of its non-missing values is not a number.
    """
    if isinstance(data, Columns):  # already named and typed (an input kind's descriptors)
        return data
    data = dense(data, "reference")
    found: list[str] | None = None
    raw: list[np.ndarray]
    dtype_categorical: list[bool] | None = None
    fmt: InputFormat
    if _is_dataframe(data):
        fmt = "dataframe"
        found = [str(c) for c in data.columns]
        raw = [np.asarray(data[c].to_numpy(dtype=object)) for c in data.columns]
        dtype_categorical = [getattr(dt, "kind", "O") not in "iuf" for dt in data.dtypes]  # a bool column too
    elif isinstance(data, np.ndarray):
        fmt = "array"
        if data.ndim != 2:
            raise ConfigurationError("reference", f"array of shape {data.shape}", "a 2-D array (rows x features)")
        if data.dtype.kind in "iuf":
            raw = [data[:, j].astype(np.float64) for j in range(data.shape[1])]
            dtype_categorical = [False] * data.shape[1]
        else:
            raw = [data[:, j].astype(object) for j in range(data.shape[1])]
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and len(data) > 0:
        first = data[0]
        if isinstance(first, dict):
            fmt = "records"
            keys: dict[str, None] = {}
            for i, record in enumerate(data):
                if not isinstance(record, dict):
                    raise ConfigurationError(f"reference row {i}", record, "a dict like the first row")
                keys.update(dict.fromkeys(str(k) for k in record))
            found = list(keys)
            raw = [np.array([r.get(k) for r in data], dtype=object) for k in found]
        elif isinstance(first, (list, tuple, np.ndarray)):
            fmt = "array"
            width = len(first)
            for i, row in enumerate(data):
                if not isinstance(row, (list, tuple, np.ndarray)) or len(row) != width:
                    raise ConfigurationError(f"reference row {i}", row, f"a list of {width} values like the first row")
            table = np.empty((len(data), width), dtype=object)
            for i, row in enumerate(data):
                table[i, :] = list(row)
            raw = [table[:, j] for j in range(width)]
        else:
            raise ConfigurationError("reference", first, "rows as lists or dicts (a list of rows)")
    else:
        raise ConfigurationError(
            "reference",
            data,
            "a saved reference path, a Reference, a 2-D numpy array, a list of lists, a list of dicts "
            "or a pandas DataFrame, with at least one row",
        )
    if not raw:
        raise ConfigurationError("reference", data, "at least one feature column")
    if len(raw[0]) == 0:
        raise ConfigurationError("reference", data, "at least one row")
    names = _resolve_names(len(raw), feature_names, found)
    forced = _resolve_categorical(names, categorical)
    kinds: list[bool] = []
    values: list[np.ndarray] = []
    for j, (name, column) in enumerate(zip(names, raw, strict=True)):
        is_cat = name in forced or (dtype_categorical[j] if dtype_categorical is not None else False)
        if not is_cat and column.dtype == object:
            is_cat = _infer_categorical(column)
        kinds.append(is_cat)
        if is_cat:
            values.append(_categorical(column))
        elif column.dtype == np.float64:
            values.append(column)
        else:
            values.append(_numeric(column, name))
    return Columns(names=names, values=tuple(values), categorical=tuple(kinds), input_format=fmt)


def columns_to_rows(columns: Columns, limit: int | None = None) -> list[list[Any]]:
    """Rows (lists in feature order, None for missing) of the first ``limit`` rows of some columns."""
    count = columns.rows if limit is None else min(limit, columns.rows)
    rows: list[list[Any]] = [[] for _ in range(count)]
    for values, is_cat in zip(columns.values, columns.categorical, strict=True):
        for i in range(count):
            v = values[i]
            rows[i].append(v if is_cat else (None if v != v else float(v)))
    return rows


def to_model_input(rows: list[list[Any]], names: tuple[str, ...], all_numeric: bool, input_format: str) -> Any:
    """Build what the wrapped predict function receives from validated rows (in feature order).

    ``array``: a float64 array (NaN for missing) when every feature is numeric, else an object array;
    ``records``: a list of dicts; ``dataframe``: a pandas DataFrame with the reference's columns.
    """
    if input_format == "records":
        return [dict(zip(names, row, strict=True)) for row in rows]
    if input_format == "dataframe":
        import pandas as pd  # only reached when the reference itself was a DataFrame

        return pd.DataFrame(rows, columns=list(names))
    if all_numeric:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    table = np.empty((len(rows), len(names)), dtype=object)
    for i, row in enumerate(rows):
        table[i, :] = row
    return table
