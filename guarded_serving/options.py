"""Settings, validated once where they are made and passed down unchanged.

``guard()`` (and :class:`~guarded_serving.monitor.Monitor`'s keyword form) turn their keywords into one
:class:`Options` with :meth:`Options.of`; everything below takes the parts it needs:

    Options
     ├── monitor: MonitorOptions   how health is judged (window, methods, thresholds, history interval)
     ├── privacy: PrivacyOptions   what of a request may be kept (redact, log_inputs, sample_rate)
     ├── store:   StoreOptions     how the log store buffers, writes and prunes
     └── db                        where the log store is (None: no store)

:class:`RequestOptions` holds the request path's own (body and row limits, input format, bearer token).
Each class checks its values when made, naming the keyword the user wrote. Environment variables are
read in one place, :class:`~guarded_serving.envvars.Environment` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from .batching import BatchingOptions
from .envvars import Environment
from .errors import ConfigurationError
from .operational import PipelineThresholds
from .store import DEFAULT_CAPACITY, DEFAULT_CAPACITY_BYTES, SUPPORTED, StoreOptions, check_db
from .tabular import INPUT_FORMATS

# What the Prometheus metrics (served without the token) name of the features: "names" every feature and
# category, "indexed" features by name but a categorical feature's bins by rank (c0, c1 ...), "none" no
# per-feature series at all (see guarded_serving.metrics).
METRICS_LABELS = ("names", "indexed", "none")

if TYPE_CHECKING:
    from .reference import Reference

__all__ = [
    "DEFAULT_DB",
    "MEMORY",
    "Environment",
    "GuardKeywords",
    "MonitorKeywords",
    "MonitorOptions",
    "Options",
    "PrivacyOptions",
    "RequestOptions",
    "StoreOptions",
    "served_options",
]

DEFAULT_DB = "guarded_serving.db"
MEMORY = ":memory:"  # db=":memory:" keeps no log store, as db=None does


def _whole(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(name, value, "a positive integer")


def _seconds(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(name, value, "a positive number of seconds")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(name, value, "True or False")


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    """How a monitor judges health: the model's key (``name``, ``version``), the ``window`` of rows the drift
    checks judge, the ``recent_requests`` the pipeline check judges, drift ``methods`` by feature, whether
    reports show input values (``report_values``), the pipeline ``thresholds`` and the ``history_interval``."""

    name: str = "model"
    version: str | None = None
    window: int = 1000
    recent_requests: int = 1000
    methods: Mapping[str, str] = field(default_factory=dict)
    report_values: bool = False
    history_interval: float = 60.0
    thresholds: PipelineThresholds = field(default_factory=PipelineThresholds)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError("name", self.name, "a non-empty string naming the model")
        if self.version is not None and (not isinstance(self.version, str) or not self.version):
            raise ConfigurationError("version", self.version, "a non-empty string or None")
        _whole("window", self.window)
        _whole("recent_requests", self.recent_requests)
        if not isinstance(self.methods, Mapping):
            raise ConfigurationError("methods", self.methods, "a dict of feature name -> method")
        _flag("report_values", self.report_values)
        _seconds("history_interval", self.history_interval)
        if not isinstance(self.thresholds, PipelineThresholds):
            raise ConfigurationError("thresholds", self.thresholds, "a PipelineThresholds")

    def check_names(self, features: Sequence[str], outputs: Sequence[str]) -> None:
        """Every feature ``methods`` names is one of the reference's inputs or outputs."""
        unknown = sorted(set(self.methods) - set(features) - set(outputs))
        if unknown:
            raise ConfigurationError("methods", unknown, f"feature or output names among {list(features)}")


@dataclass(frozen=True, slots=True)
class PrivacyOptions:
    """What of a request may be kept: ``redact``'s features never leave the process (blanked in the store, left
    out of reports and metrics), ``log_inputs=False`` keeps inputs off disk, ``sample_rate`` logs that share of
    requests' rows (every request is still counted and judged). ``metrics_labels`` is what the Prometheus metrics
    name (served without the token): ``"names"`` features and categories, ``"indexed"`` features by name and a
    categorical feature's bins by rank (``c0``...), ``"none"`` no per-feature series (drift and quality
    statistics, bins) at all."""

    redact: frozenset[str] = frozenset()
    log_inputs: bool = True
    sample_rate: float = 1.0
    metrics_labels: str = "names"

    def __post_init__(self) -> None:
        if not isinstance(self.redact, frozenset) or not all(isinstance(r, str) for r in self.redact):
            raise ConfigurationError("redact", self.redact, "a list of feature names")
        _flag("log_inputs", self.log_inputs)
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ConfigurationError("sample_rate", rate, "a fraction in (0, 1]")
        if self.metrics_labels not in METRICS_LABELS:
            raise ConfigurationError("metrics_labels", self.metrics_labels, f"one of {list(METRICS_LABELS)}")

    @classmethod
    def of(
        cls, redact: Sequence[str] = (), log_inputs: bool = True, sample_rate: float = 1.0, metrics_labels: str = "names"
    ) -> PrivacyOptions:
        if isinstance(redact, str) or not isinstance(redact, (Sequence, set, frozenset)):
            raise ConfigurationError("redact", redact, "a list of feature names")
        if not all(isinstance(r, str) for r in redact):
            raise ConfigurationError("redact", redact, "a list of feature names")
        return cls(frozenset(redact), log_inputs, sample_rate, metrics_labels)

    def check_names(self, features: Sequence[str]) -> None:
        """Every feature ``redact`` names is one of the reference's."""
        unknown = sorted(self.redact - set(features))
        if unknown:
            raise ConfigurationError("redact", unknown, f"feature names among {list(features)}")


