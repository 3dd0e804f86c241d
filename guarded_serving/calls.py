"""One ``/predict`` call as its caller sees it: who records it, and which stage it is in.

The adapter (a BentoML traffic timeout) and the handler (:mod:`guarded_serving.handler`) share it: whichever
finishes with the call first records the request.
"""

from __future__ import annotations

import threading
import time

from .stages import StageClock

__all__ = ["PredictCall"]

_GUARD_STAGES = ("validate", "predict", "serialize")


class PredictCall:
    """One ``/predict`` call that its caller may give up on before it returns (BentoML's traffic timeout).

    Whichever comes first records the request, the call itself or :func:`give_up`; the other
    records nothing. A request is logged once, and a call given up before it began never reaches the model.
    """

    __slots__ = ("_claimed", "_lock", "began", "clock", "created", "request_id", "rows")

    def __init__(self, request_id: str | None = None) -> None:
        self._lock = threading.Lock()
        self._claimed = False
        self.created = time.perf_counter()
        self.began: float | None = None  # when predict started on it
        self.clock: StageClock | None = None
        self.request_id = request_id
        self.rows = 0

    def claim(self) -> bool:
        """True for the first caller only: the one that records the request."""
        with self._lock:
            claimed, self._claimed = self._claimed, True
        return not claimed

    @property
    def claimed(self) -> bool:
        with self._lock:
            return self._claimed

    def stage(self) -> tuple[str, float]:
        """The stage the call is in and for how long (s): ``queue`` until it began, then the first of the
        guard's own stages not finished (a user's stages run inside ``predict``)."""
        now = time.perf_counter()
        clock, began = self.clock, self.began
        if clock is None or began is None:
            return "queue", now - self.created
        done = dict(clock.durations)
        running = next((name for name in _GUARD_STAGES if name not in done), "log")
        return running, max(now - began - sum(done.get(name, 0.0) for name in _GUARD_STAGES), 0.0)
