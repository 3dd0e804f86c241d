"""Training data files as named columns, for ``guarded-serving profile``.

CSV with a header row (a cell that parses as a number is a number, an empty cell is missing, and a
column with any other text is text throughout, as pandas reads it), ``.npy`` (a 2-D array saved with
``numpy.save``) and Parquet (when pyarrow is installed). A :class:`Table` is then split into the
arguments of :meth:`Reference.from_data`: features, target, predictions.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigurationError

__all__ = ["FORMATS", "Table", "read_table", "split_columns"]

FORMATS = {".csv": "csv", ".npy": "npy", ".parquet": "parquet", ".pq": "parquet"}
_TICK = 5000  # rows between progress reports

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Table:
    """Columns read from a file: float64 arrays (NaN for missing) for numeric ones, lists otherwise."""

    names: tuple[str, ...]
    columns: tuple[Any, ...]
    source: str

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def numeric(self, name: str) -> bool:
        return isinstance(self.columns[self.names.index(name)], np.ndarray)

    def renamed(self, names: Sequence[str]) -> Table:
        if len(names) != len(self.names):
            raise ConfigurationError("feature_names", list(names), f"{len(self.names)} names, one per column of {self.source}")
        return Table(tuple(names), self.columns, self.source)

    def as_categorical(self, names: Sequence[str]) -> Table:
        """Numeric columns among ``names`` as category labels (whole numbers as int: 3, not 3.0)."""
        columns = tuple(
            labels_of(c) if n in names and isinstance(c, np.ndarray) else c for n, c in zip(self.names, self.columns, strict=True)
        )
        return Table(self.names, columns, self.source)

    def take(self, name: str, what: str) -> tuple[Any, Table]:
        """One column (by name), and the table without it; ``what`` names the option in errors."""
        if name not in self.names:
            raise ConfigurationError(what, name, f"one of the columns of {self.source}: {list(self.names)}")
        j = self.names.index(name)
        rest = Table(self.names[:j] + self.names[j + 1 :], self.columns[:j] + self.columns[j + 1 :], self.source)
        return self.columns[j], rest

    def matrix(self) -> np.ndarray:
        """The columns side by side: float64 when all are numeric, else an object array."""
        if all(isinstance(c, np.ndarray) for c in self.columns):
            return np.column_stack(self.columns) if self.columns else np.empty((self.rows, 0))
        table = np.empty((self.rows, len(self.columns)), dtype=object)
        for j, column in enumerate(self.columns):
            table[:, j] = [None if isinstance(v, float) and math.isnan(v) else v for v in column]
        return table


def labels_of(column: np.ndarray) -> list[Any]:
    """Numbers as plain values: whole numbers as int (3, not 3.0) when all are, else float; None for missing."""
    present = column[~np.isnan(column)]
    whole = bool(np.all(present == np.round(present)))
    return [None if math.isnan(v) else int(v) if whole else float(v) for v in column.tolist()]


def read_table(path: str | os.PathLike[str], progress: Progress | None = None) -> Table:
    """Read a CSV (with a header), .npy or Parquet file; ``progress(done, total)`` is told bytes read (CSV)."""
    source = str(path)
    kind = FORMATS.get(Path(source).suffix.lower())
    if kind is None:
        raise ConfigurationError("data", source, f"a file ending in one of {sorted(FORMATS)}")
    if not os.path.isfile(source):
        raise ConfigurationError("data", source, "an existing file (no such file)")
    if kind == "npy":
        return _read_npy(source)
    if kind == "parquet":
        return _read_parquet(source)
    return _read_csv(source, progress)


def _read_npy(source: str) -> Table:
    try:
        array = np.load(source, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ConfigurationError("data", source, f"a .npy file of numbers saved with numpy.save ({exc})") from None
    if array.ndim != 2 or array.dtype.kind not in "biuf" or array.shape[0] == 0:
        raise ConfigurationError("data", f"{source}: array of shape {array.shape}, dtype {array.dtype}", "a 2-D numeric array")
    values = array.astype(np.float64)
    return Table(tuple(f"f{j}" for j in range(values.shape[1])), tuple(values[:, j] for j in range(values.shape[1])), source)


def _read_parquet(source: str) -> Table:
    try:
        import pyarrow.parquet as pq  # an optional dependency: only Parquet needs it
    except ImportError:
        raise ConfigurationError("data", source, "pyarrow to be installed to read Parquet (pip install pyarrow)") from None
    import pyarrow as pa

    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigurationError("data", source, f"a readable Parquet file ({exc})") from None
    columns: list[Any] = []
    for field, column in zip(table.schema, table.columns, strict=True):
        t = field.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
            columns.append(np.array([np.nan if v is None else float(v) for v in column.to_pylist()], dtype=np.float64))
        else:
            columns.append(column.to_pylist())
    if not columns or table.num_rows == 0:
        raise ConfigurationError("data", source, "a table with at least one column and one row")
    return Table(tuple(str(n) for n in table.column_names), tuple(columns), source)


def _read_csv(source: str, progress: Progress | None) -> Table:
    try:
        return _parse_csv(source, progress)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigurationError("data", source, f"a UTF-8 CSV file ({exc})") from None


def _parse_csv(source: str, progress: Progress | None) -> Table:
    total = os.path.getsize(source)
    with open(source, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ConfigurationError("data", source, "a CSV file whose first line names the columns")
        width = len(header)
        cells: list[list[str]] = [[] for _ in range(width)]
        for row in reader:
            if not row:
                continue  # blank line
            if len(row) != width:
                raise ConfigurationError(
                    f"{source}, line {reader.line_num}", row, f"{width} values, one per column of the header"
                )
            for j, cell in enumerate(row):
                cells[j].append(cell)
            if progress is not None and len(cells[0]) % _TICK == 0:
                progress(raw.tell(), total)
    if not cells[0]:
        raise ConfigurationError("data", source, "a CSV file with at least one row under its header")
    if progress is not None:
        progress(total, total)
    return Table(
        tuple(header), tuple(_csv_column(source, name, column) for name, column in zip(header, cells, strict=True)), source
    )


def _csv_column(source: str, name: str, cells: list[str]) -> Any:
    """Numbers (NaN for empty cells) when every non-empty cell is a number, else the text (None for empty)."""
    values = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        if cell == "":
            values[i] = np.nan
            continue
        try:
            values[i] = float(cell)
        except ValueError:
            return [cell if cell != "" else None for cell in cells]
        if math.isinf(values[i]):
            raise ConfigurationError(
                f"{source}, column {name!r}, row {i + 1} under the header", cell, "a finite number or an empty cell"
            )
    return values


def split_columns(
    table: Table, target: str | None, predictions: Sequence[str] | None, present_only: bool = False
) -> tuple[list[Any] | None, Any, Table]:
    """Take the ``target`` and ``predictions`` columns out of a table: (labels, outputs, the features). With
    ``present_only`` (the training file, when the held-out one holds them) they are dropped where present."""
    if present_only:
        for column in [target, *(predictions or ())]:
            if column is not None and column in table.names:
                _, table = table.take(column, "target")
        return None, None, table
    y = None
    if target:
        values, table = table.take(target, "target")
        y = labels_of(values) if isinstance(values, np.ndarray) else list(values)
    outputs = None
    if predictions:
        columns = []
        for column in predictions:
            values, table = table.take(column, "predictions")
            columns.append(values)
        outputs = _stack(columns)
    return y, outputs, table


def _stack(outputs: list[Any]) -> Any:
    """One predictions column as it is (text as an object array); several as a matrix of class probabilities."""
    if len(outputs) == 1:
        return outputs[0] if isinstance(outputs[0], np.ndarray) else np.array(outputs[0], dtype=object)
    if not all(isinstance(o, np.ndarray) for o in outputs):
        raise ConfigurationError("predictions", "a column of text", "numeric columns (one per class probability)")
    return np.column_stack(outputs)