# guard()'s and Monitor's keywords for the store's options, where the two names differ
_STORE_KEYWORDS = {"capacity": "store_capacity", "capacity_bytes": "store_capacity_bytes"}


def store_options(**keywords: Any) -> StoreOptions:
    """StoreOptions from guard()'s keywords (``store_capacity=`` is ``capacity``...); an error names the keyword."""
    fields = {next((f for f, k in _STORE_KEYWORDS.items() if k == key), key): value for key, value in keywords.items()}
    try:
        return StoreOptions(**fields)
    except ConfigurationError as exc:
        raise ConfigurationError(_STORE_KEYWORDS.get(exc.argument, exc.argument), exc.got, exc.expected) from None


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """The request path's limits: rows per request, body size, whether missing values are accepted (None: where
    the model takes them, asked of it at start by :mod:`guarded_serving.missing`; True: everywhere), the form
    the model takes its rows in (``input_format``: array, dataframe or records; None: the reference's), and
    the bearer token that ``/feedback`` and the detailed health answers need (None: no token), and how the
    model's calls are batched (``batching``, None: one call per request; see :mod:`guarded_serving.batching`)."""

    max_request_rows: int = 1000
    max_body_bytes: int = 10 * 1024 * 1024
    allow_missing: bool | None = None
    input_format: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    batching: BatchingOptions | None = None

    def __post_init__(self) -> None:
        _whole("max_request_rows", self.max_request_rows)
        _whole("max_body_bytes", self.max_body_bytes)
        if self.allow_missing is not None and not isinstance(self.allow_missing, bool):
            raise ConfigurationError("allow_missing", self.allow_missing, "True, False, or None (where the model takes them)")
        if self.input_format is not None and self.input_format not in INPUT_FORMATS:
            from .inputs import kind_names  # a text, a tensor... (guarded_serving/inputs/)

            if self.input_format not in kind_names():
                raise ConfigurationError("input_format", self.input_format, f"one of {[*INPUT_FORMATS, *kind_names()]}")
        token = self.auth_token
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise ConfigurationError("auth_token", "<hidden>", "a string of at least 16 characters (or None)")
        if self.batching is not None and not isinstance(self.batching, BatchingOptions):
            raise ConfigurationError("batching", self.batching, "a BatchingOptions (or None)")


class MonitorKeywords(TypedDict, total=False):
    """Monitor's keywords besides ``db``, ``feature_names``, ``categorical`` and ``metrics`` (see :meth:`Options.of`)."""

    name: str
    version: str | None
    window: int
    recent_requests: int
    methods: Mapping[str, str] | None
    report_values: bool
    history_interval: float
    thresholds: PipelineThresholds | None
    redact: Sequence[str]
    log_inputs: bool
    sample_rate: float
    metrics_labels: str
    flush_interval: float
    store_capacity: int
    store_capacity_bytes: int
    max_rows: int | None
    max_age: float | None
    overflow: str


