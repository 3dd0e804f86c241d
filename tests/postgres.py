"""A real PostgreSQL server for the tests: Debian's binaries, a temporary directory, a loopback port.

``python -m tests`` installs Debian's ``postgresql`` when its binaries are missing (:func:`ensure_installed`);
the ``postgres`` fixture (tests/conftest.py) starts one server per test session with :class:`PostgresServer`
and stops it at the end. PostgreSQL refuses to run as root: as root, every server command runs as the
``postgres`` user, on a directory it owns. Connections over TCP need a password (SCRAM), so that the
tests see a password travel in a URL; the superuser reaches the server through its socket directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["PASSWORD", "USER", "PostgresServer", "binaries", "ensure_installed"]

USER, PASSWORD = "guarded", "pw-never-shown-7f3a"  # the role the tests connect as over TCP


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps each major version apart)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def ensure_installed() -> None:
    """Install Debian's ``postgresql`` (without creating its default cluster) unless it is there."""
    if binaries() is not None:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists() and os.geteuid() == 0:  # the tests start their own server: no cluster on port 5432
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
    install = [*sudo, "apt-get", "install", "-y", "-qq", "-o", "Dpkg::Options::=--force-confold", "postgresql"]
    for command in ([*sudo, "apt-get", "update", "-qq"], install):
        print("+", " ".join(command), flush=True)
        try:
            result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except OSError as exc:
            sys.exit(f"installing postgresql for the fleet tests failed ({' '.join(command)}): {exc}")
        if result.returncode != 0:
            sys.exit(f"installing postgresql for the fleet tests failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    if binaries() is None:
        sys.exit("apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb is there")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server on a temporary directory: ``start()``, ``stop()`` (and start again), ``remove()``."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed: run the tests with `python -m tests`, which installs it")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="guarded-pg-"))  # under /tmp: the postgres user can reach it
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.sockets.mkdir()
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        self._databases = 0
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.sockets}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                "shared_buffers = 32MB\n"
            )

    def _run(self, program: str, *args: str) -> str:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result.stdout

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")
        if self._databases == 0:
            self.sql(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
            self._databases = 1

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as the superuser, through the socket; its output, tuples only."""
        return self._run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.sockets), "-p", str(self.port),
            "-U", "postgres", "-d", database, "-c", statement,
        ).strip()  # fmt: skip

    def database(self, prefix: str = "t") -> str:
        """A fresh, empty database owned by the test role; its URL (with the password)."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}_{time.monotonic_ns() % 10**6}"
        self.sql(f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""
