"""A feed of column records into a :class:`~guarded_serving.monitor.Monitor`, off the request path.

BentoML's ``bentoml.monitor`` hands its backend each request's logged columns, each with a role
(``feature``, ``prediction`` or ``target``). :class:`MonitorFeed` is the framework-free part of the backend
that turns them into the guard's records (:mod:`guarded_serving.bentoml_monitor` is the BentoML side):
feature columns become rows (in the reference's feature order; a feature not logged is missing), prediction
columns the outputs (one column: its values; several: a list per row, in the order they were logged) and a
target column the rows' labels. The request path only appends the columns to a bounded queue
(:meth:`MonitorFeed.put`); a thread records them in the monitor (which queues them for the store's writer)
and stores the labels, and the monitor's periodic evaluator judges health.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from .errors import ConfigurationError, GuardedServingError
from .logs import get_logger
from .monitor import Monitor, as_reference
from .options import GuardKeywords, served_options
from .reference import Reference

__all__ = ["DEFAULT_CAPACITY", "MonitorFeed", "Roles"]

DEFAULT_CAPACITY = 10_000  # records waiting for the feed's thread; more are dropped and counted


@dataclass(frozen=True, slots=True)
class Roles:
    """Which logged columns are the reference's features, the predictions and the target."""

    features: tuple[str | None, ...]  # per reference feature, the column holding it (None: not logged)
    predictions: tuple[str, ...]
    target: str | None
    ignored: tuple[str, ...]  # feature columns the reference does not know

    @classmethod
    def of(cls, columns: Mapping[str, Mapping[str, str]], reference: Reference) -> Roles:
        """From ``bentoml.monitor``'s schema: column name -> {"name", "role", "type"}."""
        by_role: dict[str, list[str]] = {"feature": [], "prediction": [], "target": []}
        for name, column in columns.items():
            role = column.get("role") if isinstance(column, Mapping) else None
            if role in by_role:
                by_role[str(role)].append(str(name))
        logged = set(by_role["feature"])
        features = tuple(name if name in logged else None for name in reference.feature_names)
        if logged and not any(features):  # (none logged yet: the first columns BentoML saw were others)
            expected = f"columns named as the reference's features {list(reference.feature_names)}"
            raise ConfigurationError("bentoml.monitor feature columns", sorted(logged), expected)
        ignored = tuple(sorted(logged - set(reference.feature_names)))
        targets = by_role["target"]
        if len(targets) > 1:
            raise ConfigurationError("bentoml.monitor target columns", targets, "at most one column with role 'target'")
        return cls(features, tuple(by_role["prediction"]), targets[0] if targets else None, ignored)


