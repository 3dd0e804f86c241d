"""Recording: every finished request accounted for, encoded for the drift window and queued for the store.

O(features) work per request: counts, one encoded chunk (kept in memory too, the fallback when the store
cannot be read), and what of the record may reach disk (redacted features blanked, inputs not logged or
sampled out). Hooks (:meth:`Recorder.on_record`) see every record: label joining keeps answered requests'
outputs, the metrics exporter counts them.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..drift.baseline import Baseline
from ..drift.encoder import Encoder, output_rows
from ..drift.window import Chunk, MemoryWindow
from ..environment import WarningLog
from ..errors import ConfigurationError
from ..ids import new_request_id
from ..inputs.kind import InputKind, descriptor_rows
from ..jsontext import dump_text, loads, to_jsonable_output
from ..options import Options
from ..redaction import withheld_warnings
from ..stages import RecentRequest
from ..store import RequestRecord, Store, Totals
from ..tabular import dense

__all__ = ["Recorder"]

_new_tuple = tuple.__new__


class Recorder:
    """Accounts for one monitor's finished requests (answered, rejected or failed)."""

    def __init__(
        self,
        options: Options,
        features: tuple[str, ...],
        baseline: Baseline,
        output_baseline: Baseline | None,
        store: Store | None,
        kept_rows: int,
        warnings: WarningLog,
        log: Any,
        *,
        kind: InputKind | None = None,
    ) -> None:
        privacy = options.privacy
        # An input kind logs its inputs redacted already, in its own fields (the features are descriptors).
        self.kind = kind
        self._inputs_redacted = kind is not None
        self.name, self.version, self.features = options.monitor.name, options.monitor.version, features
        self.redact = privacy.redact
        self.log_inputs = privacy.log_inputs
        self.sample_rate = float(privacy.sample_rate)
        self._redact_idx = [j for j, n in enumerate(features) if n in self.redact]
        self._sampler = random.Random(0)
        self.store = store
        self.warnings = warnings
        self._log = log
        self._encoder = Encoder(baseline)
        self._output_encoder = Encoder(output_baseline) if output_baseline is not None else None
        self.memory_window = MemoryWindow(kept_rows)
        # Made by tuple.__new__ (RecentRequest is a named tuple): ~0.15 µs a request, where its own __new__ costs
        # ~0.4 and a frozen dataclass 0.8; a health check then copies the deque instead of making 1,000 of them.
        self.recent: collections.deque[RecentRequest] = collections.deque(maxlen=options.monitor.recent_requests)
        self._lock = threading.Lock()
        self._requests = self._rows = self._rejected = self._errors = 0
        self._dropped_logged = 0
        self._hooks: list[Callable[[RequestRecord], object]] = []

    def on_record(self, hook: Callable[[RequestRecord], object]) -> None:
        """Call ``hook`` with every record, as it is accounted for (before it is queued for the store)."""
        self._hooks.append(hook)

    def encode(
        self,
        inputs: Sequence[Sequence[Any]] | np.ndarray,
        outputs: Sequence[Any] | None,
        *,
        input_matrix: np.ndarray | None = None,
        output_array: Any = None,
    ) -> Chunk:
        """Encode rows (in feature order) and their predictions for the drift window: O(features) per row."""
        unseen: dict[int, dict[str, int]] = {}
        errors: dict[int, int] = {}
        if input_matrix is not None and self._encoder.all_numeric and input_matrix.shape == (len(inputs), self._encoder.width):
            matrix = input_matrix
        else:
            rows = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
            matrix = self._encoder.encode(rows, unseen, errors)
        encoded_outputs = None
        if self._output_encoder is not None and outputs is not None:
            encoded_outputs = self._numeric_outputs(output_array, len(outputs))
            if encoded_outputs is None:
                rows = output_rows(outputs, self._output_encoder.width)
                encoded_outputs = self._output_encoder.encode(rows, {}, {})
        return Chunk(matrix, encoded_outputs, unseen, errors)

    def _numeric_outputs(self, result: Any, rows: int) -> np.ndarray | None:
        """The model's float/int array result as the encoded outputs, when it has the profiled shape."""
        encoder = self._output_encoder
        if encoder is None or not encoder.all_numeric or not isinstance(result, np.ndarray) or result.dtype.kind not in "fiu":
            return None
        if result.shape == (rows, encoder.width) or (encoder.width == 1 and result.shape == (rows,)):
            return result.astype(np.float64).reshape(rows, encoder.width)  # a copy: the window must not share it
        return None

    def record(self, record: RequestRecord) -> None:
        """Account for one finished request and queue it for the store."""
        if self.redact and record.warnings:  # a warning's message may quote the model's input
            record = dataclasses.replace(record, warnings=withheld_warnings(record.warnings))
        if record.status == "ok" and record.window is None and record.inputs is not None:
            record = dataclasses.replace(record, window=self.encode(record.inputs, record.outputs))
        if record.window is not None:  # kept in memory too: the fallback when the store cannot be read
            self.memory_window.add(record.window)
        for hook in self._hooks:
            hook(record)
        with self._lock:
            self._requests += 1
            if record.status == "ok":
                self._rows += record.rows
            elif record.status == "rejected":
                self._rejected += 1
            else:
                self._errors += 1
            self.recent.append(
                _new_tuple(
                    RecentRequest,
                    (
                        record.status,
                        record.latency_ms,
                        record.stages,
                        record.failed_stage,
                        record.problem_features,
                        record.missing_features,
                        record.rows if record.status == "ok" else 0,
                        record.range_features,
                    ),
                )
            )
        for w in record.warnings:
            self.warnings.record(w.category, w.message, w.location, w.count)
        if self.store is not None and not self.store.put(self._for_disk(record)):
            dropped = self.store.stats().dropped
            if dropped >= 2 * self._dropped_logged:  # log at 1, 2, 4, 8... dropped rows, not every time
                self._dropped_logged = max(dropped, 1)
                self._log.error("store_dropping_rows", dropped=dropped, capacity=self.store.options.capacity)

    def observe(
        self,
        rows: Any,
        predictions: Any,
        *,
        request_id: str | None = None,
        latency_ms: float = 0.0,
        stages: dict[str, float] | None = None,
    ) -> str:
        """Record rows (lists in feature order, dicts, a 2-D array or a DataFrame; with an input kind, its
        inputs as the model got them: texts, say) and one prediction per row."""
        logged: str | None = None
        if self.kind is not None:
            items = self.kind.items(rows, where="rows")
            inputs = descriptor_rows(self.kind.describe(items))
            logged = dump_text(self.kind.logged(items, self.redact))
        else:
            inputs = _rows_as_lists(rows, self.features)
        outputs = to_jsonable_output(predictions)
        if not isinstance(outputs, list) or len(outputs) != len(inputs):
            got = f"{len(outputs)} predictions" if isinstance(outputs, list) else repr(type(predictions).__name__)
            raise ConfigurationError("predictions", got, f"one prediction per row ({len(inputs)})")
        request_id = request_id or new_request_id()
        self.record(
            RequestRecord(
                request_id=request_id,
                ts=time.time(),
                model=self.name,
                version=self.version,
                status="ok",
                rows=len(inputs),
                latency_ms=latency_ms,
                stages=dict(stages or {}),
                inputs=inputs if logged is None else None,
                outputs=outputs,
                window=self.encode(inputs, outputs) if logged is not None else None,
                inputs_json=logged,
            )
        )
        return request_id

    def totals(self) -> Totals:
        """This process's requests, rows, rejections and errors."""
        with self._lock:
            return Totals(self._requests, self._rows, self._rejected, self._errors)

    def recent_requests(self) -> list[RecentRequest]:
        """This process's recent requests, oldest first."""
        with self._lock:
            return list(self.recent)

    @property
    def window_in_store(self) -> bool:
        """The window is shared through the store, unless inputs must not reach disk at all."""
        return self.store is not None and self.log_inputs

    def _for_disk(self, record: RequestRecord) -> RequestRecord:
        """What of a record may be written: redacted features blanked, inputs dropped when not logged
        or not sampled, and the encoded window kept off disk when inputs must not reach it."""
        if (record.inputs is None and record.inputs_json is None) or (
            not self._redact_idx and self.log_inputs and self.sample_rate >= 1.0
        ):
            return record  # the common case: everything may be written as it is
        window = record.window if self.log_inputs else None
        if self._redact_idx and window is not None:
            blanked = window.inputs.copy()
            blanked[:, self._redact_idx] = np.nan
            kept = {j: n for j, n in window.unseen.items() if j not in self._redact_idx}
            window = Chunk(blanked, window.outputs, kept, {})
        outputs = record.outputs
        sampled_out = self.sample_rate < 1.0 and self._sampler.random() >= self.sample_rate
        # Inputs not written are not decoded: with log_inputs=False, decoding a 64-row request's JSON text only to
        # drop it cost ~40 µs of the request thread, a third more than the request's whole guard. Without
        # redaction, inputs written are written as they came (the client's own text, as on the common path).
        inputs: Sequence[Any] | None = None
        inputs_json: str | None = None
        if self.log_inputs and not sampled_out:
            if not self._redact_idx:
                inputs, inputs_json = record.inputs, record.inputs_json
            else:
                inputs = record.inputs
                if inputs is None and record.inputs_json is not None:
                    inputs = loads(record.inputs_json)
                if not self._inputs_redacted and inputs is not None:
                    inputs = _blanked(inputs, self._redact_idx)
        if sampled_out:
            outputs = None
        outputs_json = record.outputs_json if outputs is not None else None
        return dataclasses.replace(
            record, inputs=inputs, outputs=outputs, window=window, inputs_json=inputs_json, outputs_json=outputs_json
        )


