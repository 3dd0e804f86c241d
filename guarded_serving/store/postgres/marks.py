"""Whether a write whose answer was lost committed: each transaction of the writer leaves a mark in it.

A connection can break after the server received ``COMMIT`` and before its answer came back (a network cut,
a proxy or the server restarting at that moment). The writer cannot tell such a batch from one the server
never committed; writing it again would store its requests twice and add its counts to the totals twice,
and dropping it would lose it if it had not committed. So every write also sets this writer's row in
``writer_marks`` to the transaction's number, in the same transaction: after a broken write the writer asks
the server whether its mark reached that number, and writes the batch again only if it did not.

A writer's name is its replica's (host and pid) and a random part: a container restarted in the same pod has
the same host and often the same pid, and must not take its predecessor's marks for its own. A writer
removes its row when it closes; rows of writers that died without closing are pruned with stale replicas.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

__all__ = ["Marks"]

_SET = (
    "INSERT INTO writer_marks (writer, seq, at) VALUES (%s, %s, now())"
    " ON CONFLICT (writer) DO UPDATE SET seq = excluded.seq, at = excluded.at"
)


class Marks:
    """This writer's numbered transactions: :meth:`take` a number, :meth:`set` it inside the transaction, and ask
    :meth:`committed` when the transaction's answer was lost."""

    def __init__(self, replica: str) -> None:
        self.writer = f"{replica}:{secrets.token_hex(6)}"
        self._last = 0

    def take(self) -> int:
        self._last += 1
        return self._last

    def set(self, conn: psycopg.Connection[Any], seq: int) -> None:
        conn.execute(_SET, (self.writer, seq))

    def committed(self, conn: psycopg.Connection[Any], seq: int) -> bool:
        """Whether transaction ``seq`` committed (numbers only grow, and a later one is never begun before an
        earlier one is settled)."""
        found = conn.execute("SELECT seq FROM writer_marks WHERE writer = %s", (self.writer,)).fetchone()
        return found is not None and int(found[0]) >= seq

    def remove(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("DELETE FROM writer_marks WHERE writer = %s", (self.writer,))
