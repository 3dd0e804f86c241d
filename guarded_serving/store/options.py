"""The store's settings, validated once where they are made and passed down unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigurationError

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_CAPACITY_BYTES", "Overflow", "StoreOptions"]

DEFAULT_CAPACITY = 100_000  # rows waiting in memory at most ...
DEFAULT_CAPACITY_BYTES = 64 * 1024 * 1024  # ... and bytes: rows over ~670 bytes (text and window) reach this first
Overflow = Literal["drop", "block"]


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How a store buffers, writes and prunes; every backend reads the same options.

    ``flush_interval``  seconds between the writer's batches (records are visible to reads within about this)
    ``capacity``, ``capacity_bytes``  rows and bytes waiting in memory at most
    ``overflow``        ``"drop"``: a request that finds the buffer full while the writer is failing is dropped
                        (and counted); ``"block"``: it waits for room then too, up to ``block_timeout`` seconds
    ``busy_timeout``    seconds a write waits for a lock held by another writer before it counts as failed
    ``window``          rows of the shared drift window kept per model version (older chunks are pruned)
    ``max_rows``, ``max_age``  retention per model version: the newest rows kept, and seconds kept (None: all)
    """

    flush_interval: float = 0.2
    capacity: int = DEFAULT_CAPACITY
    capacity_bytes: int = DEFAULT_CAPACITY_BYTES
    overflow: Overflow = "drop"
    block_timeout: float = 5.0
    busy_timeout: float = 5.0
    window: int = 1000
    max_rows: int | None = None
    max_age: float | None = None

    def __post_init__(self) -> None:
        for name in ("capacity", "capacity_bytes", "window", "max_rows"):
            _positive(name, getattr(self, name), whole=True, optional=name == "max_rows")
        for name in ("flush_interval", "block_timeout", "busy_timeout", "max_age"):
            _positive(name, getattr(self, name), whole=False, optional=name == "max_age")
        if self.overflow not in ("drop", "block"):
            raise ConfigurationError("overflow", self.overflow, "'drop' (count and drop) or 'block' (back-pressure)")


def _positive(name: str, value: Any, *, whole: bool, optional: bool) -> None:
    if value is None and optional:
        return
    kinds = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        raise ConfigurationError(name, value, "a positive integer" if whole else "a positive number of seconds")
