"""The writer thread's life over a backlog, shared by every backend's writer: start it, stop it.

A backend's writer subclasses ``WriterThread`` and supplies ``_run``: the loop that takes work from the
backlog and writes it, and that sets ``_started`` once it has first tried to open its database.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

from .backlog import Backlog

__all__ = ["OPEN_WAIT", "WriterThread"]

OPEN_WAIT = 1.0  # seconds start() waits for the database to be ready; a fault is then left to the writer to retry


class WriterThread(ABC):
    """Starts and stops the thread that owns a backend's writing connection."""

    backlog: Backlog

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._started = threading.Event()  # set by _run once the writer has first tried to open the database

    @abstractmethod
    def _run(self) -> None:
        """The writer's loop: take work from the backlog and write it until closed; set ``_started`` once."""

    def start(self) -> None:
        if self._thread is not None:
            return
        with self.backlog.cond:
            self.backlog.closing = self.backlog.opened = False
            self.backlog.running = True
        self._started.clear()
        self._thread = threading.Thread(target=self._run, name="guarded-serving-writer", daemon=True)
        self._thread.start()
        self._started.wait(OPEN_WAIT)

    def stop(self, timeout: float) -> bool:
        """Have the writer write what is pending and stop; False when it did not finish in time."""
        thread = self._thread
        if thread is None:
            return True
        with self.backlog.cond:
            self.backlog.closing = True
            self.backlog.close_deadline = time.monotonic() + max(timeout - 0.5, 0.0)  # failing writes retry until then
            self.backlog.cond.notify_all()
        thread.join(timeout)
        self._thread = None
        with self.backlog.cond:
            self.backlog.running = False
            pending = self.backlog.pending_rows
            self.backlog.cond.notify_all()  # producers waiting for room stop waiting
        return not thread.is_alive() and pending == 0
