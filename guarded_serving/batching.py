"""Adaptive batching, framework-free: concurrent requests' rows merged into one model call.

A guarded ``/predict`` parses its raw body itself (every bad body gets the guard's 4xx), so BentoML's own
``batchable=True`` cannot batch it; this is the equivalent inside the guard. :class:`Batcher` runs the
requests handed to it in one thread, taking every request already waiting (up to ``max_batch_size`` of
them) as one batch, so batches grow by themselves while the model is busy and stay single requests when
traffic is light. :func:`guarded_serving.handler.predict_batch` runs a batch: each request is validated on
its own (a bad one is answered 4xx and never joins), the others' rows are merged (:func:`merge_inputs`)
into calls of at most ``max_batch_size`` rows (:func:`row_groups`), and each call's result is split back by
row counts (:func:`split_rows`); each request is then answered and logged on its own. A model that fails
fails only the requests of that call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from .errors import ConfigurationError, ModelError
from .jobs import Job, awaited

__all__ = ["Batcher", "BatchingOptions", "merge_inputs", "row_groups", "split_rows"]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class BatchingOptions:
    """``max_batch_size``: rows per model call (a single larger request is called alone, never split);
    ``max_latency_ms``: how long a batch's first request may wait for others to join before the model is
    called. The default, 0, adds no wait: only requests already queued join, which under load (requests
    queueing while the model runs) is what fills batches."""

    max_batch_size: int = 32
    max_latency_ms: float = 0.0

    def __post_init__(self) -> None:
        size = self.max_batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError("batching max_batch_size", size, "a positive integer (rows per model call)")
        wait = self.max_latency_ms
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 60_000:
            raise ConfigurationError("batching max_latency_ms", wait, "milliseconds in [0, 60000]")

    @classmethod
    def of(cls, value: Any) -> BatchingOptions | None:
        """guard()'s ``batching=``: None/False (no batching), True (the defaults), a dict of these fields, or one."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"max_batch_size", "max_latency_ms"})
            if unknown:
                raise ConfigurationError("batching", unknown, "keys among ['max_batch_size', 'max_latency_ms']")
            return cls(**value)
        raise ConfigurationError("batching", value, "True, a dict with max_batch_size and max_latency_ms, or None")


def merge_inputs(inputs: Sequence[Any], input_format: str) -> Any:
    """Several requests' model inputs, already validated and in the same form, as one (rows in order)."""
    if len(inputs) == 1:
        return inputs[0]
    if input_format == "records":
        return [record for part in inputs for record in part]
    if input_format == "dataframe":
        import pandas as pd  # only reached when the reference itself was a DataFrame

        return pd.concat(list(inputs), ignore_index=True)
    return np.concatenate(list(inputs), axis=0)


def split_rows(result: Any, counts: Sequence[int]) -> list[Any]:
    """A model's result for merged rows, split back into each request's part by its row count.

    Arrays and pandas objects are sliced (so each part keeps its type); lists and tuples give lists.
    """
    total = sum(counts)
    if isinstance(result, np.ndarray) and result.ndim >= 1:
        sliced: Any = result
    elif getattr(result, "iloc", None) is not None and hasattr(result, "__len__"):
        sliced = result.iloc  # a pandas DataFrame or Series: sliced by position
    elif isinstance(result, (list, tuple)):
        sliced = list(result)
    else:
        raise ModelError(
            f"the predict function returned a {type(result).__name__} for a batch of {total} rows;"
            " expected one result per row (an array, list or DataFrame)",
            "ModelError",
        )
    length = len(result)
    if length != total:
        raise ModelError(
            f"the predict function returned {length} results for a batch of {total} rows; expected one result per row",
            "ModelError",
        )
    parts, start = [], 0
    for count in counts:
        parts.append(sliced[start : start + count])
        start += count
    return parts


def row_groups(counts: Sequence[int], max_rows: int) -> list[list[int]]:
    """Indices of requests (with ``counts`` rows each) grouped in order into model calls of at most
    ``max_rows`` rows; a request larger than that is a call of its own."""
    groups: list[list[int]] = []
    rows = 0
    for i, count in enumerate(counts):
        if groups and rows + count <= max_rows:
            groups[-1].append(i)
            rows += count
        else:
            groups.append([i])
            rows = count
    return groups


class Batcher(Generic[R]):
    """Runs submitted jobs in batches, in one thread started on first use.

    ``run`` takes a batch's job arguments (a list of tuples) and returns one result per job, in order; if
    it raises, every job of the batch gets that error. Batches hold up to ``max_batch_size`` jobs (rows
    are grouped into model calls by ``run`` itself).
    """

    def __init__(self, run: Callable[[list[tuple[Any, ...]]], Sequence[R]], options: BatchingOptions) -> None:
        self._run_batch = run
        self.options = options
        self._jobs: queue.SimpleQueue[Job[R]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # batches run so far, and the largest: for tests and benchmarks
        self.largest = 0

    def submit(self, *args: Any) -> Job[R]:
        job: Job[R] = Job(args)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="guarded-serving-batcher", daemon=True)
                    self._thread.start()
        self._jobs.put(job)
        return job

    async def call(self, *args: Any) -> R:
        """Submit a job from a coroutine and await its result without blocking the event loop (what every
        form of the service calls). Cancelled (a traffic timeout), the job still runs; its result is unused."""
        return await awaited(self.submit(*args))

    def _take(self) -> list[Job[R]]:
        """The next batch: the first waiting job, those queued behind it, and (with ``max_latency_ms``)
        those that arrive until the first has waited that long or the batch is full."""
        first = self._jobs.get()
        batch = [first]
        limit = self.options.max_batch_size
        deadline = time.monotonic() + self.options.max_latency_ms / 1000.0
        while len(batch) < limit:
            try:
                batch.append(self._jobs.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._jobs.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            try:
                results = list(self._run_batch([job.args for job in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} jobs got {len(results)} results")
                for job, result in zip(batch, results, strict=True):
                    job.result = result
            except BaseException as exc:  # handed to every job of the batch, never kills the thread
                for job in batch:
                    job.error = exc
            for job in batch:
                job.finish()
