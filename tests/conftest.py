"""Fixtures shared by the end-to-end tests: a real `bentoml serve` on 127.0.0.1 with a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from .postgres import PostgresServer

os.environ["BENTOML_DO_NOT_TRACK"] = "True"
ROOT = Path(__file__).resolve().parent.parent
BENTOML = str(Path(sys.executable).parent / "bentoml")


def copy_checkout(target: Path) -> Path:
    """The repository's files (tracked or not ignored) copied into ``target``, as a fresh clone holds them:
    no venv, no trained model, no build output."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running `bentoml serve` process and the files it writes."""

    url: str
    db: Path
    log: Path
    process: subprocess.Popen[bytes]
    started_in: float
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.client.close()
        if self.process.poll() is None:
            # BentoML starts each worker in a process group of its own: remember them, so that a hung
            # stop can kill them too and none outlives the test.
            workers = psutil.Process(self.process.pid).children(recursive=True)
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            for worker in workers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.kill()
        return int(self.process.returncode)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    target: str, tmp_path: Path, *, db: Path | None = None, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    db = db or tmp_path / "guarded.db"
    log = tmp_path / f"serve-{port}.log"
    full_env = {**os.environ, "GUARDED_SERVING_DB": str(db), "BENTOML_DO_NOT_TRACK": "True", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return serving(process, f"http://127.0.0.1:{port}", db, log, target, started)


def serving(
    process: subprocess.Popen[bytes],
    url: str,
    db: Path,
    log: Path,
    target: str,
    started: float,
    log_text: Callable[[], str] | None = None,
) -> Server:
    """Wait (90 s at most) until a started `bentoml serve` answers /readyz; fail with its log if it
    exits or never gets ready. ``log_text`` reads the log when the caller writes it itself."""
    read_log = log_text or log.read_text

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve {target} exited with {process.returncode}:\n{read_log()}")
        try:
            return httpx.get(url + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    if wait_for(ready, timeout=90, interval=0.2):
        return Server(url, db, log, process, time.perf_counter() - started)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"bentoml serve {target} was not ready within 90 s:\n{read_log()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `bentoml serve TARGET` on a free 127.0.0.1 port with a fresh SQLite file; stopped afterwards."""
    servers: list[Server] = []

    def start(target: str, **kwargs: object) -> Server:
        server = start_server(target, tmp_path, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.1) -> bool:
    """Poll until predicate() is true (for effects that land within a flush interval)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (Debian's, as the postgres user when run as root), on a
    temporary directory and a free loopback port; stopped and removed at the end."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's server: its postgresql:// URL, password included."""
    return postgres.database()
