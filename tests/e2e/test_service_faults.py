"""The worker's event loop is never held by a model or by the store, and a huge body is never read whole.

A model that hangs, or a request waiting for room in a full store buffer (``overflow="block"``), must not
delay `/healthz`, `/readyz` or `/health/model`: each is asked while the request is still stuck, and must
answer before it is released. BentoML's `traffic={"timeout": ...}` answers the stuck request, which the
store records as an error naming the stage it was stuck in. A body larger than `max_body_bytes` gets its
413 without the worker reading it all: the worker's peak memory (VmHWM) stays flat.
"""

from __future__ import annotations

import json
import select
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.fixtures.servers import Server
from tests.fixtures.waiting import wait_for

PROBES = ("/healthz", "/readyz", "/health/model")


class Pending:
    """An HTTP request sent from a thread, so that the test can probe the service while it is outstanding."""

    def __init__(self, send: Callable[[], httpx.Response]) -> None:
        self.response: httpx.Response | None = None
        self.error: httpx.HTTPError | None = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Callable[[], httpx.Response]) -> None:
        try:
            self.response = send()
        except httpx.HTTPError as exc:  # the service stopped under it: wait() says so
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float = 60) -> httpx.Response:
        self._thread.join(timeout)
        assert self.response is not None, f"no answer within {timeout} s ({self.error!r})"
        return self.response


def fast_traffic(server: Server, requests: int = 80) -> None:
    """Quick requests, so that the adapter takes its fast path for the next one (its moving average of request
    durations starts at 1 s and falls by a tenth per request: below 2 ms after about 60)."""
    for i in range(requests):
        assert server.client.post("/predict", json={"rows": [[0.1 * i, 0.2, 0.3]]}).status_code == 200


def probe(server: Server) -> list[int]:
    return [httpx.get(server.url + path, timeout=60).status_code for path in PROBES]


def stored(db: Path, request_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT status, failed_stage, error, stages FROM requests WHERE request_id = ?", (request_id,)
        ).fetchall()


# -- a model that hangs --------------------------------------------------------------------------------------------------


@pytest.fixture(params=["hanging", "hanging_threads", "hanging_batched"], ids=["one-model-thread", "threads=2", "batching"])
def hanging(request: pytest.FixtureRequest, serve: Any, tmp_path: Path) -> Iterator[tuple[Server, Path, Path]]:
    hung, release = tmp_path / "hung", tmp_path / "release"
    env = {"FAULTS_HUNG": str(hung), "FAULTS_RELEASE": str(release)}
    server = serve(f"tests.apps.faults:{request.param}", env=env)
    yield server, hung, release
    release.touch()  # never leave the model hung


def test_a_hung_model_never_delays_the_health_probes(hanging: tuple[Server, Path, Path]) -> None:
    server, hung, release = hanging
    fast_traffic(server)
    pending = Pending(lambda: server.client.post("/predict", json={"rows": [[777, 0, 0]]}, headers={"X-Request-ID": "hung-1"}))
    assert wait_for(hung.exists, timeout=30)

    answers = probe(server)

    assert answers == [200, 200, 200]
    assert not pending.done  # every probe was answered while the model was still hung
    assert not release.exists()
    release.touch()
    assert pending.wait().status_code in (200, 504)  # 504 if BentoML's timeout (4 s) came first


def test_a_hung_model_gets_the_traffic_timeout_answer_recorded_as_an_error_of_its_stage(
    hanging: tuple[Server, Path, Path],
) -> None:
    server, hung, release = hanging
    fast_traffic(server)
    pending = Pending(lambda: server.client.post("/predict", json={"rows": [[777, 0, 0]]}, headers={"X-Request-ID": "hung-2"}))
    assert wait_for(hung.exists, timeout=30)

    answer = pending.wait()
    assert not release.exists()  # answered while the model was still hung: BentoML's timeout (4 s) held
    assert answer.status_code == 504
    assert wait_for(lambda: stored(server.db, "hung-2") != [], timeout=10)
    ((status, failed_stage, error, stages),) = stored(server.db, "hung-2")
    assert (status, failed_stage) == ("error", "predict")
    assert error.startswith("TimeoutError: no answer after ")
    assert "traffic timeout" in error
    assert set(json.loads(stages)) >= {"validate", "predict"}

    release.touch()  # the model returns at last: its late answer is neither sent nor logged again
    assert wait_for(lambda: server.client.post("/predict", json={"rows": [[1, 2, 3]]}).status_code == 200, timeout=30)
    assert server.client.get("/health/model").json()["totals"]["errors"] == 1
    assert len(stored(server.db, "hung-2")) == 1


# -- a store buffer that is full, with overflow="block" ---------------------------------------------------------------


def test_a_request_waiting_for_room_in_the_store_buffer_never_delays_the_health_probes(serve: Any) -> None:
    server: Server = serve("tests.apps.faults:blocking")
    fast_traffic(server)
    assert wait_for(lambda: server.client.get("/health/model").json()["checks"]["store"]["written"] == 80)
    lock = sqlite3.connect(server.db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the writer cannot write: the 5-row buffer fills
    try:
        for i in range(5):
            assert server.client.post("/predict", json={"rows": [[0.1 * i, 0.2, 0.3]]}).status_code == 200
        pending = Pending(lambda: server.client.post("/predict", json={"rows": [[1, 2, 3]]}))

        answers = probe(server)

        assert answers == [200, 200, 200]
        assert not pending.done  # answered while the request still waited for room (up to 5 s)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert pending.wait().status_code == 200


# -- a body larger than max_body_bytes ----------------------------------------------------------------------------------


def peak_rss(server: Server) -> int:
    """The highest resident memory (VmHWM, bytes) any of the service's processes has reached."""
    peaks = []
    for process in [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]:
        status = Path(f"/proc/{process.pid}/status").read_text()
        peaks.append(int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) * 1024)
    return max(peaks)


def upload(server: Server, size: int, *, declared: bool) -> bytes:
    """POST ``size`` bytes of JSON whitespace to /predict, with a Content-Length or chunked, and return the raw
    answer: the client stops sending as soon as the service answers (as a well-behaved client does)."""
    host, port = server.url.removeprefix("http://").split(":")
    framing = f"Content-Length: {size}" if declared else "Transfer-Encoding: chunked"
    head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
    piece = b" " * 65536
    chunk = piece if declared else b"%x\r\n%b\r\n" % (len(piece), piece)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head)
        sent = 0
        while sent < size:
            readable, writable, _ = select.select([sock], [sock], [], 60)
            if readable:
                break
            if writable:
                try:
                    sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(piece)
        if sent >= size and not declared:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return answer


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_without_being_read_whole(serve: Any, declared: bool) -> None:
    server: Server = serve("tests.apps.faults:small_body")
    fast_traffic(server, requests=5)
    before = peak_rss(server)

    answer = upload(server, 200 * 1024 * 1024, declared=declared)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    problem = json.loads(body)
    expected = "the body has 209715200 bytes (Content-Length)" if declared else "the body has more than 1048576 bytes"
    assert problem["problems"][0]["problem"] == expected
    assert problem["problems"][0]["expected"] == "at most 1048576 bytes (max_body_bytes)"
    assert peak_rss(server) - before < 40 * 1024 * 1024  # never near the 200 MB sent
    assert server.client.post("/predict", json={"rows": [[1, 2, 3]]}).status_code == 200
    assert wait_for(lambda: server.client.get("/health/model").json()["totals"]["rejected"] == 1)