def _blanked(rows: Sequence[Any], redacted: list[int]) -> list[list[Any]]:
    """Copies of ``rows`` with the values at ``redacted`` positions set to None (the caller's rows left as they
    are): a few assignments a row, where testing every position of every row cost ~1.5 µs a row of 20."""
    out = [list(row) for row in rows]
    for row in out:
        width = len(row)
        for j in redacted:
            if j < width:
                row[j] = None
    return out


_PLAIN_VALUES = frozenset({float, int, str, bool, type(None)})  # what to_jsonable_output returns unchanged


def _rows_as_lists(rows: Any, names: tuple[str, ...]) -> list[list[Any]]:
    rows = dense(rows, "rows")
    if hasattr(rows, "columns") and hasattr(rows, "to_numpy"):
        missing = [n for n in names if n not in rows.columns]
        if missing:
            raise ConfigurationError("rows", f"columns {list(rows.columns)}", f"the reference features {list(names)}")
        frame = rows[list(names)].astype(object)
        rows = frame.where(frame.notna(), None).to_numpy(dtype=object)  # pandas.NA and NaT (nullable dtypes) as missing
    if isinstance(rows, np.ndarray):
        matrix = rows.reshape(1, -1) if rows.ndim == 1 else rows
        if matrix.ndim == 2 and matrix.dtype.kind in "biuf" and matrix.size and matrix.shape[1] == len(names):
            return matrix.tolist()  # numbers (and booleans) only: tolist's values are their own JSON form
        rows = matrix.tolist()
    if not isinstance(rows, list) or not rows:
        raise ConfigurationError("rows", rows, "a non-empty list of rows, a 2-D array or a DataFrame")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            out.append([to_jsonable_output(row.get(n)) for n in names])
        elif isinstance(row, (list, tuple)) and len(row) == len(names):
            # A row of plain values (an array's rows, most lists) is its own JSON form: converting each value
            # cost ~0.9 µs, 5.6 ms for 100 rows of 64 against 0.15 for the array's tolist()
            plain = _PLAIN_VALUES.issuperset(map(type, row))
            out.append(list(row) if plain else [to_jsonable_output(v) for v in row])
        else:
            raise ConfigurationError(f"rows[{i}]", row, f"a list of {len(names)} values or a dict by feature name")
    return out
