"""Structured logs through structlog: JSON lines when not on a terminal, readable lines on one.

The library logs events, not requests: a status transition, a store problem, a model error, a new
warning. Nothing is logged per request at INFO.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


def get_logger() -> Any:
    return structlog.get_logger("guarded_serving")


def configure_logging(*, force: bool = False, level: int = logging.INFO) -> None:
    """Configure structlog for a service process, unless the application already did."""
    if structlog.is_configured() and not force:
        return
    stream = sys.stderr
    renderer: Any = structlog.dev.ConsoleRenderer() if stream.isatty() else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