class MonitorFeed:
    """One ``bentoml.monitor`` name's records feeding one monitor (see the module docstring).

    ``reference``: a saved reference's path (or a :class:`Reference`); ``name`` is the model's name in the
    store and reports; ``db`` defaults to ``$GUARDED_SERVING_DB`` (else ``guarded_serving.db``), as in
    :func:`~guarded_serving.guard`; the other keywords are guard()'s monitor options (``window``,
    ``history_interval``, ``redact`` ...). It serves :mod:`guarded_serving.endpoints` as a guarded model does.
    """

    def __init__(
        self,
        reference: str | os.PathLike[str] | Reference,
        *,
        db: str | os.PathLike[str] | None = None,
        auth_token: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        **keywords: Unpack[GuardKeywords],
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigurationError("capacity", capacity, "a positive number of records")
        self.options = served_options(db=db, auth_token=auth_token, **keywords)
        self.reference = as_reference(reference, None, None)
        self.options.check_reference(self.reference)
        self.name = self.options.monitor.name
        self.version = self.options.monitor.version
        self.auth_token = self.options.request.auth_token
        self.max_body_bytes = self.options.request.max_body_bytes
        self.capacity = capacity
        self.log = get_logger().bind(model=self.name)
        self.monitor: Monitor | None = None
        self.roles: Roles | None = None
        self.dropped = 0
        self._pending: collections.deque[tuple[Mapping[str, Sequence[Any]], str | None]] = collections.deque()
        self._busy = False
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, metrics: Any = None) -> Monitor:
        """The monitor, started on first use (``metrics``: a Prometheus metrics factory), and the feed's thread."""
        with self._cond:
            if self.monitor is None:
                self.monitor = Monitor.of(self.reference, self.options, metrics=metrics).start()
                self._thread = threading.Thread(target=self._run, name=f"guarded-serving-feed-{self.name}", daemon=True)
                self._thread.start()
            return self.monitor

    def close(self, timeout: float = 10.0) -> None:
        """Record what is queued (waiting at most ``timeout`` seconds), then flush and stop the monitor."""
        self.drain(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.monitor is not None:
            self.monitor.close(timeout)

    # -- the request path ---------------------------------------------------------------------
    def schema(self, columns: Mapping[str, Mapping[str, str]]) -> None:
        """The columns' roles (name -> {"name", "role", "type"}, as ``bentoml.monitor`` gives them). Never raises
        (it runs in the user's request): columns that do not fit the reference are logged, and their records too."""
        try:
            roles = Roles.of(columns, self.reference)
        except ConfigurationError as exc:
            self.roles = None
            self.log.warning("monitor_columns_unusable", error=str(exc)[:500])
            return
        if roles.ignored and (self.roles is None or roles.ignored != self.roles.ignored):
            expected = list(self.reference.feature_names)
            self.log.warning("monitor_columns_ignored", columns=list(roles.ignored), expected=expected)
        self.roles = roles

    def put(self, columns: Mapping[str, Sequence[Any]], request_id: str | None = None) -> bool:
        """Queue one record's columns (name -> one value per row) for the feed's thread: the only work
        on the request path. False (and counted) when ``capacity`` records are already waiting."""
        self.start()
        with self._cond:
            if len(self._pending) >= self.capacity:
                self.dropped += 1
                if self.dropped & (self.dropped - 1) == 0:  # log at 1, 2, 4, 8... dropped records
                    self.log.error("monitor_feed_dropping", dropped=self.dropped, capacity=self.capacity)
                return False
            self._pending.append((columns, request_id))
            self._cond.notify()
        return True

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is in the monitor (so a health report judges it)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    # -- the feed's thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                columns, request_id = self._pending.popleft()
                self._busy = True
            try:
                self._record(columns, request_id)
            except GuardedServingError as exc:  # a record that does not fit: logged, never kills the thread
                self.log.error("monitor_record_refused", request_id=request_id, error=str(exc)[:500])
            except Exception as exc:
                self.log.error("monitor_record_failed", request_id=request_id, error=repr(exc)[:500])
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _record(self, columns: Mapping[str, Sequence[Any]], request_id: str | None) -> None:
        roles, monitor = self.roles, self.monitor
        if roles is None or monitor is None or not any(roles.features):
            expected = f"feature columns named as the reference's {list(self.reference.feature_names)}"
            raise ConfigurationError("bentoml.monitor columns", sorted(columns), expected)
        lists = {name: list(values) for name, values in columns.items()}
        n = max((len(v) for v in lists.values()), default=0)
        if n == 0 or any(len(v) != n for v in lists.values()):
            raise ConfigurationError("bentoml.monitor columns", {k: len(v) for k, v in lists.items()}, "columns of one length")
        missing = [None] * n
        cells = [lists.get(name, missing) if name is not None else missing for name in roles.features]
        rows = [list(row) for row in zip(*cells, strict=True)]
        predicted = [lists[name] for name in roles.predictions if name in lists]
        if not predicted:
            outputs: list[Any] = [None] * n
        elif len(predicted) == 1:
            outputs = predicted[0]
        else:
            outputs = [list(row) for row in zip(*predicted, strict=True)]
        request_id = monitor.observe(rows, outputs, request_id=request_id)
        if roles.target is not None and roles.target in lists:
            monitor.feedback(request_id, lists[roles.target])
