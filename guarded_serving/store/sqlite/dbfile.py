"""The database file as the writer keeps it: created owner-only, and watched for deletion or replacement.

SQLite keeps writing into a file (or a write-ahead log) that was deleted under it, and those rows vanish
with the process. The writer checks the file's inode before each write, and the write-ahead log's under
the write lock, and starts again on what is at the path now.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlite_utils

from ...logs import get_logger
from .codec import iso
from .connection import connect
from .schema import create_schema

__all__ = ["DatabaseFile", "WalLostError"]


class WalLostError(Exception):
    """The write-ahead log the writer's connection writes to is no longer the file at its path."""

    def __init__(self, rescue: bool) -> None:
        super().__init__("the write-ahead log file was deleted or replaced")
        self.rescue = rescue  # no other writer has started a new log: move what the old one holds into the file


class DatabaseFile:
    """The file at ``path``, with the inodes of the file and write-ahead log the writer has open."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._inode = 0
        self._wal_inode = 0  # the write-ahead log the writer's connection writes to (0: not known yet)
        self.replaced = 0
        self.last_replaced_at: str | None = None
        self.wal_replaced = 0
        self.last_wal_replaced_at: str | None = None

    def connect(self) -> sqlite_utils.Database:
        return connect(self.path, self.busy_timeout)

    def create(self) -> None:
        """Create the file readable by its owner only, with its schema; remember its inode."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        db = self.connect()
        try:
            create_schema(db)
        finally:
            db.conn.close()
        self._inode = os.stat(self.path).st_ino
        self._wal_inode = 0

    def is_replaced(self) -> bool:
        """True when the file was deleted or replaced since it was created or opened."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except OSError:
            return True

    def check_wal(self) -> None:
        """With the write lock held: raise :class:`WalLostError` unless the write-ahead log at the path is
        the one the writer's connection writes to."""
        if not self._wal_inode:
            return
        try:
            found = os.stat(self.path + "-wal")
        except FileNotFoundError:
            raise WalLostError(rescue=True) from None
        if found.st_ino != self._wal_inode:
            raise WalLostError(rescue=found.st_size == 0)  # an empty new log: only opened by a reader since

    def remember_wal(self) -> None:
        """After a write: the write-ahead log it went to is the one to watch."""
        if not self._wal_inode:
            with contextlib.suppress(OSError):
                self._wal_inode = os.stat(self.path + "-wal").st_ino

    def forget_wal(self) -> None:
        self._wal_inode = 0

    def note_replaced(self) -> None:
        self.replaced += 1
        self.last_replaced_at = iso(time.time())
        get_logger().error(
            "store_file_replaced", path=self.path, detail="the database file was deleted or replaced; a new one was started"
        )

    def recover_wal(self, db: sqlite_utils.Database | None, rescue: bool) -> None:
        """The write-ahead log was deleted under the writer: SQLite would go on committing into the unlinked
        file, and a crash would lose every row since. Move what it holds into the database file through the
        connection that still has it open (a checkpoint), and close it: the writer reconnects to a new log."""
        result: Any = None
        if db is not None:
            if rescue:
                try:
                    result = db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                except sqlite3.Error as exc:
                    result = f"{type(exc).__name__}: {exc}"
            db.conn.close()
        self._wal_inode = 0
        self.wal_replaced += 1
        self.last_wal_replaced_at = iso(time.time())
        get_logger().error(
            "store_wal_replaced",
            path=self.path + "-wal",
            detail="the write-ahead log was deleted or replaced; what it held was moved into the database file"
            if rescue
            else "the write-ahead log was replaced by another writer's; reconnected to it",
            checkpoint=repr(result),
        )
