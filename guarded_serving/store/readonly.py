"""A store over a reader: what a monitor judging another process's store offline is handed.

It reads what its reader reads (any backend's) and writes nothing: a health snapshot is not kept (the
service's history stays as it was), and a write that would change the store is refused with a
StoreError. Its ``stats()`` say what was read, ``read_only``, with nothing pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, Self

from ..drift.window import Chunk
from ..environment import WarningRecord
from ..errors import StoreError
from .contract import Store, StoreReader
from .options import StoreOptions
from .records import LabelledRows, Replica, RequestRecord, SavedBaseline, SavedModel, StoreStats, Totals

__all__ = ["ReadOnlyStore", "WindowSource"]

WindowSource = Callable[[str, str | None], Iterator[Chunk]]  # (model, version) -> window chunks, newest first


class ReadOnlyStore(Store):
    """``reader`` as a :class:`Store` that never writes; ``window`` (if given) stands in for the stored
    window chunks (an offline report re-encoding the logged rows)."""

    def __init__(self, reader: StoreReader, window: WindowSource | None = None) -> None:
        self.reader = reader
        self.path = reader.path
        self.since = reader.since
        self.options = StoreOptions()
        self._window = window
        self._stats: StoreStats | None = None

    # -- reads, as the reader has them -------------------------------------------------------------
    def totals(self, model: str, *, version: str | None = None) -> Totals:
        return self.reader.totals(model, version=version)

    def label_totals(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        return self.reader.label_totals(model, version=version)

    def recent_requests(self, model: str, limit: int, *, version: str | None = None) -> list[dict[str, Any]]:
        return self.reader.recent_requests(model, limit, version=version)

    def recent_request_marks(
        self, model: str, limit: int, *, version: str | None = None, after: int = 0
    ) -> list[tuple[Any, ...]]:
        return self.reader.recent_request_marks(model, limit, version=version, after=after)

    def request_edits(self) -> int | None:
        return self.reader.request_edits()

    def requests_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        return self.reader.requests_by_id(ids)

    def request_rows(self, model: str, request_ids: Sequence[str], *, version: str | None = None) -> dict[str, int]:
        return self.reader.request_rows(model, request_ids, version=version)

    def labelled(self, model: str, limit: int, *, version: str | None = None) -> LabelledRows:
        return self.reader.labelled(model, limit, version=version)

    def warnings(self, model: str, limit: int = 50, *, version: str | None = None) -> tuple[WarningRecord, ...]:
        return self.reader.warnings(model, limit, version=version)

    def snapshots(self, model: str, since: float | None, limit: int, *, version: str | None = None) -> list[str]:
        return self.reader.snapshots(model, since, limit, version=version)

    def window_chunks(self, model: str, *, version: str | None = None) -> Iterator[Chunk]:
        if self._window is not None:
            return self._window(model, version)
        return self.reader.window_chunks(model, version=version)

    def baseline(self, model: str, version: str | None, reference: str, kind: str) -> SavedBaseline | None:
        return self.reader.baseline(model, version, reference, kind)

    def saved_versions(self) -> list[SavedModel]:
        return self.reader.saved_versions()

    def replicas(self, model: str, *, version: str | None = None) -> list[Replica]:
        return self.reader.replicas(model, version=version)  # a shared store's fleet, as a live replica sees it

    def model_versions(self) -> list[tuple[str, str | None]]:
        return self.reader.model_versions()

    def request_log(
        self,
        model: str | None = None,
        status: str | None = None,
        after_id: int = 0,
        limit: int = 20,
        *,
        version: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.reader.request_log(model, status, after_id, limit, version=version)

    def row_counts(self, model: str, *, version: str | None = None) -> tuple[int, int]:
        return self.reader.row_counts(model, version=version)

    def logged_rows(self, model: str, *, version: str | None = None) -> Iterator[tuple[Any, Any]]:
        return self.reader.logged_rows(model, version=version)

    def written_and_dropped(self) -> tuple[int, int]:
        return self.reader.written_and_dropped()

    # -- writes: none ----------------------------------------------------------------------------
    def stats(self) -> StoreStats:
        """What was read: rows logged (in range) and rows the service dropped from the log, read once."""
        if self._stats is None:
            written, dropped = self.reader.written_and_dropped()
            self._stats = StoreStats(
                path=self.path,
                pending=0,
                written=written,
                dropped=dropped,
                capacity=0,
                last_error=None,
                last_error_at=None,
                last_flush_at=None,
                flush_interval=0.0,
                read_only=True,
            )
        return self._stats

    def flush(self, timeout: float = 5.0) -> bool:
        return True  # nothing is ever pending

    def write_snapshot(
        self, model: str, slot: int, ts: float, status: str, snapshot: str, keep: int, *, version: str | None = None
    ) -> bool:
        """Never kept: judging a store offline leaves the service's health history as it was."""
        return False

    def save_baseline(self, model: str, version: str | None, reference: str, kind: str, rows: int, document: str) -> None:
        """Never kept: an offline report judges against the baselines the service adopted, and adopts none."""

    def close(self, timeout: float = 10.0) -> bool:
        return self.reader.close(timeout)

    def open(self) -> Self:
        self._refuse()

    def put(self, record: RequestRecord) -> bool:
        self._refuse()

    def save_model(self, name: str, version: str | None, reference: str, settings: dict[str, Any]) -> None:
        self._refuse()

    def write_feedback(self, model: str, items: Sequence[tuple[str, int, str]], *, version: str | None = None) -> tuple[int, int]:
        self._refuse()

    def prune(self) -> int:
        self._refuse()

    def _refuse(self) -> NoReturn:
        raise StoreError(f"the log store at {self.path!r} is open to read only")