class GuardKeywords(MonitorKeywords, total=False):
    """guard()'s and GuardedModel's keywords for the request path, besides Monitor's (see :meth:`Options.of`)."""

    max_request_rows: int
    max_body_bytes: int
    allow_missing: bool | None
    input_format: str | None
    latency_budget_ms: float | None
    batching: Any


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a monitor needs besides its reference: built once, from keywords, by :meth:`of`."""

    monitor: MonitorOptions = MonitorOptions()
    privacy: PrivacyOptions = PrivacyOptions()
    store: StoreOptions = field(default_factory=StoreOptions)
    request: RequestOptions = RequestOptions()
    db: str | os.PathLike[str] | None = None  # the log store's file; None keeps none

    @classmethod
    def of(
        cls,
        *,
        name: str = "model",
        version: str | None = None,
        db: str | os.PathLike[str] | None = None,
        window: int = 1000,
        recent_requests: int = 1000,
        methods: Mapping[str, str] | None = None,
        report_values: bool = False,
        history_interval: float = 60.0,
        thresholds: PipelineThresholds | None = None,
        redact: Sequence[str] = (),
        log_inputs: bool = True,
        sample_rate: float = 1.0,
        metrics_labels: str = "names",
        flush_interval: float = 0.2,
        store_capacity: int = DEFAULT_CAPACITY,
        store_capacity_bytes: int = DEFAULT_CAPACITY_BYTES,
        max_rows: int | None = None,
        max_age: float | None = None,
        overflow: str = "drop",
        max_request_rows: int = 1000,
        max_body_bytes: int = 10 * 1024 * 1024,
        allow_missing: bool | None = None,
        input_format: str | None = None,
        auth_token: str | None = None,
        latency_budget_ms: float | None = None,
        batching: Any = None,
    ) -> Options:
        """The options guard() and Monitor take, under their keyword names; ``db`` as given (":memory:" is None).

        ``latency_budget_ms`` is the pipeline thresholds' (when ``thresholds`` is not given); ``batching`` is
        :meth:`BatchingOptions.of`'s (None, True, a dict or BatchingOptions)."""
        request = RequestOptions(
            max_request_rows, max_body_bytes, allow_missing, input_format, auth_token, BatchingOptions.of(batching)
        )
        if thresholds is None:
            thresholds = PipelineThresholds(latency_budget_ms=latency_budget_ms)
        if methods is not None and not isinstance(methods, Mapping):
            raise ConfigurationError("methods", methods, "a dict of feature name -> method")
        monitor = MonitorOptions(
            name=name,
            version=version,
            window=window,
            recent_requests=recent_requests,
            methods=dict(methods or {}),
            report_values=report_values,
            history_interval=history_interval,
            thresholds=thresholds,
        )
        store = store_options(
            flush_interval=flush_interval,
            store_capacity=store_capacity,
            store_capacity_bytes=store_capacity_bytes,
            max_rows=max_rows,
            max_age=max_age,
            overflow=overflow,
        )
        privacy = PrivacyOptions.of(redact, log_inputs, sample_rate, metrics_labels)
        return cls(monitor, privacy, store, request, store_path(db))

    def replace(self, **changes: Any) -> Options:
        return dataclasses.replace(self, **changes)

    def settings(self) -> dict[str, Any]:
        """The settings that decide how health is judged (as JSON values), saved with the reference."""
        return {
            "window": self.monitor.window,
            "recent_requests": self.monitor.recent_requests,
            "methods": dict(self.monitor.methods),
            "redact": sorted(self.privacy.redact),
            "log_inputs": self.privacy.log_inputs,
            "report_values": self.monitor.report_values,
            "thresholds": dataclasses.asdict(self.monitor.thresholds),
        }

    def check_reference(self, reference: Reference) -> None:
        """The names ``redact`` and ``methods`` give are the reference's, and each method fits its feature's kind."""
        from .drift.baseline import method_of
        from .inputs import kind_of_reference

        kind = kind_of_reference(reference)  # redact= may name an input kind's own fields ("text")
        self.privacy.check_names((*reference.feature_names, *(kind.fields if kind is not None else ())))
        self.monitor.check_names(reference.feature_names, [p.name for p in reference.outputs])
        for profile in (*reference.features, *reference.outputs):
            method_of(profile, self.monitor.methods)


def served_options(
    *, db: str | os.PathLike[str] | None = None, auth_token: str | None = None, **keywords: Unpack[GuardKeywords]
) -> Options:
    """A served model's Options (guard()'s, a monitor feed's): ``db`` defaults to ``$GUARDED_SERVING_DB`` (else
    ``guarded_serving.db``; ``":memory:"`` keeps no store) and ``auth_token`` to ``$GUARDED_SERVING_TOKEN``."""
    environment = Environment.read()
    db = db if db is not None else environment.db or DEFAULT_DB
    token = auth_token if auth_token is not None else environment.token
    return Options.of(db=_outside_bento(db, environment.started_in), auth_token=token, **keywords)


def _outside_bento(db: str | os.PathLike[str], started_in: str | None) -> str | os.PathLike[str]:
    """A relative store path as the user meant it: in the directory the service was started in.

    ``bentoml serve <tag>`` runs each worker in the built Bento's ``src`` folder (beside its ``bento.yaml``), in
    BentoML's own store, so that ``./guarded_serving.db`` landed in ``~/bentoml/bentos/<name>/<version>/src/``:
    not where ``guarded-serving report`` and ``sqlite-utils`` look, packed by ``bentoml export`` with every
    logged input, and lost with ``bentoml delete``. There, a relative path is taken from ``started_in`` (the
    shell's ``$PWD``), when that is an existing directory; anywhere else it is left as it is.
    """
    text = os.fspath(db)
    if text == MEMORY or os.path.isabs(text) or "://" in text or not started_in or not os.path.isdir(started_in):
        return db
    here = Path.cwd()
    if here.name != "src" or not (here.parent / "bento.yaml").is_file():
        return db
    return str(Path(started_in) / text)


def store_path(db: Any) -> str | os.PathLike[str] | None:
    """The log store ``db`` names: a file path, or None for none (``None`` or ``":memory:"``)."""
    if db is None:
        return None
    if not isinstance(db, (str, os.PathLike)):
        raise ConfigurationError("db", db, f"{SUPPORTED}, or a Store")
    if not str(db).strip():
        raise ConfigurationError("db", db, SUPPORTED)
    check_db(db)
    return None if str(db) == MEMORY else db
