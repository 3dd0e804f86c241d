"""Library drift: the environment a model was validated in, against the one serving it.

Two things are watched:

* the **fingerprint** (Python version, platform, installed distributions with versions), taken when a
  reference is built and compared with the running process;
* **warnings** raised while predicting: deprecation, pending-deprecation and future warnings are
  the early signs that an upgrade will change or break the model. They are deduplicated by
  category + message + location and counted, in a table of bounded size.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.metadata
import platform
import re
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "EnvironmentDiff",
    "Fingerprint",
    "PackageChange",
    "WarningLog",
    "WarningRecord",
    "capture_warnings",
    "current_fingerprint",
    "diff_environment",
]

WATCHED_CATEGORIES: tuple[type[Warning], ...] = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the process runs on: Python, platform and every installed distribution's version."""

    python: str
    platform: str
    packages: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "platform": self.platform, "packages": dict(sorted(self.packages.items()))}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        packages = data.get("packages", {})
        return cls(
            python=str(data["python"]),
            platform=str(data.get("platform", "")),
            packages=MappingProxyType({_normalise(str(k)): str(v) for k, v in packages.items()}),
        )


@functools.cache
def current_fingerprint() -> Fingerprint:
    """The running process's fingerprint (computed once per process)."""
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(_normalise(name), dist.version)
    return Fingerprint(
        python=platform.python_version(),
        platform=f"{sys.platform}-{platform.machine()}",
        packages=MappingProxyType(packages),
    )


@dataclass(frozen=True, slots=True)
class PackageChange:
    """One distribution whose version differs; ``None`` means not installed on that side."""

    name: str
    reference: str | None
    current: str | None

    def __str__(self) -> str:
        if self.current is None:
            return f"{self.name} {self.reference} is missing"
        return f"{self.name} {self.reference} -> {self.current}"


@dataclass(frozen=True, slots=True)
class EnvironmentDiff:
    """What changed between the reference's environment and the running one."""

    python: tuple[str, str] | None
    changed: tuple[PackageChange, ...]
    missing: tuple[PackageChange, ...]
    added: int

    @property
    def differs(self) -> bool:
        return bool(self.python or self.changed or self.missing)


def diff_environment(reference: Fingerprint, current: Fingerprint) -> EnvironmentDiff:
    """Compare two fingerprints. Packages only present in ``current`` are counted, not listed."""
    changed = []
    missing = []
    for name, version in sorted(reference.packages.items()):
        now = current.packages.get(name)
        if now is None:
            missing.append(PackageChange(name, version, None))
        elif now != version:
            changed.append(PackageChange(name, version, now))
    added = sum(1 for name in current.packages if name not in reference.packages)
    python = None if reference.python == current.python else (reference.python, current.python)
    return EnvironmentDiff(python=python, changed=tuple(changed), missing=tuple(missing), added=added)


@dataclass(frozen=True, slots=True)
class WarningRecord:
    """A warning raised while predicting, with how often it was seen."""

    category: str
    message: str
    location: str
    count: int


class WarningLog:
    """Counts warnings by category + message + location.

    Bounded: at most ``capacity`` distinct warnings are kept; later distinct ones are only counted
    in :attr:`overflow`. Thread-safe. ``on_new`` is called once for each warning not seen before.
    """

    def __init__(self, capacity: int = 64, on_new: Callable[[WarningRecord], None] | None = None) -> None:
        self.capacity = capacity
        self._on_new = on_new
        self.overflow = 0
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def record(self, category: str, message: str, location: str, count: int = 1) -> bool:
        """Count one warning; return True when it was not seen before."""
        key = (category, message, location)
        with self._lock:
            if key in self._counts:
                self._counts[key] += count
                return False
            if len(self._counts) >= self.capacity:
                self.overflow += count
                return False
            self._counts[key] = count
        if self._on_new is not None:
            self._on_new(WarningRecord(category, message, location, count))
        return True

    def snapshot(self) -> tuple[WarningRecord, ...]:
        with self._lock:
            items = list(self._counts.items())
        return tuple(WarningRecord(c, m, loc, n) for (c, m, loc), n in sorted(items, key=lambda kv: -kv[1]))


