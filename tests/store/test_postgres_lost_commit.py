"""A write whose COMMIT reached the server but whose answer never came back is not written twice.

Between the store and a real PostgreSQL sits a TCP relay on 127.0.0.1 that, once armed, lets a batch's
``COMMIT`` through to the server, swallows the server's answer and cuts both connections: the transaction
committed, and the writer saw a broken connection. Writing the batch again (what the writer did before it
asked the server, see guarded_serving/store/postgres/marks.py) stored every request of it twice and added
its counts to the totals twice; dropping it would lose it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from guarded_serving.store import StoreOptions, StoreStats, open_store
from tests.fixtures.waiting import wait_for

from .test_contract import T0, record

pytestmark = pytest.mark.e2e


class CommitCutter:
    """A relay to ``port`` that, while ``armed``, cuts a connection once it has sent a batch's COMMIT on (the
    server's answer is never relayed)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.armed = threading.Event()
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._open += [client, server]
            held = threading.Event()  # set once a COMMIT went through: the server's answers stop here
            answered = threading.Event()  # the server answered that COMMIT: it committed
            threading.Thread(target=self._to_server, args=(client, server, held, answered), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client, held, answered), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket, held: threading.Event, answered: threading.Event) -> None:
        in_batch = False
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                in_batch = in_batch or b"COPY requests" in data
                if in_batch and b"COMMIT" in data and self.armed.is_set():
                    self.armed.clear()
                    held.set()
                    server.sendall(data)
                    answered.wait(10)  # the server committed; its answer is swallowed
                    self.cuts += 1
                    break
                server.sendall(data)
                in_batch = in_batch and b"COMMIT" not in data  # a transaction ended: the next must COPY again
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _to_client(self, server: socket.socket, client: socket.socket, held: threading.Event, answered: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if held.is_set():
                    answered.set()
                    return
                client.sendall(data)

    def close(self) -> None:
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def cutter(postgres_url: str) -> Iterator[tuple[CommitCutter, str]]:
    parts = urlsplit(postgres_url)
    relay = CommitCutter(int(parts.port or 5432))
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{relay.port}"
    try:
        yield relay, urlunsplit(parts._replace(netloc=netloc, query="sslmode=disable"))  # COMMIT readable on the wire
    finally:
        relay.close()


def cut_once(
    cutter: tuple[CommitCutter, str], postgres_url: str, names: list[str], refuse: str | None = None
) -> tuple[list[str], tuple[int, int], StoreStats]:
    """Log "before", then ``names`` with the relay armed (and the server refusing the request ``refuse``), wait for
    the cut and for the writer to settle, log "after"; the request ids stored, the totals and the store's stats."""
    relay, url = cutter
    opened = open_store(url, StoreOptions(flush_interval=0.05))
    assert opened is not None
    store = opened.open()
    try:
        store.put(record("before", ts=T0))
        assert store.flush()
        if refuse is not None:
            with psycopg.connect(postgres_url) as conn:
                conn.execute(f"ALTER TABLE requests ADD CONSTRAINT refused CHECK (request_id <> '{refuse}')")
        relay.armed.set()
        for i, name in enumerate(names):
            assert store.put(record(name, ts=T0 + 1 + i))
        assert wait_for(lambda: relay.cuts == 1, timeout=30), "the relay never saw a COMMIT"
        assert wait_for(lambda: store.stats().pending == 0 and store.stats().last_error is None, timeout=30), store.stats()
        assert store.put(record("after", ts=T0 + 20))
        assert store.flush()
        stats = store.stats()
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        ids = [row[0] for row in conn.execute("SELECT request_id FROM requests ORDER BY id")]
        found = conn.execute("SELECT requests, rows FROM totals WHERE model = 'm'").fetchone()
    assert found is not None
    return ids, (int(found[0]), int(found[1])), stats


def test_a_batch_whose_commit_answer_was_lost_is_stored_once(cutter: tuple[CommitCutter, str], postgres_url: str) -> None:
    names = [f"cut-{i}" for i in range(10)]

    ids, totals, stats = cut_once(cutter, postgres_url, names)

    assert sorted(ids) == sorted(["before", *names, "after"])  # each once, none lost
    assert totals == (12, 24)
    assert stats.written == 24
    assert stats.dropped == 0
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM writer_marks").fetchone() == (0,)  # a writer that closed took its own


def test_a_record_the_server_refuses_and_a_lost_commit_answer_among_the_rest_store_every_other_once(
    cutter: tuple[CommitCutter, str], postgres_url: str
) -> None:
    # A record the server refuses (here by a constraint the test adds) makes the batch refused whole, and its records
    # are written one by one to drop only that one. The relay swallows the answer to the first of those writes and
    # cuts the connection: written again, the batch stored its first record twice.
    ids, totals, stats = cut_once(cutter, postgres_url, [f"each-{i}" for i in range(5)], refuse="each-2")

    assert sorted(ids) == sorted(["before", "each-0", "each-1", "each-3", "each-4", "after"])  # each once
    assert stats.dropped == 2  # the refused record's rows, counted
    assert totals == (7, 14)  # every request counted once, the refused one too
