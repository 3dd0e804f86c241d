"""The periodic evaluator: a started monitor judges its health every ``history_interval`` seconds by itself,
so that status changes are logged, and the history gets a snapshot, without anyone asking."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["PeriodicEvaluator"]


class PeriodicEvaluator:
    """A daemon thread calling ``judge(owner)`` in the middle of each ``interval``-second slot (so that every
    slot gets a snapshot despite timer jitter), the first time at least half an interval after start; until
    :meth:`stop`, or until ``owner`` is garbage (a monitor nobody closed is not kept alive by this thread)."""

    def __init__(self, interval: float, log: Any) -> None:
        self.interval = interval
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, owner: object, judge: Callable[[Any], object]) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=_evaluate_periodically,
            args=(weakref.ref(owner), judge, self._stop, self.interval, self._log),
            name="guarded-serving-health",
            daemon=True,
        )
        self._thread.start()
        weakref.finalize(owner, self._stop.set)  # an owner nobody closed stops being evaluated once it is freed

    def stop(self, timeout: float) -> float:
        """Stop, letting a health computation in progress finish but not for long; the time left of ``timeout``."""
        thread, self._thread = self._thread, None
        if thread is None:
            return timeout
        started = time.monotonic()
        self._stop.set()
        thread.join(min(timeout / 4, 1.0))
        return max(timeout - (time.monotonic() - started), 0.5)


def _evaluate_periodically(
    ref: weakref.ref[Any], judge: Callable[[Any], object], stop: threading.Event, interval: float, log: Any
) -> None:
    wait = interval - ((time.time() - interval / 2) % interval)
    wait += interval if wait < interval / 2 else 0.0
    while not stop.wait(wait):
        owner = ref()
        if owner is None:
            return
        try:
            judge(owner)
        except Exception as exc:  # never let the evaluator die: the next slot may work
            log.error("health_evaluation_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        del owner
        wait = interval - ((time.time() - interval / 2) % interval)