_active: contextvars.ContextVar[list[WarningRecord] | None] = contextvars.ContextVar("guarded_serving_warnings", default=None)


class capture_warnings:  # noqa: N801 - used like a function, as contextlib's helpers are
    """Collect the deprecation/future warnings raised inside the block (in this context only).

    Unlike :class:`warnings.catch_warnings`, this is safe with threads: the capture scope is a
    context variable, and the process-wide hook is installed once. A class rather than a
    ``contextlib.contextmanager`` generator: every request enters one, and the generator's
    machinery cost 1.1 µs of the 1.8 a capture took.
    """

    __slots__ = ("_token", "collected")

    def __init__(self) -> None:
        self.collected: list[WarningRecord] = []
        self._token: contextvars.Token[list[WarningRecord] | None] | None = None

    def __enter__(self) -> list[WarningRecord]:
        _install_hook()
        self._token = _active.set(self.collected)
        return self.collected

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None


_hook_lock = threading.Lock()
_hook: Callable[..., None] | None = None
_WATCHED_FILTERS = tuple(("always", None, category, None, 0) for category in WATCHED_CATEGORIES)


_seen_filters: tuple[object, int, object] | None = None  # (the filters list, its length, its first entry)


def _hook_active() -> bool:
    """Is the hook installed with the watched filters? Checked in full only when the filters list
    was replaced or changed at its head (catch_warnings swaps the list; filterwarnings inserts at 0),
    so that a request usually pays three identity tests instead of a scan of every filter."""
    global _seen_filters
    filters = warnings.filters
    if warnings.showwarning is not _hook:
        return False
    seen = _seen_filters
    if seen is not None and seen[0] is filters and seen[1] == len(filters) and (not filters or seen[2] is filters[0]):
        return True
    snapshot = (filters, len(filters), filters[0] if filters else None)
    if all(f in filters for f in _WATCHED_FILTERS):
        _seen_filters = snapshot
        return True
    return False


def _install_hook() -> None:
    """Route watched warnings raised inside a capture to the active log.

    Installed on first use, and again whenever a ``warnings.catch_warnings()`` block entered before
    has since exited and restored the previous ``showwarning`` and filters (pytest does this around
    every test); a once-per-process flag would then leave captures silently empty.

    Python ignores DeprecationWarning outside ``__main__`` by default, so the watched categories are
    switched to "always" and the hook reproduces the default behaviour for warnings raised outside a
    capture (deprecations stay silent, future warnings print once per location).
    """
    global _hook
    if _hook_active():
        return
    with _hook_lock:
        if _hook_active():
            return
        if warnings.showwarning is not _hook:
            original = warnings.showwarning
            printed: set[tuple[str, int]] = set()

            def showwarning(
                message: Warning | str,
                category: type[Warning],
                filename: str,
                lineno: int,
                file: Any = None,
                line: str | None = None,
            ) -> None:
                collected = _active.get()
                if collected is not None and issubclass(category, WATCHED_CATEGORIES):
                    if len(collected) < 16:
                        collected.append(WarningRecord(category.__name__, str(message), f"{filename}:{lineno}", 1))
                    return
                if issubclass(category, (DeprecationWarning, PendingDeprecationWarning)):
                    return
                if issubclass(category, FutureWarning):
                    if (filename, lineno) in printed or len(printed) > 1000:
                        return
                    printed.add((filename, lineno))
                original(message, category, filename, lineno, file, line)

            warnings.showwarning = showwarning
            _hook = showwarning
        for category in WATCHED_CATEGORIES:
            warnings.filterwarnings("always", category=category)
