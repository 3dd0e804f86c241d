"""The log store: every request, its rows, labels, the shared drift window and the health history.

A monitor holds a :class:`Store` (``contract.py`` says what one must do, and ``tests/store/`` checks
it), made by :func:`open_store` from a path or URL::

    store = open_store("sqlite:///guarded_serving.db", StoreOptions(max_age=7 * 86400))

``records.py``   the typed records crossing the contract
``options.py``   :class:`StoreOptions`, validated when made
``contract.py``  :class:`StoreReader`, :class:`StoreWriter`, :class:`Store`: the rules a backend keeps
``backends.py``  :func:`open_store`, :func:`open_reader`: a backend chosen from a path or URL
``readonly.py``  :class:`ReadOnlyStore`: a reader handed to a monitor that judges a store offline
``sqlite/``      the SQLite backend (the only module that imports ``sqlite3`` or ``sqlite_utils``)
"""

from __future__ import annotations

from .backends import MEMORY, SUPPORTED, check_db, open_reader, open_store
from .contract import Store, StoreReader, StoreWriter
from .options import DEFAULT_CAPACITY, DEFAULT_CAPACITY_BYTES, Overflow, StoreOptions
from .readonly import ReadOnlyStore
from .records import (
    LabelledRows,
    Replica,
    RequestRecord,
    RequestStatus,
    SavedBaseline,
    SavedModel,
    StoreStats,
    Totals,
    iso_time,
    version_key,
    version_of,
)

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_CAPACITY_BYTES",
    "MEMORY",
    "SUPPORTED",
    "LabelledRows",
    "Overflow",
    "ReadOnlyStore",
    "Replica",
    "RequestRecord",
    "RequestStatus",
    "SavedBaseline",
    "SavedModel",
    "Store",
    "StoreOptions",
    "StoreReader",
    "StoreStats",
    "StoreWriter",
    "Totals",
    "check_db",
    "iso_time",
    "open_reader",
    "open_store",
    "version_key",
    "version_of",
]
