"""The monitor: the framework-free core every request goes through (see :class:`Monitor`).

With a store, totals, recent requests and warnings are read back from the database, so whichever worker
answers sees every worker's traffic (within one flush interval). Once started, a monitor judges its health
every ``history_interval`` seconds by itself and keeps a snapshot of each report in its history.
"""

from __future__ import annotations

from ..ids import new_request_id
from ..options import DEFAULT_DB, MEMORY
from .core import Monitor
from .evaluation import MIN_ROWS
from .feedback import PREDICTIONS_KEPT, FeedbackResult
from .judged import ADOPT_ROWS
from .references import as_reference

__all__ = [
    "ADOPT_ROWS",
    "DEFAULT_DB",
    "MEMORY",
    "MIN_ROWS",
    "PREDICTIONS_KEPT",
    "FeedbackResult",
    "Monitor",
    "as_reference",
    "new_request_id",
]
