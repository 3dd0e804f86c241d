"""A piece of work handed to another thread, and awaiting it from a coroutine.

The model thread of the BentoML adapter (one request at a time) and the :class:`~guarded_serving.batching.Batcher`
(several at once) both run requests in a thread of their own; the request's coroutine waits for its
:class:`Job` without blocking the event loop (:func:`awaited`), or, for a job known to be quick, on the job's
lock itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from threading import Lock
from typing import Any, Generic, TypeVar

__all__ = ["Job", "awaited"]

R = TypeVar("R")


class Job(Generic[R]):
    """``func(*args)`` (or ``args`` for a runner that knows what to do with them) to be run by another thread;
    ``finished`` is a lock held until it has run, then ``result`` or ``error`` is set."""

    __slots__ = ("_callback", "_guard", "args", "error", "finished", "func", "result")

    def __init__(self, args: tuple[Any, ...], func: Callable[..., R] | None = None) -> None:
        self.func, self.args = func, args
        self.result: R | None = None
        self.error: BaseException | None = None
        self.finished = Lock()
        self.finished.acquire()
        self._guard = Lock()
        self._callback: Callable[[], object] | None = None

    def finish(self) -> None:
        """Called by the running thread once ``result`` or ``error`` is set."""
        with self._guard:
            callback, self._callback = self._callback, None
            self.finished.release()
        if callback is not None:
            callback()

    def then(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (from the running thread) once the job has run; at once if it has."""
        with self._guard:
            if self.finished.locked():
                self._callback = callback
                return
        callback()

    def wait(self, timeout: float | None = None) -> R:
        """The job's result, once it has run (from any thread but the one running it)."""
        if not self.finished.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"the job did not finish within {timeout} s")
        self.finished.release()
        return self.outcome()

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # the running thread set one of the two


async def awaited(job: Job[R]) -> R:
    """The job's result, awaited without blocking the event loop. Cancelled (BentoML's traffic timeout), the
    job still runs; its result is unused."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    job.then(lambda: loop.call_soon_threadsafe(_settle, done))
    await done
    return job.outcome()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
